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

import math
import os
from itertools import chain, compress, count, repeat
from operator import contains, eq, not_
from typing import Any

import numpy as np

from .constraints import AverageBits, BOPsBudget, Constraint, LinearBudget, MemoryBudget
from .json_fields import MISSING, as_list, as_object, column, fail, first, number, pluck, present
from .noise import NOISE_MODELS, phi
from .problem import Problem
from .strict_json import dumps, loads, show

__all__ = ["load_problem", "loads_problem", "problem_from_dict", "problem_to_dict",
           "save_problem", "DEFAULT_BITS"]

#: Candidate bitwidths when a file gives no ``"bits"`` (the same as :class:`Problem`'s).
DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)

_TOP = frozenset({"bits", "noise", "groups", "ties", "constraints", "description"})
_GROUP = frozenset({"name", "size", "sensitivity", "errors", "macs", "act_bits",
                    "allowed_bits"})
#: Problem's argument names in its error messages -> where the values sit in the file.
_ARG_PATH = {"sizes": "groups[*].size", "errors": "groups[*].errors", "macs": "groups[*].macs",
             "act_bits": "groups[*].act_bits", "names": "groups[*].name",
             "allowed": "groups[*].allowed_bits", "sensitivity": "groups[*].sensitivity"}
_CONSTRAINTS = {
    "average_bits": (AverageBits, "max"),
    "memory": (MemoryBudget, "max_bytes"),
    "bops": (BOPsBudget, "max"),
    "linear": (LinearBudget, "max"),
}
def _bits(data: dict) -> list[int]:
    raw = data.get("bits", MISSING)
    if raw is MISSING:
        return list(DEFAULT_BITS)
    if not as_list(raw, "bits"):
        fail("bits", "must not be empty")
    out = []
    for i, b in enumerate(raw):
        f = 0.0
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            f = float(b) if abs(b) < 1e300 else math.inf  # no OverflowError on huge integers
        if not (1 <= f <= 64 and f.is_integer()):
            fail(f"bits[{i}]", f"must be a positive integer of at most 64, got {show(b)}")
        out.append(int(f))
    for i in range(1, len(out)):
        if out[i] == out[i - 1]:
            fail(f"bits[{i}]", f"duplicate bitwidth {out[i]}")
        if out[i] < out[i - 1]:
            fail("bits", f"must be sorted ascending, got {out}")
    return out


def _group_ref(g: Any, index: dict[str, int], n: int, path: str) -> int:
    """A group given by name or integer index, as its position."""
    if isinstance(g, str):
        if g not in index:
            fail(path, f"unknown group {show(g)}")
        return index[g]
    if isinstance(g, int) and not isinstance(g, bool):
        if not 0 <= g < n:
            fail(path, f"group index {show(g)} out of range for {n} groups")
        return g
    fail(path, f"a group is a name or an integer index, got {show(g)}")


def _allowed(raw: Any, path: str, bits: list[int]) -> list[int]:
    allowed = as_list(raw, path)
    if not allowed:
        fail(path, "must list at least one bitwidth")
    known = set(bits)
    for k, b in enumerate(allowed):
        if not isinstance(b, (int, float)) or isinstance(b, bool) or b not in known:
            fail(f"{path}[{k}]", f"{show(b)} is not among bits {bits}")
    return [int(b) for b in allowed]


def _names(groups: list[dict]) -> list[str]:
    names = pluck(groups, "name")
    given = present(names)
    if not all(given):
        for i in compress(count(), map(not_, given)):
            names[i] = f"g{i}"
    if not set(map(type, names)) <= {str} or "" in names:
        i = first(not isinstance(nm, str) or not nm for nm in names)
        fail(f"groups[{i}].name", f"must be a non-empty string, got {show(names[i])}")
    if len(set(names)) != len(names):  # a set: a third of the time of a {name: index} dict
        seen: dict[str, int] = {}
        for i, nm in enumerate(names):
            if nm in seen:
                fail(f"groups[{i}].name", f"duplicate group name {show(nm)} "
                                          f"(also groups[{seen[nm]}])")
            seen[nm] = i
    return names


def _groups(raw: Any, bits: list[int], noise: str) -> dict[str, Any]:
    """The groups, field by field: C-speed column extraction, then vectorised checks."""
    groups = as_list(raw, "groups")
    if not groups:
        fail("groups", "must not be empty")
    n, k = len(groups), len(bits)
    if not all(map(isinstance, groups, repeat(dict))):
        i = first(not isinstance(g, dict) for g in groups)
        fail(f"groups[{i}]", f"must be an object, got {show(groups[i])}")
    if not all(map(_GROUP.issuperset, groups)):
        i = first(map(not_, map(_GROUP.issuperset, groups)))
        as_object(groups[i], f"groups[{i}]", _GROUP)
    names = _names(groups)
    sizes = pluck(groups, "size")
    if not all(present(sizes)):
        fail(f"groups[{first(map(not_, present(sizes)))}].size", "required")
    sens, tables = pluck(groups, "sensitivity"), pluck(groups, "errors")
    has_s, has_e = present(sens), present(tables)
    if any(map(eq, has_s, has_e)):
        fail(f"groups[{first(map(eq, has_s, has_e))}]",
             "give exactly one of 'sensitivity' or 'errors'")
    errors = np.empty((n, k))
    if any(has_s):
        at = list(compress(range(n), has_s))
        s = column(list(compress(sens, has_s)), lambda j: f"groups[{at[j]}].sensitivity")
        errors[at if len(at) < n else slice(None)] = np.outer(s, phi(bits, noise))
    if any(has_e):
        at = list(compress(range(n), has_e))
        rows = list(compress(tables, has_e))
        if not (set(map(type, rows)) <= {list} and set(map(len, rows)) == {k}):
            for j, e in enumerate(rows):
                if len(as_list(e, f"groups[{at[j]}].errors")) != k:
                    fail(f"groups[{at[j]}].errors",
                         f"has {len(e)} values, expected one per bit ({k})")
        flat = column(list(chain.from_iterable(rows)),
                      lambda j: f"groups[{at[j // k]}].errors[{j % k}]")
        errors[at if len(at) < n else slice(None)] = flat.reshape(len(rows), k)
    macs = pluck(groups, "macs")
    has_m = present(macs)
    if any(has_m) and not all(has_m):
        fail(f"groups[{first(map(not_, has_m))}].macs", "missing (other groups give macs)")
    allowed = {i: _allowed(groups[i]["allowed_bits"], f"groups[{i}].allowed_bits", bits)
               for i in compress(range(n), map(contains, groups, repeat("allowed_bits")))}
    return {"names": names, "errors": errors,
            "sizes": column(sizes, lambda j: f"groups[{j}].size", "positive"),
            "macs": column(macs, lambda j: f"groups[{j}].macs") if any(has_m) else None,
            "act_bits": column(pluck(groups, "act_bits", 8), lambda j: f"groups[{j}].act_bits",
                               "positive"),
            "allowed": allowed}


def _constraint(c: Any, i: int, index: dict[str, int], n: int, k: int) -> Constraint:
    path = f"constraints[{i}]"
    if not isinstance(c, dict):
        fail(path, f"must be an object, got {show(c)}")
    kind = c.get("type", MISSING)
    if not isinstance(kind, str) or kind not in _CONSTRAINTS:
        got = "missing" if kind is MISSING else f"unknown constraint type {show(kind)}"
        fail(f"{path}.type", f"{got}; expected one of {sorted(_CONSTRAINTS)}")
    cls, field = _CONSTRAINTS[kind]
    known = {"type", field, "name", "groups"} | ({"costs"} if kind == "linear" else set())
    as_object(c, path, frozenset(known))
    if field not in c:
        fail(f"{path}.{field}", "required")
    limit = number(c[field], f"{path}.{field}", "any" if kind == "linear" else "positive")
    name = c.get("name", kind)
    if not isinstance(name, str) or not name:
        fail(f"{path}.name", f"must be a non-empty string, got {show(name)}")
    kwargs: dict[str, Any] = {"name": name}
    if "groups" in c:
        kwargs["groups"] = _scope(c["groups"], f"{path}.groups", index, n)
    costs = _costs(c.get("costs", MISSING), f"{path}.costs", n, k) if kind == "linear" else None
    try:
        return cls(limit, **kwargs) if costs is None else LinearBudget(costs, limit, **kwargs)
    except ValueError as e:  # the core's own checks, under this constraint's path
        raise ValueError(f"{path}: {e}") from None


def _scope(raw: Any, path: str, index: dict[str, int], n: int) -> list:
    refs = as_list(raw, path)
    if not refs:
        fail(path, "must name at least one group")
    seen: dict[int, int] = {}
    for j, g in enumerate(refs):
        pos = _group_ref(g, index, n, f"{path}[{j}]")
        if pos in seen:
            fail(f"{path}[{j}]", f"group {show(g)} is given twice (also {path}[{seen[pos]}])")
        seen[pos] = j
    return list(refs)


def _costs(raw: Any, path: str, n: int, k: int) -> np.ndarray:
    if raw is MISSING:
        fail(path, "required (one row of costs per group)")
    if len(as_list(raw, path)) != n:
        fail(path, f"has {len(raw)} rows, expected one per group ({n})")
    for r, row in enumerate(raw):
        if len(as_list(row, f"{path}[{r}]")) != k:
            fail(f"{path}[{r}]", f"has {len(row)} values, expected one per bit ({k})")
    flat = column(list(chain.from_iterable(raw)), lambda j: f"{path}[{j // k}][{j % k}]", "any")
    return flat.reshape(n, k)


def _ties(raw: Any, index: dict[str, int], n: int) -> list[list[int]]:
    out = []
    for t, tie in enumerate(as_list(raw, "ties")):
        if not as_list(tie, f"ties[{t}]"):
            fail(f"ties[{t}]", "must list at least one group")
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
    as_object(data, "$", _TOP)
    if not isinstance(data.get("description", ""), str):
        fail("description", f"must be a string, got {show(data['description'])}")
    bits = _bits(data)
    noise = data.get("noise", "uniform")
    if not isinstance(noise, str) or noise not in NOISE_MODELS:
        fail("noise", f"unknown noise model {show(noise)}; expected one of "
                      f"{sorted(NOISE_MODELS)}")
    if "groups" not in data:
        fail("groups", "required (a list of group objects)")
    g = _groups(data["groups"], bits, noise)
    n, raw_cons = len(g["names"]), as_list(data.get("constraints", []), "constraints")
    scoped = any(isinstance(c, dict) and "groups" in c for c in raw_cons)
    # {name: position} only when something refers to groups (it costs ~1 s per 10^6 names)
    index = dict(zip(g["names"], range(n))) if scoped or data.get("ties") else {}
    cons = [_constraint(c, i, index, n, len(bits)) for i, c in enumerate(raw_cons)]
    seen: dict[str, int] = {}
    for i, c in enumerate(cons):
        if c.name in seen:
            fail(f"constraints[{i}].name", f"duplicate constraint name {show(c.name)} "
                                           f"(also constraints[{seen[c.name]}])")
        seen[c.name] = i
        if isinstance(c, BOPsBudget) and g["macs"] is None:
            fail("groups[0].macs", f"required by constraints[{i}] (bops)")
    ties = _ties(data.get("ties", []), index, n)
    try:
        return Problem(errors=g["errors"], sizes=g["sizes"], bits=bits, names=g["names"],
                       macs=g["macs"], act_bits=g["act_bits"], allowed=g["allowed"] or None,
                       ties=ties or None, constraints=cons)
    except ValueError as e:  # whole-problem checks (totals that overflow, ...): as JSON paths
        arg, sep, rest = str(e).partition(": ")
        raise ValueError(f"{_ARG_PATH.get(arg, arg)}{sep}{rest}") from None


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
