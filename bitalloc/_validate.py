"""Deprecated alias of :mod:`bitalloc.validate` (kept for callers of the old name)."""

from .validate import *  # noqa: F401,F403
from .validate import DEFAULT_BITS, bits_array, float_array, names_tuple  # noqa: F401
