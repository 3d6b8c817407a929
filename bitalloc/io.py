"""Problem files (JSON only, never pickle) and result serialisation.

Format (DESIGN.md section 4)::

    {"bits": [2, 3, 4, 5, 6, 7, 8], "noise": "uniform",
     "groups": [{"name": "conv1", "size": 864, "sensitivity": 0.31,
                 "macs": 10838016, "act_bits": 8, "allowed_bits": [8]},
                {"name": "fc", "size": 5120, "errors": [0.9, 0.4, 0.2, 0.1, 0.05, 0.02, 0.01]}],
     "ties": [["conv1", "fc"]],
     "constraints": [{"type": "average_bits", "max": 4.0},
                     {"type": "average_bits", "max": 3.0, "name": "avg_fc", "groups": ["fc"]}]}

A constraint's optional ``"groups"`` (names or integer indices) scopes it to those
groups. Files are standard JSON (:mod:`bitalloc.strict_json`): duplicate keys, ``NaN``
and ``Infinity`` are rejected. Every error is a ``ValueError`` whose message starts with
the JSON path of the bad field, e.g. ``groups[3].size: must be a positive number``.

Loading is linear in the number of groups (one pass over the groups, then vectorised
checks); ``save_problem`` writes every number losslessly (``10.5`` stays ``10.5``).
"""

from __future__ import annotations

import inspect
import math
import os
from itertools import chain, compress, count, repeat
from operator import contains, eq, is_not, not_
from typing import Any

import numpy as np

from .constraints import AverageBits, BOPsBudget, Constraint, LinearBudget, MemoryBudget
from .noise import NOISE_MODELS, phi
from .problem import Problem
from .strict_json import dumps, join_path, loads, show

__all__ = ["load_problem", "loads_problem", "problem_from_dict", "problem_to_dict",
           "save_problem", "DEFAULT_BITS"]

#: Candidate bitwidths when a file gives no ``"bits"`` (the same as :class:`Problem`'s).
DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)

_TOP = frozenset({"bits", "noise", "groups", "ties", "constraints", "description"})
_GROUP = frozenset({"name", "size", "sensitivity", "errors", "macs", "act_bits",
                    "allowed_bits"})
_CONSTRAINTS = {
    "average_bits": (AverageBits, "max"),
    "memory": (MemoryBudget, "max_bytes"),
    "bops": (BOPsBudget, "max"),
    "linear": (LinearBudget, "max"),
}
_FAST = frozenset({int, float})
_MISSING = object()
_SIGN = {"nonneg": "a non-negative finite number", "positive": "a positive number",
         "any": "a finite number"}


def _fail(path: str, msg: str):
    raise ValueError(f"{path}: {msg}")


def _number(x: Any, path: str, sign: str = "nonneg") -> float:
    """One JSON number: finite, with the sign rule ``nonneg``, ``positive`` or ``any``."""
    ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
    if ok:
        try:
            f = float(x)
        except OverflowError:
            _fail(path, f"must be {_SIGN[sign]}, got {show(x)} (out of range)")
        ok = math.isfinite(f) and (f > 0 if sign == "positive" else f >= 0 or sign == "any")
    if not ok:
        _fail(path, f"must be {_SIGN[sign]}, got {show(x)}")
    return f


def _column(vals: list, path_of, sign: str = "nonneg") -> np.ndarray:
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
    return np.array([_number(x, path_of(i), sign) for i, x in enumerate(vals)],
                    dtype=np.float64)


def _list(x: Any, path: str) -> list:
    if not isinstance(x, list):
        _fail(path, f"must be a list, got {show(x)}")
    return x


def _obj(x: Any, path: str, known: frozenset[str]) -> dict:
    if not isinstance(x, dict):
        _fail(path, f"must be an object, got {show(x)}")
    if not x.keys() <= known:
        unknown = sorted(str(k) for k in x.keys() - known)
        _fail(join_path(path, unknown[0]), f"unknown field; expected one of {sorted(known)}")
    return x


def _bits(data: dict) -> list[int]:
    raw = data.get("bits", _MISSING)
    if raw is _MISSING:
        return list(DEFAULT_BITS)
    if not _list(raw, "bits"):
        _fail("bits", "must not be empty")
    out = []
    for i, b in enumerate(raw):
        f = 0.0
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            f = float(b) if abs(b) < 1e300 else math.inf  # no OverflowError on huge integers
        if not (1 <= f <= 64 and f.is_integer()):
            _fail(f"bits[{i}]", f"must be a positive integer of at most 64, got {show(b)}")
        out.append(int(f))
    for i in range(1, len(out)):
        if out[i] == out[i - 1]:
            _fail(f"bits[{i}]", f"duplicate bitwidth {out[i]}")
        if out[i] < out[i - 1]:
            _fail("bits", f"must be sorted ascending, got {out}")
    return out


def _group_ref(g: Any, index: dict[str, int], n: int, path: str) -> int:
    """A group given by name or integer index, as its position."""
    if isinstance(g, str):
        if g not in index:
            _fail(path, f"unknown group {show(g)}")
        return index[g]
    if isinstance(g, int) and not isinstance(g, bool):
        if not 0 <= g < n:
            _fail(path, f"group index {show(g)} out of range for {n} groups")
        return g
    _fail(path, f"a group is a name or an integer index, got {show(g)}")


def _allowed(raw: Any, path: str, bits: list[int]) -> list[int]:
    allowed = _list(raw, path)
    if not allowed:
        _fail(path, "must list at least one bitwidth")
    known = set(bits)
    for k, b in enumerate(allowed):
        if not isinstance(b, (int, float)) or isinstance(b, bool) or b not in known:
            _fail(f"{path}[{k}]", f"{show(b)} is not among bits {bits}")
    return [int(b) for b in allowed]


def _field(groups: list[dict], key: str, default: Any = _MISSING) -> list:
    """``[g.get(key, default) for g in groups]`` at C speed."""
    return list(map(dict.get, groups, repeat(key), repeat(default)))


def _first(flags) -> int:
    """Position of the first true flag (the caller knows there is one)."""
    return next(compress(count(), flags))


def _present(col: list) -> list[bool]:
    return list(map(is_not, col, repeat(_MISSING)))


def _names(groups: list[dict]) -> list[str]:
    names = _field(groups, "name")
    given = _present(names)
    if not all(given):
        for i in compress(count(), map(not_, given)):
            names[i] = f"g{i}"
    if not set(map(type, names)) <= {str} or "" in names:
        i = _first(not isinstance(nm, str) or not nm for nm in names)
        _fail(f"groups[{i}].name", f"must be a non-empty string, got {show(names[i])}")
    if len(set(names)) != len(names):  # a set: a third of the time of a {name: index} dict
        seen: dict[str, int] = {}
        for i, nm in enumerate(names):
            if nm in seen:
                _fail(f"groups[{i}].name", f"duplicate group name {show(nm)} "
                                           f"(also groups[{seen[nm]}])")
            seen[nm] = i
    return names


def _groups(raw: Any, bits: list[int], noise: str) -> dict[str, Any]:
    """The groups, field by field: C-speed column extraction, then vectorised checks."""
    groups = _list(raw, "groups")
    if not groups:
        _fail("groups", "must not be empty")
    n, k = len(groups), len(bits)
    if not all(map(isinstance, groups, repeat(dict))):
        i = _first(not isinstance(g, dict) for g in groups)
        _fail(f"groups[{i}]", f"must be an object, got {show(groups[i])}")
    if not all(map(_GROUP.issuperset, groups)):
        i = _first(map(not_, map(_GROUP.issuperset, groups)))
        _obj(groups[i], f"groups[{i}]", _GROUP)
    names = _names(groups)
    sizes = _field(groups, "size")
    if not all(_present(sizes)):
        _fail(f"groups[{_first(map(not_, _present(sizes)))}].size", "required")
    sens, tables = _field(groups, "sensitivity"), _field(groups, "errors")
    has_s, has_e = _present(sens), _present(tables)
    if any(map(eq, has_s, has_e)):
        _fail(f"groups[{_first(map(eq, has_s, has_e))}]",
              "give exactly one of 'sensitivity' or 'errors'")
    errors = np.empty((n, k))
    if any(has_s):
        at = list(compress(range(n), has_s))
        s = _column(list(compress(sens, has_s)), lambda j: f"groups[{at[j]}].sensitivity")
        errors[at if len(at) < n else slice(None)] = np.outer(s, phi(bits, noise))
    if any(has_e):
        at = list(compress(range(n), has_e))
        rows = list(compress(tables, has_e))
        if not (set(map(type, rows)) <= {list} and set(map(len, rows)) == {k}):
            for j, e in enumerate(rows):
                if len(_list(e, f"groups[{at[j]}].errors")) != k:
                    _fail(f"groups[{at[j]}].errors",
                          f"has {len(e)} values, expected one per bit ({k})")
        flat = _column(list(chain.from_iterable(rows)),
                       lambda j: f"groups[{at[j // k]}].errors[{j % k}]")
        errors[at if len(at) < n else slice(None)] = flat.reshape(len(rows), k)
    macs = _field(groups, "macs")
    has_m = _present(macs)
    if any(has_m) and not all(has_m):
        _fail(f"groups[{_first(map(not_, has_m))}].macs", "missing (other groups give macs)")
    allowed = {i: _allowed(groups[i]["allowed_bits"], f"groups[{i}].allowed_bits", bits)
               for i in compress(range(n), map(contains, groups, repeat("allowed_bits")))}
    return {"names": names, "errors": errors,
            "sizes": _column(sizes, lambda j: f"groups[{j}].size", "positive"),
            "macs": _column(macs, lambda j: f"groups[{j}].macs") if any(has_m) else None,
            "act_bits": _column(_field(groups, "act_bits", 8), lambda j: f"groups[{j}].act_bits",
                                "positive"),
            "allowed": allowed}


def _takes_groups(cls: type) -> bool:
    return "groups" in inspect.signature(cls).parameters


def _constraint(c: Any, i: int, index: dict[str, int], n: int, k: int) -> Constraint:
    path = f"constraints[{i}]"
    if not isinstance(c, dict):
        _fail(path, f"must be an object, got {show(c)}")
    kind = c.get("type", _MISSING)
    if not isinstance(kind, str) or kind not in _CONSTRAINTS:
        got = "missing" if kind is _MISSING else f"unknown constraint type {show(kind)}"
        _fail(f"{path}.type", f"{got}; expected one of {sorted(_CONSTRAINTS)}")
    cls, field = _CONSTRAINTS[kind]
    known = {"type", field, "name", "groups"} | ({"costs"} if kind == "linear" else set())
    _obj(c, path, frozenset(known))
    if field not in c:
        _fail(f"{path}.{field}", "required")
    limit = _number(c[field], f"{path}.{field}", "any" if kind == "linear" else "positive")
    name = c.get("name", kind)
    if not isinstance(name, str) or not name:
        _fail(f"{path}.name", f"must be a non-empty string, got {show(name)}")
    kwargs: dict[str, Any] = {"name": name}
    if "groups" in c:
        kwargs["groups"] = _scope(c["groups"], f"{path}.groups", index, n)
        if not _takes_groups(cls):
            _fail(f"{path}.groups", f"scoped constraints need a bitalloc core whose {cls.__name__} "
                                    f"takes groups=; this one does not")
    costs = _costs(c.get("costs", _MISSING), f"{path}.costs", n, k) if kind == "linear" else None
    try:
        return cls(limit, **kwargs) if costs is None else LinearBudget(costs, limit, **kwargs)
    except ValueError as e:  # the core's own checks, under this constraint's path
        raise ValueError(f"{path}: {e}") from None


def _scope(raw: Any, path: str, index: dict[str, int], n: int) -> list:
    refs = _list(raw, path)
    if not refs:
        _fail(path, "must name at least one group")
    seen: dict[int, int] = {}
    for j, g in enumerate(refs):
        pos = _group_ref(g, index, n, f"{path}[{j}]")
        if pos in seen:
            _fail(f"{path}[{j}]", f"group {show(g)} is given twice (also {path}[{seen[pos]}])")
        seen[pos] = j
    return list(refs)


def _costs(raw: Any, path: str, n: int, k: int) -> np.ndarray:
    if raw is _MISSING:
        _fail(path, "required (one row of costs per group)")
    if len(_list(raw, path)) != n:
        _fail(path, f"has {len(raw)} rows, expected one per group ({n})")
    for r, row in enumerate(raw):
        if len(_list(row, f"{path}[{r}]")) != k:
            _fail(f"{path}[{r}]", f"has {len(row)} values, expected one per bit ({k})")
    flat = _column(list(chain.from_iterable(raw)), lambda j: f"{path}[{j // k}][{j % k}]", "any")
    return flat.reshape(n, k)


def _ties(raw: Any, index: dict[str, int], n: int) -> list[list[int]]:
    out = []
    for t, tie in enumerate(_list(raw, "ties")):
        if not _list(tie, f"ties[{t}]"):
            _fail(f"ties[{t}]", "must list at least one group")
        out.append([_group_ref(g, index, n, f"ties[{t}][{j}]") for j, g in enumerate(tie)])
    return out


def problem_from_dict(data: Any) -> Problem:
    """Build a :class:`Problem` from the JSON structure of DESIGN.md section 4.

    Raises:
        ValueError: the message starts with the JSON path of the bad field.

    Example:
        >>> p = problem_from_dict({"bits": [2, 4], "groups": [
        ...     {"name": "a", "size": 10, "sensitivity": 1.0},
        ...     {"name": "b", "size": 10, "errors": [0.5, 0.1]}],
        ...     "constraints": [{"type": "average_bits", "max": 3}]})
        >>> p.names, p.errors[1].tolist()
        (('a', 'b'), [0.5, 0.1])
    """
    _obj(data, "$", _TOP)
    if not isinstance(data.get("description", ""), str):
        _fail("description", f"must be a string, got {show(data['description'])}")
    bits = _bits(data)
    noise = data.get("noise", "uniform")
    if not isinstance(noise, str) or noise not in NOISE_MODELS:
        _fail("noise", f"unknown noise model {show(noise)}; expected one of "
                       f"{sorted(NOISE_MODELS)}")
    if "groups" not in data:
        _fail("groups", "required (a list of group objects)")
    g = _groups(data["groups"], bits, noise)
    n, raw_cons = len(g["names"]), _list(data.get("constraints", []), "constraints")
    scoped = any(isinstance(c, dict) and "groups" in c for c in raw_cons)
    # {name: position} only when something refers to groups (it costs ~1 s per 10^6 names)
    index = dict(zip(g["names"], range(n))) if scoped or data.get("ties") else {}
    cons = [_constraint(c, i, index, n, len(bits)) for i, c in enumerate(raw_cons)]
    seen: dict[str, int] = {}
    for i, c in enumerate(cons):
        if c.name in seen:
            _fail(f"constraints[{i}].name", f"duplicate constraint name {show(c.name)} "
                                            f"(also constraints[{seen[c.name]}])")
        seen[c.name] = i
        if isinstance(c, BOPsBudget) and g["macs"] is None:
            _fail("groups[0].macs", f"required by constraints[{i}] (bops)")
    ties = _ties(data.get("ties", []), index, n)
    return Problem(errors=g["errors"], sizes=g["sizes"], bits=bits, names=g["names"],
                   macs=g["macs"], act_bits=g["act_bits"], allowed=g["allowed"] or None,
                   ties=ties or None, constraints=cons)


def loads_problem(text: str | bytes) -> Problem:
    """Parse a problem from JSON text (``bytes`` are decoded as UTF-8).

    Raises:
        ValueError: not UTF-8, invalid or non-standard JSON, or a bad field (JSON path first).
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("$: not a UTF-8 JSON text file (only JSON is read, never pickle)") \
                from None
    return problem_from_dict(loads(text.removeprefix("\ufeff")))


def load_problem(path: str | os.PathLike) -> Problem:
    """Read a problem file (time and memory linear in its size).

    Raises:
        ValueError: unreadable file, invalid JSON (with line and column) or a bad
            field (with its JSON path).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{os.fspath(path)}: cannot read problem file ({e.strerror})") from None
    return loads_problem(data)


def _num(x) -> int | float:
    """A number written losslessly: integral values below 2**53 as JSON integers."""
    f = float(x)
    return int(f) if f.is_integer() and abs(f) < 2.0 ** 53 else f


def problem_to_dict(problem: Problem, description: str | None = None) -> dict:
    """The JSON structure of a problem (errors written per group as measured tables).

    ``problem_from_dict(problem_to_dict(p))`` rebuilds an equal problem: every number
    is written exactly (floats by their shortest round-trip repr).
    """
    cols: dict[str, list] = {"name": list(problem.names),
                             "size": list(map(_num, problem.sizes.tolist())),
                             "errors": problem.errors.tolist()}
    if problem.macs is not None:
        cols["macs"] = list(map(_num, problem.macs.tolist()))
    if problem.macs is not None or bool((np.asarray(problem.act_bits) != 8).any()):
        cols["act_bits"] = list(map(_num, problem.act_bits.tolist()))
    groups = [dict(zip(cols, row)) for row in zip(*cols.values())]
    for i in np.flatnonzero(~problem.allowed.all(axis=1)).tolist():
        groups[i]["allowed_bits"] = problem.bits[problem.allowed[i]].tolist()
    out: dict[str, Any] = {"bits": problem.bits.tolist(), "groups": groups}
    if description:
        out = {"description": description, **out}
    if problem.ties:
        out["ties"] = [[problem.names[i] for i in tie] for tie in problem.ties]
    out["constraints"] = [_constraint_to_dict(c) for c in problem.constraints]
    return out


def _constraint_to_dict(c: Constraint) -> dict:
    for kind, (cls, field) in _CONSTRAINTS.items():
        if type(c) is cls:
            d: dict[str, Any] = {"type": kind, field: _num(c.limit), "name": c.name}
            scope = getattr(c, "groups", None)
            if scope is not None:
                d["groups"] = [g if isinstance(g, str) else int(g) for g in scope]
            if kind == "linear":
                d["costs"] = c.costs.tolist()
            return d
    raise ValueError(f"constraints: {type(c).__name__} has no JSON form")


def save_problem(problem: Problem, path: str | os.PathLike, description: str | None = None):
    """Write a problem file (see :func:`problem_to_dict`): standard JSON, one group a line."""
    d = problem_to_dict(problem, description)
    parts = []
    for key, value in d.items():
        if key == "groups":  # one line each, through the C encoder (indent= is pure Python)
            body = ",\n  ".join(dumps(g, indent=None) for g in value)
            parts.append(f' "groups": [\n  {body}\n ]')
        else:
            parts.append(f" {dumps(key, indent=None)}: {dumps(value, indent=None)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(parts) + "\n}\n")
