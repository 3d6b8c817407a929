"""Maximising the Lagrangian dual over several constraints.

``L(lam) = sum_m min_k (E[m,k] + lam . C[m,k]) - lam . (limit + tol)`` is concave and
piecewise linear; ``usage(x(lam)) - limit - tol`` is a supergradient. Two phases:

1. A trust-region cutting-plane (Kelley) search gets close: each step maximises
   the model ``min_j L(lam_j) + g_j . (lam - lam_j)`` over a box around the best
   point (a tiny LP over ``C + 1`` variables), starting from the exact
   one-constraint multipliers (:func:`.lp.single_lp`).
2. Column generation finishes exactly: groups whose choice is nearly tied at the
   current ``lam`` get all their options in a small LP (HiGHS dual simplex), the
   others stay at their Lagrangian choice; the LP's duals are checked against every
   group, and the groups that would most rather move join the LP (at most doubling
   it each round), until none would. Then
   the duals are LP-optimal and ``L(lam)`` equals the LP relaxation's value, and the
   LP's basic solution has at most ``C`` fractional groups.

Every evaluated ``lam`` gives a valid bound, so stopping early only loosens it.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 20, 30], bits=(2, 4, 8),
    ...                                   macs=[5, 1, 1],
    ...                                   constraints=[ba.AverageBits(4.0), ba.BOPsBudget(400)])
    >>> d = maximize_dual(p.compiled())
    >>> d.converged, bool(d.bound <= ba.solve(p, method="ilp").objective)
    (True, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from ..compiled import Compiled
from .lagrange import lagrangian_eval, priced
from .lp import single_lp

__all__ = ["DualResult", "maximize_dual"]

_CG_START = 64          # groups in the first column-generation LP (at least)
_CG_MAX = 200_000       # give up on exactness beyond this many groups in the LP


@dataclass(frozen=True)
class DualResult:
    """Outcome of :func:`maximize_dual`.

    Attributes:
        lam: ``(C,)`` best multipliers found.
        bound: ``L(lam)``, a valid lower bound.
        choice: a rounded LP solution (fractional groups at their cheaper option), or
            the Lagrangian minimiser at ``lam``; may break a budget.
        feasible: the best minimiser seen that meets every budget, or ``None``.
        converged: ``lam`` is proven LP-optimal (to a relative ``1e-9``).
        evaluations: number of ``L`` evaluations.
    """

    lam: np.ndarray
    bound: float
    choice: np.ndarray
    feasible: np.ndarray | None
    converged: bool
    evaluations: int


class _Oracle:
    """Evaluates ``L``, remembers the best bound and the best feasible minimiser."""

    def __init__(self, cp: Compiled) -> None:
        self.cp = cp
        self.rhs = cp.limits + cp.tol
        self.best_v, self.best_lam, self.best_x = -np.inf, np.zeros(len(cp.costs)), None
        self.feas, self.feas_obj, self.count = None, np.inf, 0

    def __call__(self, lam: np.ndarray):
        v, x, u = lagrangian_eval(self.cp, lam)
        self.count += 1
        if v > self.best_v:
            self.best_v, self.best_lam, self.best_x = v, np.array(lam, dtype=float), x
        if (u <= self.rhs).all():
            obj = self.cp.objective(x)
            if obj < self.feas_obj:
                self.feas, self.feas_obj = x, obj
        return v, x, u


def _kelley(cp: Compiled, oracle: _Oracle, scales, e_scale, deadline, max_iter: int,
            rtol: float) -> None:
    """Phase 1: trust-region cutting planes in scaled multipliers ``mu``."""
    nc = len(cp.costs)
    pts, vals, grads = [], [], []

    def evaluate(mu):
        v, _, u = oracle(mu * e_scale / scales)
        pts.append(mu.copy())
        vals.append(v / e_scale)
        grads.append((u - oracle.rhs) / scales)
        return vals[-1]

    evaluate(np.zeros(nc))
    starts = np.array([single_lp(cp, c).lam * scales[c] / e_scale for c in range(nc)])
    for c in range(nc):
        evaluate(np.eye(nc)[c] * starts[c])
    ctr, f_ctr = pts[int(np.argmax(vals))].copy(), max(vals)
    delta = max(float(starts.max()), 1e-6)
    obj = np.zeros(nc + 1)
    obj[-1] = -1.0
    for _ in range(max_iter):
        if time.perf_counter() > deadline:
            return
        g = np.array(grads)
        a_ub = np.hstack([-g, np.ones((len(g), 1))])
        b_ub = np.array(vals) - np.einsum("ij,ij->i", g, np.array(pts))
        bounds = [(max(0.0, c - delta), c + delta) for c in ctr] + [(None, None)]
        res = linprog(obj, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status != 0:  # pragma: no cover - numerical trouble in the tiny LP
            return
        mu, pred = res.x[:nc], float(res.x[-1]) - f_ctr
        if pred <= rtol * max(abs(f_ctr), 1.0):
            return
        f_new = evaluate(mu)
        if f_new - f_ctr >= 0.1 * pred:  # real gain: move the box, grow it at its edge
            if np.abs(mu - ctr).max() >= 0.99 * delta:
                delta *= 2.0
            ctr, f_ctr = mu.copy(), f_new


def _margin_order(cp: Compiled, lam: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Groups ordered by how close their Lagrangian choice at ``lam`` is to a tie."""
    total = priced(cp, lam)
    rows = np.arange(cp.n)
    best = total[rows, x]
    total = np.where(np.arange(total.shape[1])[None, :] == x[:, None], np.inf, total)
    margin = total.min(axis=1) - best  # inf for single-option groups
    spread = np.zeros(cp.n)
    for lc, c in zip(lam, cp.costs):
        if lc:
            spread += lc * (c.max(axis=1) - c.min(axis=1))
    spread += np.abs(best) * 1e-12 + 1e-300
    return np.argsort(margin / spread, kind="stable")


def _restricted_lp(cp: Compiled, rows: np.ndarray, fixed: np.ndarray, e_scale: float,
                   scales: np.ndarray):
    """LP over ``rows`` (all options) with every other group at ``fixed``.

    The LP is solved in scaled units (errors / ``e_scale``, each budget / its scale)
    so that HiGHS's absolute tolerances mean the same at any magnitude of the data.

    Returns ``(value, lam, x)`` with ``x`` the ``(len(rows), K)`` solution, or None.
    """
    sub = cp.allowed[rows]
    r, k = np.nonzero(sub)
    g = rows[r]
    c = cp.errors[g, k] / e_scale
    everyone = cp.usage(fixed)
    mine = np.array([cost[rows, fixed[rows]].sum() for cost in cp.costs])
    b_ub = (cp.limits + cp.tol - (everyone - mine)) / scales
    a_ub = np.vstack([cost[g, k] / s for cost, s in zip(cp.costs, scales)])
    a_eq = csr_matrix((np.ones(len(r)), (r, np.arange(len(r)))), shape=(len(rows), len(r)))
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.ones(len(rows)), bounds=(0, 1),
                  method="highs-ds",
                  # HiGHS's default 1e-7 left the dual search unconverged at 10^5 groups x 3
                  # budgets (bound 2.8e-8 too low); the multipliers only tighten the bound,
                  # which stays valid for any multipliers.
                  options={"dual_feasibility_tolerance": 1e-10,
                           "primal_feasibility_tolerance": 1e-10})
    if res.status != 0:
        return None
    rest = np.ones(cp.n, dtype=bool)
    rest[rows] = False
    x = np.zeros(sub.shape)
    x[r, k] = res.x
    value = float((cp.errors[g, k] * res.x).sum()) + \
        float(cp.errors[np.flatnonzero(rest), fixed[rest]].sum())
    lam = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0) * e_scale / scales
    return value, lam, x


def _round_down(cp: Compiled, rows: np.ndarray, x: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Fixed groups as they are; LP groups at their cheapest used option."""
    choice = fixed.copy()
    scales = np.ones(len(cp.costs))
    agg = sum(cost[rows] / s for cost, s in zip(cp.costs, scales))
    choice[rows] = np.argmin(np.where(x > 1e-9, agg, np.inf), axis=1)
    return choice


def _column_generation(cp: Compiled, oracle: _Oracle, deadline: float, e_scale: float,
                       scales: np.ndarray):
    """Phase 2: returns ``(converged, rounded LP choice or None)``."""
    lam = oracle.best_lam
    fixed = oracle.best_x
    order = _margin_order(cp, lam, fixed)
    size = min(cp.n, max(_CG_START, 16 * len(cp.costs), cp.n // 500))
    in_lp = np.zeros(cp.n, dtype=bool)
    in_lp[order[:size]] = True
    while True:
        rows = np.flatnonzero(in_lp)
        lp = _restricted_lp(cp, rows, fixed, e_scale, scales)
        if lp is None:  # the fixed groups use too much: let more of them move
            if size >= cp.n or size > _CG_MAX or time.perf_counter() > deadline:
                return False, None
            size = min(cp.n, 4 * size)
            in_lp[order[:size]] = True
            continue
        value, lam_lp, x = lp
        v, xl, _ = oracle(lam_lp)
        total = priced(cp, lam_lp)
        r = np.arange(cp.n)
        gain = total[r, fixed] - total[r, xl]
        want = ~in_lp & (gain > 1e-12 * np.abs(total[r, fixed]) + 1e-300)
        if not want.any() or v >= value - 1e-9 * abs(value):
            return v >= value - 1e-9 * max(abs(value), 1e-300), _round_down(cp, rows, x, fixed)
        if in_lp.sum() > _CG_MAX or time.perf_counter() > deadline:
            return False, _round_down(cp, rows, x, fixed)
        cand = np.flatnonzero(want)
        grow = max(_CG_START, int(in_lp.sum()))  # partial pricing: the most eager first
        if len(cand) > grow:
            cand = cand[np.argpartition(-gain[cand], grow)[:grow]]
        in_lp[cand] = True


def maximize_dual(cp: Compiled, time_limit: float | None = None, rtol: float = 1e-7,
                  max_iter: int = 60) -> DualResult:
    """Maximise ``L(lam)`` over ``lam >= 0`` (see the module docstring).

    Args:
        cp: the compiled problem (at least one constraint).
        time_limit: stop after about this many seconds (default: no limit).
        rtol: phase 1 stops when its model promises less than this relative gain.
        max_iter: cap on the phase-1 iterations.
    """
    deadline = time.perf_counter() + (time_limit if time_limit else np.inf)
    oracle = _Oracle(cp)
    scales = np.ones(len(cp.costs))
    v0 = float(np.where(cp.allowed, cp.errors, np.inf).min(axis=1).sum())
    top = float(np.where(cp.allowed, cp.errors, -np.inf).max(axis=1).sum())
    e_scale = max(abs(v0), top - v0, 1e-300)
    if cp.n > _CG_START:  # smaller problems go straight to one exact LP
        _kelley(cp, oracle, scales, e_scale, deadline, max_iter, rtol)
    else:
        oracle(np.zeros(len(cp.costs)))
    converged, rounded = _column_generation(cp, oracle, deadline, e_scale, scales)
    choice = rounded if rounded is not None else oracle.best_x
    return DualResult(lam=oracle.best_lam, bound=float(oracle.best_v), choice=choice,
                      feasible=oracle.feas, converged=converged, evaluations=oracle.count)
