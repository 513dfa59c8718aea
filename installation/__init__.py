"""The visitor-facing installation: the kiosk (PyQt6), the audio player and camera capture."""
