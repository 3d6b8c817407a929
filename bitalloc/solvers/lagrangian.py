"""``method="lagrangian"``: convex hulls and a Lagrange-multiplier search, for any scale.

One constraint: the LP relaxation of the multiple-choice knapsack is solved
exactly from the per-group lower convex hulls (:mod:`.hull`): hull segments are
taken in order of error removed per unit of cost until the budget is spent, so
the LP optimum has at most one *split* group. The integer answer takes that
group's lower hull point, fills the leftover budget greedily over all options
(:func:`.fill.fill`) and, up to a few million options, tries pairwise exchanges
(:func:`.fill.exchange`); the bound is ``L(lam*)`` at the split segment's slope, which
equals the LP value. Finding the split segment is a weighted selection, done with
a sampled bracket plus a sort of the few segments inside it, so the whole solve is
a handful of passes over the ``(M, K)`` tables.

Several constraints: the dual ``max_{lam >= 0} L(lam)`` is maximised by a
trust-region cutting-plane method (:mod:`.dual`); every evaluated ``lam`` gives a
valid bound. The integer answer is the Lagrangian minimiser at the best ``lam``
(or the best feasible one seen), repaired onto the budgets if needed and filled
greedily with the duals as prices.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
    ...                                   constraints=[ba.AverageBits(4.0)])
    >>> r = ba.solve(p, method="lagrangian")
    >>> r.bits.tolist(), r.bound <= r.objective  # optimal; the LP bound is below it
    ([4, 4, 4], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bounds import lagrangian_value
from ..compiled import Compiled
from ..feasibility import cheapest_choice, find_feasible
from .base import SolverOutput, register
from .fill import cost_scales, exchange, fill, repair
from .hull import Hulls, lower_hulls, row_count

__all__ = ["LagrangianResult", "lagrangian", "single_lp", "SingleLP", "solve_lagrangian"]

_SORT_MAX = 1 << 18  # up to this many hull segments: one full sort
_SAMPLE = 1 << 16
_SEQUENTIAL = 4096  # fill candidates up to this many are taken one by one
_EXCHANGE_MAX = 2_500_000  # options: pairwise exchanges after the fill up to this size


@dataclass(frozen=True)
class LagrangianResult:
    """Everything the Lagrangian method found (used by ``exact`` and ``auto``).

    Attributes:
        choice: ``(M,)`` feasible merged choice.
        objective: its objective.
        bound: valid lower bound ``L(lam)``.
        lam: ``(C,)`` multipliers of the bound.
        converged: the multiplier search reached its tolerance (one constraint: always).
    """

    choice: np.ndarray
    objective: float
    bound: float
    lam: np.ndarray
    converged: bool


@dataclass(frozen=True)
class SingleLP:
    """The exact LP solution for one constraint.

    Attributes:
        hulls: the per-group hulls of ``(errors, costs[c])``.
        pos: ``(M,)`` hull position of each group in the integer part of the LP solution.
        split: the group whose next hull segment is taken fractionally, or -1.
        frac: the fraction of that segment (0 when ``split`` is -1).
        lam: the multiplier ``lam*`` (the split segment's slope; 0 when all fits).
    """

    hulls: Hulls
    pos: np.ndarray
    split: int
    frac: float
    lam: float


def _sorted_prefix(cand, eff, w, budget):
    order = cand[np.argsort(-eff[cand], kind="stable")]
    cs = np.cumsum(w[order])
    p = int(np.searchsorted(cs, budget, side="right"))
    used = float(cs[p - 1]) if p else 0.0
    return order[:p], (int(order[p]) if p < len(order) else -1), used


def _select(eff: np.ndarray, w: np.ndarray, budget: float):
    """Weighted selection of hull segments, best ``eff`` first, within ``budget``.

    Returns:
        ``(above, extra, split, used)``: every segment with ``eff > above`` is taken,
        plus the flat indices ``extra``; ``split`` is the first segment that does not
        fit (-1 if all fit); ``used`` is the cost taken.
    """
    n = eff.size
    if n <= _SORT_MAX:
        extra, split, used = _sorted_prefix(np.flatnonzero(eff >= 0), eff, w, budget)
        return np.inf, extra, split, used
    rng = np.random.default_rng(0x5EED)
    idx = rng.integers(0, n, _SAMPLE)
    es = eff[idx]
    o = np.argsort(-es, kind="stable")
    cs = np.cumsum(np.where(es[o] >= 0, w[idx][o], 0.0)) * (n / _SAMPLE)
    p = int(np.searchsorted(cs, budget))
    for width in (2, 8, 32, 128):
        d = width * int(np.sqrt(_SAMPLE))
        t_hi = float(es[o[p - d]]) if p - d >= 0 else np.inf
        t_lo = float(es[o[p + d]]) if p + d < _SAMPLE else -0.5
        above = eff > t_hi
        w_above = float(np.sum(w, where=above)) if t_hi < np.inf else 0.0
        if w_above > budget:
            continue
        cand = np.flatnonzero((eff > max(t_lo, -0.5)) & ~above)
        if t_lo >= 0 and w_above + float(w[cand].sum()) <= budget:
            continue
        extra, split, used = _sorted_prefix(cand, eff, w, budget - w_above)
        return t_hi, extra, split, used + w_above
    extra, split, used = _sorted_prefix(np.flatnonzero(eff >= 0), eff, w, budget)
    return np.inf, extra, split, used


def single_lp(cp: Compiled, c: int = 0, errors: np.ndarray | None = None) -> SingleLP:
    """Exact LP relaxation for constraint ``c`` alone (others ignored).

    Args:
        cp: the compiled problem.
        c: which constraint.
        errors: an objective table to use instead of ``cp.errors`` (same shape,
            ``inf`` at disallowed options).
    """
    err = cp.errors if errors is None else errors
    cost = cp.costs[c]
    h = lower_hulls(err, cost)
    m = cp.n
    base = h.options(np.zeros(m, dtype=np.int64))
    budget = float(cp.limits[c] + cp.tol[c] - cost[np.arange(m), base].sum())
    kk = h.eff.shape[1]
    if kk == 0:
        return SingleLP(h, np.zeros(m, dtype=np.int64), -1, 0.0, 0.0)
    above, extra, split, used = _select(h.eff.reshape(-1), h.d_cost.reshape(-1), budget)
    pos = row_count(h.eff > above) if above < np.inf else np.zeros(m, dtype=np.int64)
    pos += np.bincount(extra // kk, minlength=m)
    if split < 0:
        return SingleLP(h, pos, -1, 0.0, 0.0)
    g, j = divmod(split, kk)
    frac = min(max((budget - used) / h.d_cost[g, j], 0.0), 1.0)
    return SingleLP(h, pos, int(g), float(frac), float(h.eff[g, j]))


def _segment_fill(h: Hulls, pos: np.ndarray, slack: float, regular: np.ndarray) -> float:
    """Advance regular groups one hull point at a time, best next segment first.

    On a regular row the next hull segment is the cheapest improving move and has
    the best error-per-cost ratio of any move (the hull is concave), so this is the
    greedy fill restricted to what can matter. Moves ``pos`` in place; returns the
    slack left.
    """
    kk = h.eff.shape[1]
    if kk == 0:
        return slack

    def movable(rows):
        j = pos[rows]
        ok = (j < h.count[rows] - 1) & (h.d_cost[rows, np.minimum(j, kk - 1)] <= slack)
        return rows[ok]

    rows = movable(np.flatnonzero(regular))
    while len(rows):
        j = pos[rows]
        eff = h.eff[rows, j]
        if len(rows) > _SEQUENTIAL:  # the best chunk first; the rest wait in the pool
            top = np.argpartition(-eff, _SEQUENTIAL)[:_SEQUENTIAL]
            rest = np.ones(len(rows), dtype=bool)
            rest[top] = False
            pool, rows, j, eff = rows[rest], rows[top], j[top], eff[top]
        else:
            pool = rows[:0]
        order = np.argsort(-eff, kind="stable")
        taken = []
        for m, wm in zip(rows[order].tolist(), h.d_cost[rows[order], j[order]].tolist()):
            if wm <= slack:
                slack -= wm
                pos[m] += 1
                taken.append(m)
        # skipped groups cannot fit any more; moved ones may take their next segment
        rows = movable(np.concatenate([pool, np.array(taken, dtype=np.int64)]))
    return slack


def _single_choice(cp: Compiled) -> tuple[np.ndarray, float]:
    """LP-rounded choice filled greedily, and ``lam*`` (the hulls die on return)."""
    lp = single_lp(cp, 0)
    h = lp.hulls
    pos = lp.pos.copy()
    choice = h.options(pos)
    slack = float(cp.limits[0] + cp.tol[0] - cp.usage(choice)[0])
    if slack >= 0:
        regular = np.ones(cp.n, dtype=bool)
        regular[h.irregular] = False
        _segment_fill(h, pos, slack, regular)
        choice = h.options(pos)
        if len(h.irregular):
            choice = fill(cp, choice, np.ones(1), rows=h.irregular)
    return choice, lp.lam


def _single(cp: Compiled) -> LagrangianResult:
    choice, lam_star = _single_choice(cp)
    if not cp.fits(choice):  # summation rounding at the budget's edge
        fixed = repair(cp, choice)
        choice = fill(cp, fixed if fixed is not None else find_feasible(cp), np.ones(1))
    lam = np.array([lam_star])
    if cp.n * cp.errors.shape[1] <= _EXCHANGE_MAX:
        choice = fill(cp, exchange(cp, choice, lam), np.ones(1))
    return LagrangianResult(choice, cp.objective(choice), lagrangian_value(cp, lam), lam, True)


def _multi(cp: Compiled, time_limit: float | None) -> LagrangianResult:
    from .dual import maximize_dual

    start = cheapest_choice(cp)
    if not cp.fits(start):
        start = find_feasible(cp, time_limit)  # raises InfeasibleError when none exists
    d = maximize_dual(cp, time_limit=time_limit)
    # rank moves by the duals' prices; a tiny share of each budget's scale breaks ties
    # among budgets the duals price at zero
    scales = cost_scales(cp)
    weights = d.lam + 1e-9 * max(abs(cp.objective(start)), 1e-300) / (len(scales) * scales)
    best = None
    for x in [d.choice] + ([d.feasible] if d.feasible is not None else []):
        x = x if cp.fits(x) else repair(cp, x)
        if x is not None:
            x = fill(cp, x, weights)
            if best is None or cp.objective(x) < cp.objective(best):
                best = x
    if best is None:
        best = fill(cp, start, weights)
    if cp.n * cp.errors.shape[1] <= _EXCHANGE_MAX:
        best = fill(cp, exchange(cp, best, d.lam), weights)
    return LagrangianResult(best, cp.objective(best), d.bound, d.lam, d.converged)


def lagrangian(cp: Compiled, time_limit: float | None = None) -> LagrangianResult:
    """Run the Lagrangian method; see the module docstring.

    Raises:
        InfeasibleError: no allocation meets every constraint.
    """
    if not cp.costs:
        choice = np.argmin(cp.errors, axis=1)
        obj = cp.objective(choice)
        return LagrangianResult(choice, obj, obj, np.zeros(0), True)
    if len(cp.costs) == 1:
        return _single(cp)
    return _multi(cp, time_limit)


@register("lagrangian")
def solve_lagrangian(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Lagrangian bound plus greedy fill: near-optimal with a proof, at any scale.

    Example:
        >>> import numpy as np, bitalloc as ba
        >>> rng = np.random.default_rng(0)
        >>> n = 100_000
        >>> p = ba.Problem.from_sensitivities(rng.lognormal(0, 1.5, n), rng.integers(1, 9, n),
        ...                                   constraints=[ba.AverageBits(4.0)])
        >>> r = ba.solve(p, method="lagrangian")
        >>> bool(r.gap < 1e-6), r.usage["average_bits"][0] <= 4.0
        (True, True)
    """
    res = lagrangian(cp, time_limit)
    return SolverOutput(res.choice, res.bound, False, "lagrangian")


def lp_solution(cp: Compiled) -> tuple[float, np.ndarray, np.ndarray]:
    """``(bound, lam, x)`` of the one-constraint LP (the form of ``bounds.lp_relaxation``)."""
    lp = single_lp(cp, 0)
    h = lp.hulls
    rows = np.arange(cp.n)
    x = np.zeros(cp.errors.shape)
    x[rows, h.options(lp.pos)] = 1.0
    if lp.split >= 0:
        g = lp.split
        lo = h.options(lp.pos[g:g + 1], rows[g:g + 1])[0]
        hi = h.options(lp.pos[g:g + 1] + 1, rows[g:g + 1])[0]
        x[g, lo], x[g, hi] = 1.0 - lp.frac, lp.frac
    lam = np.array([lp.lam])
    return lagrangian_value(cp, lam), lam, x
