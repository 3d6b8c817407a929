"""``method="ilp"``: the exact one-hot integer program with OR-Tools CP-SAT.

CP-SAT works in integers, so the program is scaled:

* constraints whose costs are integral after a known factor (sizes x bits for
  average bits and memory, MACs x bits x act_bits for BOPs, power-of-two scalable
  tables) are encoded exactly, with right-hand side ``floor((limit + tol) * s)``;
  other tables are rounded *down* (a relaxation); if the answer then breaks the
  float budget the right-hand side is tightened and the model solved again;
* errors are shifted by each group's minimum and rounded *down* after scaling the
  largest possible total to ``2**58``, so CP-SAT's bound stays a valid lower bound
  and the answer is optimal to about ``M / 2**58`` of the error range.

Status ``"optimal"`` only when CP-SAT proved it on an exactly encoded model.
"""

from __future__ import annotations

import os

import numpy as np

from ..bounds import joint_infeasible, lp_relaxation
from ..compiled import Compiled
from ..errors import require
from ..feasibility import cheapest_choice, find_feasible
from .base import SolverOutput, register
from .greedy import greedy_fill

__all__ = ["solve_ilp"]

_OBJ_RANGE = 2.0**58
_COST_RANGE = 2.0**50


def _int_constraint(cp: Compiled, c: int) -> tuple[np.ndarray, int, bool]:
    """Integer table, right-hand side and whether the encoding is exact."""
    cost, s = cp.costs[c], cp.int_scales[c] if cp.int_scales else None
    exact = s is not None and np.abs(cost * s).max(axis=1).sum() < _COST_RANGE
    if not exact:
        span = np.abs(cost).max(axis=1).sum()
        s = 2.0 ** np.floor(np.log2(_COST_RANGE / span)) if span > 0 else 1.0
    table = np.rint(cost * s) if exact else np.floor(cost * s)
    rhs = int(np.floor((cp.limits[c] + cp.tol[c]) * s))
    return table.astype(np.int64), rhs, exact


def _objective(cp: Compiled) -> tuple[np.ndarray, float, float]:
    """Integer objective table, its scale, and the constant offset removed."""
    err = np.where(cp.allowed, cp.errors, 0.0)
    low = np.where(cp.allowed, cp.errors, np.inf).min(axis=1)
    shifted = np.where(cp.allowed, err - low[:, None], 0.0)
    span = shifted.max(axis=1).sum()
    scale = _OBJ_RANGE / span if span > 0 else 1.0
    return np.floor(shifted * scale).astype(np.int64), scale, float(low.sum())


def _hint(cp: Compiled) -> np.ndarray | None:
    start = cheapest_choice(cp)
    return greedy_fill(cp, start) if cp.fits(start) else None


def _build(cp_model, cp: Compiled, rhs_cut: list[int]):
    model = cp_model.CpModel()
    rows, cols = np.nonzero(cp.allowed)
    xs = [model.NewBoolVar("") for _ in range(len(rows))]
    per_group: list[list[int]] = [[] for _ in range(cp.n)]
    for v, m in enumerate(rows.tolist()):
        per_group[m].append(v)
    for vs in per_group:
        model.AddExactlyOne([xs[v] for v in vs])
    exact_all = True
    for c in range(len(cp.costs)):
        table, rhs, exact = _int_constraint(cp, c)
        exact_all &= exact
        coef = table[rows, cols].tolist()
        model.Add(sum(a * x for a, x in zip(coef, xs) if a) <= rhs - rhs_cut[c])
    obj, scale, offset = _objective(cp)
    model.Minimize(sum(a * x for a, x in zip(obj[rows, cols].tolist(), xs) if a))
    return model, xs, rows, cols, (scale, offset), exact_all


@register("ilp")
def solve_ilp(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Exact integer program (CP-SAT); see the module docstring for the scaling.

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
        ...                                   constraints=[ba.AverageBits(4.0)])
        >>> r = ba.solve(p, method="ilp")
        >>> r.bits.tolist(), r.status
        ([4, 4, 4], 'optimal')
    """
    cp_model = require("ortools.sat.python.cp_model", "ilp", "method='ilp'")
    if not cp.costs:
        choice = np.argmin(cp.errors, axis=1)
        return SolverOutput(choice, cp.objective(choice), True, "ilp")
    hint = _hint(cp)
    rhs_cut = [0] * len(cp.costs)
    bound = -np.inf
    for _ in range(8):
        model, xs, rows, cols, (scale, offset), exact = _build(cp_model, cp, rhs_cut)
        if hint is not None:
            for x, m, k in zip(xs, rows.tolist(), cols.tolist()):
                model.AddHint(x, int(hint[m] == k))
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = max(1, min(8, os.cpu_count() or 1))
        if time_limit:
            solver.parameters.max_time_in_seconds = float(time_limit)
        status = solver.Solve(model)
        if status == cp_model.INFEASIBLE and not any(rhs_cut):
            raise joint_infeasible(cp, "proven by the CP-SAT integer program")
        if not any(rhs_cut):  # bound of the relaxed/exact first model is valid
            bound = solver.BestObjectiveBound() / scale + offset
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            break
        choice = np.zeros(cp.n, dtype=np.int64)
        vals = np.array([solver.BooleanValue(x) for x in xs])
        choice[rows[vals]] = cols[vals]
        over = cp.usage(choice) - cp.limits - cp.tol
        if (over <= 0).all():
            proven = status == cp_model.OPTIMAL and exact and not any(rhs_cut)
            return SolverOutput(choice, max(bound, _lp_bound(cp, proven)), proven, "ilp")
        for c in np.flatnonzero(over > 0):
            # rounded-down costs admitted too much: each group's rounding is < 1 unit,
            # so cutting M units off the right-hand side makes any answer feasible
            rhs_cut[c] = 2 * rhs_cut[c] + cp.n
    # no answer in time (or tightening failed): the greedy answer with the best bound
    choice = hint if hint is not None else greedy_fill(cp, find_feasible(cp, time_limit))
    return SolverOutput(choice, max(bound, _lp_bound(cp, False)), False, "ilp")


def _lp_bound(cp: Compiled, skip: bool) -> float:
    return -np.inf if skip else lp_relaxation(cp)[0]
