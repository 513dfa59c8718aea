"""The collection catalog: curators' folder of images and metadata -> artworks in the store.

- ``images``: safe image loading (bomb/truncation checks), thumbnails, colour/layout descriptors
- ``metadata``: catalog.csv, catalog.json and NAME.json sidecars
- ``walk``: listing the folder (symlink loops, vanishing folders, odd names)
- ``scanner``: ``scan_collection`` — incremental sync into the store
- ``watcher``: ``CatalogWatcher`` — follows the folder with watchdog
- ``cli``: ``art2mus catalog scan|list|watch``
"""
