"""Problem files (JSON only, never pickle) and result serialisation.

Format (DESIGN.md section 4)::

    {"bits": [2, 3, 4, 5, 6, 7, 8], "noise": "uniform",
     "groups": [{"name": "conv1", "size": 864, "sensitivity": 0.31,
                 "macs": 10838016, "act_bits": 8, "allowed_bits": [8]},
                {"name": "fc", "size": 5120, "errors": [0.9, 0.4, 0.2, 0.1, 0.05, 0.02, 0.01]}],
     "ties": [["conv1", "fc"]],
     "constraints": [{"type": "average_bits", "max": 4.0}]}

Every error is a ``ValueError`` whose message starts with the JSON path of the
bad field, e.g. ``groups[3].size: must be a positive integer``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from . import _validate as v
from .constraints import AverageBits, BOPsBudget, Constraint, LinearBudget, MemoryBudget
from .noise import NOISE_MODELS
from .problem import Problem

__all__ = ["load_problem", "problem_from_dict", "problem_to_dict", "save_problem"]

_TOP = {"bits", "noise", "groups", "ties", "constraints", "description"}
_GROUP = {"name", "size", "sensitivity", "errors", "macs", "act_bits", "allowed_bits"}
_CONSTRAINTS = {
    "average_bits": (AverageBits, "max"),
    "memory": (MemoryBudget, "max_bytes"),
    "bops": (BOPsBudget, "max"),
    "linear": (LinearBudget, "max"),
}


def _fail(path: str, msg: str):
    raise ValueError(f"{path}: {msg}")


def _number(x: Any, path: str, *, positive: bool = False, integer: bool = False) -> float:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool)
    if integer:
        ok = ok and float(x).is_integer()
    if not ok or not math.isfinite(x) or x < 0 or (positive and x <= 0):
        kind = "integer" if integer else "number"
        sign = "positive" if positive else "non-negative finite"
        _fail(path, f"must be a {sign} {kind}, got {json.dumps(x)}")
    return float(x)


def _list(x: Any, path: str) -> list:
    if not isinstance(x, list):
        _fail(path, f"must be a list, got {json.dumps(x)[:60]}")
    return x


def _obj(x: Any, path: str, known: set[str]) -> dict:
    if not isinstance(x, dict):
        _fail(path, f"must be an object, got {json.dumps(x)[:60]}")
    unknown = sorted(set(x) - known)
    if unknown:
        _fail(f"{path}.{unknown[0]}" if path != "$" else unknown[0],
              f"unknown field; expected one of {sorted(known)}")
    return x


def _bits(data: dict) -> list[int]:
    raw = data.get("bits", list(v.DEFAULT_BITS))
    for i, b in enumerate(_list(raw, "bits")):
        _number(b, f"bits[{i}]", positive=True, integer=True)
    return v.bits_array(raw).tolist()


def _group(g: Any, i: int, bits: list[int]) -> dict:
    path = f"groups[{i}]"
    _obj(g, path, _GROUP)
    name = g.get("name", f"g{i}")
    if not isinstance(name, str) or not name:
        _fail(f"{path}.name", f"must be a non-empty string, got {json.dumps(name)}")
    if "size" not in g:
        _fail(f"{path}.size", "required")
    out = {"name": name, "size": _number(g["size"], f"{path}.size", positive=True, integer=True)}
    if ("sensitivity" in g) == ("errors" in g):
        _fail(path, "give exactly one of 'sensitivity' or 'errors'")
    if "sensitivity" in g:
        out["sensitivity"] = _number(g["sensitivity"], f"{path}.sensitivity")
    else:
        errs = _list(g["errors"], f"{path}.errors")
        if len(errs) != len(bits):
            _fail(f"{path}.errors", f"has {len(errs)} values, expected one per bit ({len(bits)})")
        out["errors"] = [_number(e, f"{path}.errors[{k}]") for k, e in enumerate(errs)]
    if "macs" in g:
        out["macs"] = _number(g["macs"], f"{path}.macs")
    out["act_bits"] = _number(g.get("act_bits", 8), f"{path}.act_bits", positive=True)
    if "allowed_bits" in g:
        allowed = _list(g["allowed_bits"], f"{path}.allowed_bits")
        if not allowed:
            _fail(f"{path}.allowed_bits", "must list at least one bitwidth")
        for k, b in enumerate(allowed):
            if b not in bits or isinstance(b, bool):
                _fail(f"{path}.allowed_bits[{k}]", f"{json.dumps(b)} is not among bits {bits}")
        out["allowed_bits"] = allowed
    return out


def _constraint(c: Any, i: int, n: int, k: int) -> Constraint:
    path = f"constraints[{i}]"
    if not isinstance(c, dict):
        _fail(path, f"must be an object, got {json.dumps(c)[:60]}")
    kind = c.get("type")
    if kind not in _CONSTRAINTS:
        _fail(f"{path}.type", f"unknown constraint type {json.dumps(kind)}; expected one of "
                              f"{sorted(_CONSTRAINTS)}")
    cls, field = _CONSTRAINTS[kind]
    _obj(c, path, {"type", field, "name", "costs"} if kind == "linear" else {"type", field, "name"})
    if field not in c:
        _fail(f"{path}.{field}", "required")
    limit = c[field]
    if kind != "linear":
        limit = _number(limit, f"{path}.{field}", positive=True)
    elif not isinstance(limit, (int, float)) or isinstance(limit, bool) or not math.isfinite(limit):
        _fail(f"{path}.max", f"must be a finite number, got {json.dumps(limit)}")
    name = c.get("name", "linear" if kind == "linear" else kind)
    if not isinstance(name, str) or not name:
        _fail(f"{path}.name", f"must be a non-empty string, got {json.dumps(name)}")
    if kind != "linear":
        return cls(limit, name=name)
    costs = _list(c.get("costs"), f"{path}.costs")
    if len(costs) != n:
        _fail(f"{path}.costs", f"has {len(costs)} rows, expected one per group ({n})")
    for r, row in enumerate(costs):
        if len(_list(row, f"{path}.costs[{r}]")) != k:
            _fail(f"{path}.costs[{r}]", f"has {len(row)} values, expected one per bit ({k})")
        for j, x in enumerate(row):
            if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
                _fail(f"{path}.costs[{r}][{j}]", f"must be a finite number, got {json.dumps(x)}")
    return LinearBudget(costs, limit, name=name)


def _ties(data: dict, names: list[str]) -> list[list[str]]:
    known = set(names)
    ties = _list(data.get("ties", []), "ties")
    for t, tie in enumerate(ties):
        for j, g in enumerate(_list(tie, f"ties[{t}]")):
            if g not in known:
                _fail(f"ties[{t}][{j}]", f"unknown group {json.dumps(g)}")
    return ties


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
    bits = _bits(data)
    noise = data.get("noise", "uniform")
    if noise not in NOISE_MODELS:
        _fail("noise", f"unknown noise model {json.dumps(noise)}; expected one of "
                       f"{sorted(NOISE_MODELS)}")
    groups = [_group(g, i, bits) for i, g in enumerate(_list(data.get("groups"), "groups"))]
    if not groups:
        _fail("groups", "must not be empty")
    names = [g["name"] for g in groups]
    for i, nm in enumerate(names):
        if names.index(nm) != i:
            _fail(f"groups[{i}].name", f"duplicate group name {json.dumps(nm)}")
    phi = NOISE_MODELS[noise](np.array(bits, dtype=np.float64))
    errors = np.array([g["errors"] if "errors" in g else g["sensitivity"] * phi for g in groups])
    has_macs = ["macs" in g for g in groups]
    if any(has_macs) and not all(has_macs):
        _fail(f"groups[{has_macs.index(False)}].macs", "missing (other groups give macs)")
    cons = [_constraint(c, i, len(groups), len(bits))
            for i, c in enumerate(_list(data.get("constraints", []), "constraints"))]
    if not any(has_macs):
        for i, c in enumerate(cons):
            if isinstance(c, BOPsBudget):
                _fail("groups[0].macs", f"required by constraints[{i}] (bops)")
    allowed = {g["name"]: g["allowed_bits"] for g in groups if "allowed_bits" in g}
    return Problem(errors=errors, sizes=[g["size"] for g in groups], bits=bits, names=names,
                   macs=[g["macs"] for g in groups] if all(has_macs) else None,
                   act_bits=[g["act_bits"] for g in groups], allowed=allowed or None,
                   ties=_ties(data, names) or None, constraints=cons)


def load_problem(path: str | os.PathLike) -> Problem:
    """Read a problem file.

    Raises:
        ValueError: unreadable file, invalid JSON (with line and column) or a bad
            field (with its JSON path).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"{os.fspath(path)}: cannot read problem file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError("$: not a UTF-8 JSON text file (only JSON is read, never pickle)") \
            from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"$: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    return problem_from_dict(data)


def problem_to_dict(problem: Problem, description: str | None = None) -> dict:
    """The JSON structure of a problem (errors written per group as measured tables).

    ``problem_from_dict(problem_to_dict(p))`` rebuilds an equivalent problem.
    """
    groups = []
    for i, name in enumerate(problem.names):
        g: dict[str, Any] = {"name": name, "size": int(problem.sizes[i]),
                             "errors": problem.errors[i].tolist()}
        if problem.macs is not None:
            g["macs"] = float(problem.macs[i])
            g["act_bits"] = int(problem.act_bits[i])
        if not problem.allowed[i].all():
            g["allowed_bits"] = problem.bits[problem.allowed[i]].tolist()
        groups.append(g)
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
            d = {"type": kind, field: c.limit, "name": c.name}
            if kind == "linear":
                d["costs"] = c.costs.tolist()
            return d
    raise ValueError(f"constraints: {type(c).__name__} has no JSON form")


def save_problem(problem: Problem, path: str | os.PathLike, description: str | None = None):
    """Write a problem file (see :func:`problem_to_dict`)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(problem_to_dict(problem, description), f, indent=1)
        f.write("\n")
