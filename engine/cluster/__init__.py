"""Pregeneration of a large collection across machines with Ray Data (`art2mus pregenerate --ray`).

Imports nothing: Ray is an optional extra (``art2mus[cluster]``), imported only inside the
functions that run the pipeline (engine/cluster/pipeline.py).
"""
