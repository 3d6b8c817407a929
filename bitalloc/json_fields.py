"""Typed JSON fields checked one at a time or a column at a time, named by their JSON path.

The checks behind :mod:`bitalloc.io`: every failure is a ``ValueError`` whose message
starts with the JSON path of the bad value (``groups[3].size: must be a positive
number, got -1``). Column checks (:func:`column`) run at numpy speed on good input and
fall back to one value at a time only to name the first bad one.

Example:
    >>> column([1, 2.5, 3], lambda i: f"groups[{i}].size", "positive").tolist()
    [1.0, 2.5, 3.0]
    >>> column([1, True], lambda i: f"groups[{i}].size", "positive")
    Traceback (most recent call last):
    ...
    ValueError: groups[1].size: must be a positive number, got true
"""

from __future__ import annotations

import math
from itertools import compress, count, repeat
from operator import is_not
from typing import Any

import numpy as np

from .strict_json import join_path, show

__all__ = ["MISSING", "fail", "number", "column", "as_list", "as_object", "pluck", "first",
           "present"]

_FAST = frozenset({int, float})
#: Default of :func:`pluck` for an absent key (``None`` is JSON ``null``, a value).
MISSING = object()
_SIGN = {"nonneg": "a non-negative finite number", "positive": "a positive number",
         "any": "a finite number"}


def fail(path: str, msg: str):
    """Raise ``ValueError("PATH: msg")``."""
    raise ValueError(f"{path}: {msg}")


def number(x: Any, path: str, sign: str = "nonneg") -> float:
    """One JSON number: finite, with the sign rule ``nonneg``, ``positive`` or ``any``."""
    ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
    if ok:
        try:
            f = float(x)
        except OverflowError:
            fail(path, f"must be {_SIGN[sign]}, got {show(x)} (out of range)")
        ok = math.isfinite(f) and (f > 0 if sign == "positive" else f >= 0 or sign == "any")
    if not ok:
        fail(path, f"must be {_SIGN[sign]}, got {show(x)}")
    return f


def column(vals: list, path_of, sign: str = "nonneg") -> np.ndarray:
    """Many JSON numbers at once: a float64 array, or the first bad one named by its path."""
    if set(map(type, vals)) <= _FAST:
        try:
            arr = np.array(vals, dtype=np.float64)
        except OverflowError:
            arr = None
        if arr is not None:
            bad = ~np.isfinite(arr)
            if sign != "any":
                bad |= arr <= 0 if sign == "positive" else arr < 0
            if not bad.any():
                return arr
    # slow path: only on bad input (or numpy scalars from Python callers); names the culprit
    return np.array([number(x, path_of(i), sign) for i, x in enumerate(vals)],
                    dtype=np.float64)


def as_list(x: Any, path: str) -> list:
    """``x`` when it is a JSON array."""
    if not isinstance(x, list):
        fail(path, f"must be a list, got {show(x)}")
    return x


def as_object(x: Any, path: str, known: frozenset[str]) -> dict:
    """``x`` when it is a JSON object whose keys are all ``known``."""
    if not isinstance(x, dict):
        fail(path, f"must be an object, got {show(x)}")
    if not x.keys() <= known:
        unknown = sorted(str(k) for k in x.keys() - known)
        fail(join_path(path, unknown[0]), f"unknown field; expected one of {sorted(known)}")
    return x


def pluck(objects: list[dict], key: str, default: Any = MISSING) -> list:
    """``[o.get(key, default) for o in objects]`` at C speed."""
    return list(map(dict.get, objects, repeat(key), repeat(default)))


def first(flags) -> int:
    """Position of the first true flag (the caller knows there is one)."""
    return next(compress(count(), flags))


def present(col: list) -> list[bool]:
    """Which entries of a :func:`pluck` column were given (are not :data:`MISSING`)."""
    return list(map(is_not, col, repeat(MISSING)))


