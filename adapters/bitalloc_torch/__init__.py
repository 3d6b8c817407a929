"""bitalloc_torch: the torch adapter of bitalloc (quantizers, FIT, QBitOpt).

Install with ``pip install 'bitalloc[torch]'``.
"""
