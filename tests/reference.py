"""Trusted references for the solver tests: exhaustive search and exact feasibility checks.

Written independently of the library's merged and normalised form: it enumerates
original groups, filters ties, and evaluates every constraint from its own
definition (DESIGN.md section 2) in exact rational arithmetic.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np

import bitalloc as ba

REL = 1e-9


def scope_mask(problem: ba.Problem, c: ba.Constraint) -> np.ndarray:
    """Which groups constraint ``c`` counts (its ``groups=``, names or indices)."""
    mask = np.zeros(problem.n_groups, dtype=bool)
    if c.groups is None:
        mask[:] = True
    else:
        for g in c.groups:
            mask[problem.names.index(g) if isinstance(g, str) else g] = True
    return mask


def exact_value(problem: ba.Problem, c: ba.Constraint, bits) -> Fraction:
    """The constraint's value at ``bits`` from its definition, exactly."""
    bits = [int(b) for b in bits]
    mask = scope_mask(problem, c)
    idx = [i for i in range(problem.n_groups) if mask[i]]
    if isinstance(c, ba.AverageBits):
        num = sum(Fraction(float(problem.sizes[i])) * bits[i] for i in idx)
        return num / sum(Fraction(float(problem.sizes[i])) for i in idx)
    if isinstance(c, ba.MemoryBudget):
        return sum(Fraction(float(problem.sizes[i])) * bits[i] for i in idx) / 8
    if isinstance(c, ba.BOPsBudget):
        return sum(Fraction(float(problem.macs[i] * problem.act_bits[i])) * bits[i] for i in idx)
    table = np.asarray(c.cost_table(problem))
    k = [int(np.flatnonzero(problem.bits == b)[0]) for b in bits]
    return sum(Fraction(float(table[i, k[i]])) for i in idx)


def all_allocations(problem: ba.Problem) -> np.ndarray:
    """Every allocation (as option indices, shape (P, N)) respecting allowed and ties."""
    opts = [np.flatnonzero(problem.allowed[i]) for i in range(problem.n_groups)]
    combos = np.array(list(itertools.product(*opts)), dtype=np.int64).reshape(-1, problem.n_groups)
    keep = np.ones(len(combos), dtype=bool)
    for tie in problem.ties:
        for g in tie[1:]:
            keep &= combos[:, g] == combos[:, tie[0]]
    return combos[keep]


def _meets(problem: ba.Problem, combos: np.ndarray) -> np.ndarray:
    """Exact feasibility of every combo (floats decide clear cases, Fractions the rest)."""
    rows = np.arange(problem.n_groups)
    ok = np.ones(len(combos), dtype=bool)
    for c in problem.constraints:
        table = np.asarray(c.cost_table(problem), dtype=np.float64)
        table = table * scope_mask(problem, c)[:, None]
        vals = table[rows, combos].sum(axis=1)
        scale = max(abs(c.limit), float(np.abs(table).max(axis=1).sum()), 1e-300)
        near = np.abs(vals - c.limit) <= 1e-9 * scale
        ok &= (vals <= c.limit) | near
        for j in np.flatnonzero(near & ok):
            ok[j] = exact_value(problem, c, problem.bits[combos[j]]) <= Fraction(c.limit)
    return ok


def brute_force(problem: ba.Problem) -> tuple[float | None, np.ndarray | None]:
    """Optimal objective and allocation (bitwidths), or (None, None) if infeasible."""
    combos = all_allocations(problem)
    rows = np.arange(problem.n_groups)
    ok = _meets(problem, combos)
    if not ok.any():
        return None, None
    obj = problem.errors[rows, combos[ok]].sum(axis=1)
    best = int(np.argmin(obj))
    return float(obj[best]), problem.bits[combos[ok][best]]


def assert_feasible(problem: ba.Problem, bits: np.ndarray) -> None:
    """Allowed bits, ties respected, every constraint met exactly (checked from scratch)."""
    bits = np.asarray(bits)
    assert bits.shape == (problem.n_groups,)
    k = np.searchsorted(problem.bits, bits)
    assert (problem.bits[np.minimum(k, len(problem.bits) - 1)] == bits).all()
    assert problem.allowed[np.arange(problem.n_groups), k].all(), "allowed bits violated"
    for tie in problem.ties:
        assert len({int(bits[g]) for g in tie}) == 1, f"tie {tie} broken: {bits}"
    for c in problem.constraints:
        val = exact_value(problem, c, bits)
        assert val <= Fraction(c.limit), f"{c.name}: {float(val)!r} > {c.limit!r}"


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b)) + 1e-12
