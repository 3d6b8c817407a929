"""The one-hot integer program in OR-Tools CP-SAT, over all options or a core of them.

CP-SAT works in integers, so the program is scaled:

* constraints whose costs are integral after a known factor (sizes x bits for
  average bits and memory, MACs x bits x act_bits for BOPs, power-of-two scalable
  tables) are encoded exactly, with right-hand side ``floor((limit + tol) * s)``;
  other tables are rounded *down* (a relaxation); if the answer then breaks the
  float budget the right-hand side is tightened and the model solved again;
* errors are shifted by each group's minimum and rounded *down* after scaling the
  largest possible total to ``2**58``, so CP-SAT's bound stays a valid lower bound
  and the answer is optimal to about ``M / 2**58`` of the error range.

:func:`cpsat` solves the program restricted to a subset of options (groups left
with one option are fixed), which is how ``method="exact"`` (and ``"ilp"``) close
the small core left after reduced-cost fixing; ``method="ilp_onehot"`` gives
CP-SAT the whole program.

``proven`` only when CP-SAT proved it on an exactly encoded model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..compiled import Compiled
from ..errors import require

__all__ = ["cpsat", "CpsatOutcome"]

_OBJ_RANGE = 2.0**58
_COST_RANGE = 2.0**50


@dataclass(frozen=True)
class CpsatOutcome:
    """What :func:`cpsat` found.

    Attributes:
        choice: ``(M,)`` feasible merged choice, or ``None`` if none was found.
        bound: a valid lower bound on the optimum *of the restricted program*
            (``-inf`` when CP-SAT gave none).
        proven: CP-SAT proved ``choice`` optimal on an exactly encoded model.
        infeasible: CP-SAT proved the (exactly or relaxed) restricted program infeasible.
    """

    choice: np.ndarray | None
    bound: float
    proven: bool
    infeasible: bool


def _int_constraint(cp: Compiled, c: int) -> tuple[float, int, bool]:
    """Scale, integer right-hand side and whether the encoding is exact."""
    cost, s = cp.costs[c], cp.int_scales[c] if cp.int_scales else None
    span = float(np.abs(cost).max(axis=1).sum())
    exact = s is not None and span * s < _COST_RANGE
    if not exact:
        s = 2.0 ** np.floor(np.log2(_COST_RANGE / span)) if span > 0 else 1.0
    return float(s), int(np.floor((cp.limits[c] + cp.tol[c]) * s)), exact


def _scaled(table: np.ndarray, s: float, exact: bool) -> np.ndarray:
    return (np.rint(table * s) if exact else np.floor(table * s)).astype(np.int64)


def _build(cp_model, cp: Compiled, core: np.ndarray, keep: np.ndarray, base: np.ndarray,
           rhs_cut: list[int]):
    model = cp_model.CpModel()
    kc = keep[core]
    rc, cols = np.nonzero(kc)
    rows = core[rc]
    xs = [model.new_bool_var("") for _ in range(len(rows))]
    starts = np.searchsorted(rc, np.arange(len(core) + 1))
    for a, b in zip(starts[:-1].tolist(), starts[1:].tolist()):
        model.add_exactly_one(xs[a:b])
    fixed = np.ones(cp.n, dtype=bool)
    fixed[core] = False
    fixed_rows = np.flatnonzero(fixed)
    exact_all = True
    for c, cost in enumerate(cp.costs):
        s, rhs, exact = _int_constraint(cp, c)
        exact_all &= exact
        coef = _scaled(cost[rows, cols], s, exact)
        used = int(_scaled(cost[fixed_rows, base[fixed_rows]], s, exact).sum())
        nz = np.flatnonzero(coef)
        expr = cp_model.LinearExpr.weighted_sum([xs[i] for i in nz.tolist()], coef[nz].tolist())
        model.add(expr <= rhs - used - rhs_cut[c])
    err = np.where(kc, cp.errors[core], np.inf)
    low = err.min(axis=1)
    shifted = cp.errors[rows, cols] - low[rc]
    span = float(np.where(kc, err - low[:, None], 0.0).max(axis=1).sum())
    scale = _OBJ_RANGE / span if span > 0 else 1.0
    obj = np.floor(shifted * scale).astype(np.int64)
    nz = np.flatnonzero(obj)
    model.minimize(cp_model.LinearExpr.weighted_sum([xs[i] for i in nz.tolist()],
                                                    obj[nz].tolist()))
    offset = float(low.sum()) + float(cp.errors[fixed_rows, base[fixed_rows]].sum())
    return model, xs, rows, cols, scale, offset, exact_all


def cpsat(cp: Compiled, keep: np.ndarray | None = None, hint: np.ndarray | None = None,
          time_limit: float | None = None, workers: int | None = None,
          linearization: int = 2) -> CpsatOutcome:
    """Solve the one-hot program over the options in ``keep`` with CP-SAT.

    Args:
        cp: the compiled problem (at least one constraint).
        keep: ``(M, K)`` options to consider (a subset of ``cp.allowed``, one per row
            at least; rows with exactly one are fixed). Default: every allowed option.
        hint: a feasible ``(M,)`` choice within ``keep`` to start from.
        time_limit: seconds for CP-SAT.
        workers: CP-SAT worker threads (default ``min(8, cpu count)``).
        linearization: CP-SAT ``linearization_level``; 2 (all constraints in its LP)
            suits these LP-tight knapsacks best.
    """
    cp_model = require("ortools.sat.python.cp_model", "ilp", "method='ilp'")
    keep = cp.allowed if keep is None else keep
    core = np.flatnonzero(keep.sum(axis=1) >= 2)
    base = np.argmax(keep, axis=1)
    if len(core) == 0:
        ok = cp.fits(base)
        return CpsatOutcome(base if ok else None, cp.objective(base) if ok else np.inf, ok,
                            not ok)
    rhs_cut = [0] * len(cp.costs)
    bound = -np.inf
    for _ in range(8):
        model, xs, rows, cols, scale, offset, exact = _build(cp_model, cp, core, keep, base,
                                                             rhs_cut)
        if hint is not None:
            for x, want in zip(xs, (hint[rows] == cols).tolist()):
                model.add_hint(x, want)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = workers or max(1, min(8, os.cpu_count() or 1))
        solver.parameters.linearization_level = linearization
        if time_limit:
            solver.parameters.max_time_in_seconds = float(time_limit)
        status = solver.solve(model)
        if status == cp_model.INFEASIBLE and not any(rhs_cut):
            return CpsatOutcome(None, np.inf, False, True)
        if not any(rhs_cut):  # the bound of the first (exact or relaxed) model is valid
            bound = solver.best_objective_bound / scale + offset
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            break
        choice = base.copy()
        vals = np.array([solver.boolean_value(x) for x in xs])
        choice[rows[vals]] = cols[vals]
        over = cp.usage(choice) - cp.limits - cp.tol
        if (over <= 0).all():
            proven = status == cp_model.OPTIMAL and exact and not any(rhs_cut)
            return CpsatOutcome(choice, bound, proven, False)
        for c in np.flatnonzero(over > 0):
            # rounded-down costs admitted too much: each group's rounding is < 1 unit,
            # so cutting M units off the right-hand side makes any answer feasible
            rhs_cut[c] = 2 * rhs_cut[c] + cp.n
    return CpsatOutcome(None, bound, False, False)
