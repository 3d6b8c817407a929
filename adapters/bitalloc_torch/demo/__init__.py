"""Offline data sets and small models for the demo and the benchmarks.

Nothing here downloads: scikit-learn's digits (bundled), Fashion-MNIST from Debian's
``dataset-fashion-mnist`` package, scikit-learn's two sample photographs, and English
sentences from Python's own documentation (``pydoc_data``).
"""
