"""The visitor-facing touchscreen kiosk (PyQt6).

``art2mus kiosk`` opens it. The widgets talk to the rest of the installation only through
:mod:`installation.kiosk.services` (catalog reads, clip store, job queue, audio player), so
they neither know nor care whether the engine runs in this process (demo mode) or in the
engine service next to it.
"""
