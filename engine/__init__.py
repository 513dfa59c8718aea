"""Art2Mus engine side: catalog, clip store, generation engines, pregeneration worker.

Nothing here imports torch at module level: the kiosk and the default engine need numpy only.
"""
