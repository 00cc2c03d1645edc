"""Streaming ingestion: inlets (AEP's streaming connections), the durable stream log, and the flusher that
turns logged messages into ordinary lake batches of their dataset; streaming segmentation (``segmenter.py``),
the log's second consumer, re-evaluates continuous segments for the profiles each message touches.

The package is domain code: it reaches storage only through the ports in ``ports.py`` (the metadata store,
the log, the lake), which ``store/`` and ``catalog/`` implement and ``bootstrap`` wires.
"""
