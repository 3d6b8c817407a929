"""The exact LP relaxation for one constraint, from per-group convex hulls.

Hull segments are taken in order of error removed per unit of cost until the
budget is spent, so the LP optimum has at most one *split* group. Finding the split
segment is a weighted selection, done with a sampled bracket plus a sort of the
few segments inside it: a handful of passes over the ``(M, K)`` tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compiled import Compiled
from ..costs import chosen, count_above, sum_above
from .hull import Hulls, lower_hulls
from .lagrange import lagrangian_value

__all__ = ["SingleLP", "single_lp", "weighted_select", "lp_solution", "SORT_MAX"]

SORT_MAX = 1 << 18  # up to this many hull segments: one full sort
_SAMPLE = 1 << 16


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


def weighted_select(eff: np.ndarray, w, budget: float):
    """Weighted selection of hull segments, best ``eff`` first, within ``budget``.

    ``w`` is the flat segment costs: an array or ``SegmentCost.reshape(-1)``.

    Returns:
        ``(above, extra, split, used)``: every segment with ``eff > above`` is taken,
        plus the flat indices ``extra``; ``split`` is the first segment that does not
        fit (-1 if all fit); ``used`` is the cost taken.
    """
    n = eff.size
    if n <= SORT_MAX:
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
        w_above = sum_above(w, eff, t_hi) if t_hi < np.inf else 0.0
        if w_above > budget:
            continue
        inside = eff > max(t_lo, -0.5)
        if t_hi < np.inf:
            inside &= eff <= t_hi
        cand = np.flatnonzero(inside)
        del inside
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
    h = lower_hulls(err, cost, finite=errors is None and cp.all_allowed)
    m = cp.n
    base = h.options(np.zeros(m, dtype=np.int64))
    budget = float(cp.limits[c] + cp.tol[c] - chosen(cost, base).sum())
    kk = h.eff.shape[1]
    if kk == 0:
        return SingleLP(h, np.zeros(m, dtype=np.int64), -1, 0.0, 0.0)
    above, extra, split, used = weighted_select(h.eff.reshape(-1), h.d_cost.reshape(-1), budget)
    pos = count_above(h.eff, above) if above < np.inf else np.zeros(m, dtype=np.int64)
    pos += np.bincount(extra // kk, minlength=m)
    if split < 0:
        return SingleLP(h, pos, -1, 0.0, 0.0)
    g, j = divmod(split, kk)
    frac = min(max((budget - used) / h.d_cost[g, j], 0.0), 1.0)
    return SingleLP(h, pos, int(g), float(frac), float(h.eff[g, j]))



def lp_solution(cp: Compiled) -> tuple[float, np.ndarray, np.ndarray]:
    """``(bound, lam, x)`` of the one-constraint LP (as :func:`.bounds.lp_relaxation`)."""
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
