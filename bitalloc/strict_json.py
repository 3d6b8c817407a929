"""Standard JSON only, in and out: what problem files and results are read and written with.

Reading (:func:`loads`) rejects what :func:`json.loads` silently accepts: duplicate keys
(the last would win), the non-standard constants ``NaN``, ``Infinity`` and
``-Infinity``, integers too long for Python to convert, and nesting deep enough to
exhaust the interpreter's stack. Every rejection is a ``ValueError`` whose message starts with the
JSON path of the offending value (``groups[3].size``; ``$`` is the whole document).

Writing (:func:`dumps`) never produces non-standard JSON: a non-finite float is a
``ValueError`` naming its path instead of an ``Infinity`` in the output.

Example:
    >>> loads('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    ValueError: a: duplicate key "a" in one object (JSON keys must be unique)
    >>> loads('{"groups": [{"size": NaN}]}')
    Traceback (most recent call last):
    ...
    ValueError: groups[0].size: NaN is not standard JSON (use a finite number)
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["loads", "dumps", "join_path", "show"]

class _Duplicate(dict):
    """An object in which ``key`` appeared more than once."""

    key: str


class _Rejected:
    """Stands in for a non-standard constant until it is located."""

    def __init__(self, why: str) -> None:
        self.why = why


def join_path(path: str, key: str | int) -> str:
    """The JSON path of a member (``str`` key) or an element (``int`` index) of ``path``.

    Example:
        >>> join_path(join_path(join_path("$", "groups"), 3), "size"), join_path("$", "a b")
        ('groups[3].size', '$["a b"]')
    """
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not (key.isascii() and key.isidentifier()):
        return f"{path}[{json.dumps(key)}]"
    return key if path == "$" else f"{path}.{key}"


def show(x: Any, limit: int = 60) -> str:
    """A short JSON rendering of a value for an error message (never raises)."""
    if isinstance(x, (list, dict)) and len(x) > 8:
        return f"a list of {len(x)} items" if isinstance(x, list) else \
            f"an object with {len(x)} keys"
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10 ** 30:
        return f"an integer with {len(str(abs(x)))} digits"
    try:
        s = json.dumps(x)
    except (TypeError, ValueError, RecursionError):
        s = f"<{type(x).__name__}>"
    return s if len(s) <= limit else s[:limit - 15] + f"... ({len(s)} chars)"


def loads(text: str) -> Any:
    """Parse standard JSON (RFC 8259) strictly.

    Raises:
        ValueError: malformed JSON (``$: invalid JSON at line L column C: ...``), nesting
            too deep, an integer of over 4300 digits, or a duplicate key / non-standard
            constant (the message then starts with its JSON path).
    """
    flagged: list[bool] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        d = dict(items)
        if len(d) == len(items):
            return d
        seen: set[str] = set()
        for k, _ in items:  # find the first repeated key
            if k in seen:
                break
            seen.add(k)
        dup = _Duplicate(d)
        dup.key = k
        flagged.append(True)
        return dup

    def constant(name: str) -> _Rejected:
        flagged.append(True)
        return _Rejected(f"{name} is not standard JSON (use a finite number)")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"$: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") \
            from None
    except RecursionError:
        raise ValueError("$: JSON nested too deeply to read") from None
    except ValueError as e:  # Python refuses integers of more than 4300 digits
        raise ValueError(f"$: invalid JSON: {str(e).split(';')[0]}") from None
    if flagged:
        _locate_rejected(data)
    return data


def _locate_rejected(data: Any) -> None:
    stack: list[tuple[Any, str]] = [(data, "$")]
    while stack:  # depth-first in document order, without recursion
        node, path = stack.pop()
        if isinstance(node, _Duplicate):
            raise ValueError(f"{join_path(path, node.key)}: duplicate key {json.dumps(node.key)} "
                             f"in one object (JSON keys must be unique)")
        if isinstance(node, _Rejected):
            raise ValueError(f"{path}: {node.why}")
        if isinstance(node, dict):
            stack.extend((v, join_path(path, k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, join_path(path, i)) for i, v in reversed(list(enumerate(node))))


def _non_finite(obj: Any, path: str) -> str | None:
    stack: list[tuple[Any, str]] = [(obj, path)]
    while stack:
        node, p = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return f"{p}: {node} is not a finite number"
        if isinstance(node, dict):
            stack.extend((v, join_path(p, str(k))) for k, v in reversed(node.items()))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, join_path(p, i)) for i, v in reversed(list(enumerate(node))))
    return None


def dumps(obj: Any, *, indent: int | None = 1) -> str:
    """Serialise to standard JSON; a non-finite float is an error, never ``Infinity``.

    Raises:
        ValueError: ``PATH: inf is not a finite number; standard JSON cannot hold it``.
    """
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError:
        where = _non_finite(obj, "$") or "$: a value is not a finite number"
        raise ValueError(f"{where}; standard JSON cannot hold it") from None
