"""Trusted references for the solver tests: exhaustive search and feasibility checks.

Written independently of the library's merged form: it enumerates original groups,
filters ties, and evaluates every constraint from its own cost table.
"""

from __future__ import annotations

import itertools

import numpy as np

import bitalloc as ba

REL = 1e-9


def constraint_tol(problem: ba.Problem, c: ba.Constraint) -> float:
    table = c.cost_table(problem)
    return 1e-12 * max(abs(c.limit), float(np.abs(table).max(axis=1).sum()))


def all_allocations(problem: ba.Problem) -> np.ndarray:
    """Every allocation (as option indices, shape (P, N)) respecting allowed and ties."""
    opts = [np.flatnonzero(problem.allowed[i]) for i in range(problem.n_groups)]
    combos = np.array(list(itertools.product(*opts)), dtype=np.int64).reshape(-1, problem.n_groups)
    keep = np.ones(len(combos), dtype=bool)
    for tie in problem.ties:
        for g in tie[1:]:
            keep &= combos[:, g] == combos[:, tie[0]]
    return combos[keep]


def brute_force(problem: ba.Problem) -> tuple[float | None, np.ndarray | None]:
    """Optimal objective and allocation (bitwidths), or (None, None) if infeasible."""
    combos = all_allocations(problem)
    rows = np.arange(problem.n_groups)
    ok = np.ones(len(combos), dtype=bool)
    for c in problem.constraints:
        table = c.cost_table(problem)
        ok &= table[rows, combos].sum(axis=1) <= c.limit + constraint_tol(problem, c)
    if not ok.any():
        return None, None
    obj = problem.errors[rows, combos[ok]].sum(axis=1)
    best = int(np.argmin(obj))
    return float(obj[best]), problem.bits[combos[ok][best]]


def assert_feasible(problem: ba.Problem, bits: np.ndarray) -> None:
    """Allowed bits, ties respected, every constraint met (checked from scratch)."""
    bits = np.asarray(bits)
    assert bits.shape == (problem.n_groups,)
    k = np.searchsorted(problem.bits, bits)
    assert (problem.bits[np.minimum(k, len(problem.bits) - 1)] == bits).all()
    assert problem.allowed[np.arange(problem.n_groups), k].all(), "allowed bits violated"
    for tie in problem.ties:
        assert len({int(bits[g]) for g in tie}) == 1, f"tie {tie} broken: {bits}"
    for c in problem.constraints:
        val = c.value(problem, bits)
        assert val <= c.limit + constraint_tol(problem, c), f"{c.name}: {val} > {c.limit}"


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b)) + 1e-12
