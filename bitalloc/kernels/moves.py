"""Greedy moves along convex hulls, and the split-move alternative.

:func:`hull_greedy` is QBitOpt's greedy (raise the group with the best error
decrease per unit of resource that still fits) made vectorised: on each group's
lower convex hull of (aggregated normalised cost, error) the best move is always
the next hull segment, so the greedy order is the order of segment efficiencies.
The prefix of that order that fits is found in a few passes
(:func:`bitalloc.kernels.lp.weighted_select`, no full sort for one budget); after
it, only segments that still fit the small slack left are candidates, taken one
by one (:func:`segment_fill`). Rows whose options are not in convex order, and
moves that lower some cost, are finished by the generic :func:`.fill.fill`.
Work: ``O(M K log M)`` at worst, a handful of table passes typically.

A plain greedy can be arbitrarily bad when one large, efficient move is blocked
by many small ones taken before it (sizes [1, 1, 1998]: 12.5x the optimum).
:func:`split_alternatives` fixes that the classical way: it forces each of the
best blocked moves, repairs the budget by undoing the least efficient moves of
the other groups, fills again, and keeps the best of all.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([1, 1, 2], [1, 1, 1998], bits=(2, 4, 8),
    ...                                   constraints=[ba.AverageBits(4)])
    >>> cp = p.compiled()
    >>> a = hull_greedy(cp)
    >>> cp.expand(a).tolist(), cp.expand(split_alternatives(cp, a)).tolist()
    ([8, 8, 2], [4, 4, 4])
"""

from __future__ import annotations

import heapq

import numpy as np

from ..compiled import Compiled
from ..costs import VEC_CHUNK, along, row_entries
from ..numeric import rel_gap
from .feasibility import normalised_cost
from .fill import fill, repair
from .hull import Hulls, lower_hulls
from .lp import SingleLP, single_lp

_BLOCK = 2048  # candidates taken per block between vectorised re-filters

__all__ = ["hull_greedy", "segment_fill", "split_alternatives", "SPLIT_MIN_GAP"]

#: :func:`split_alternatives` is skipped when the answer is this close to its bound.
SPLIT_MIN_GAP = 1e-6


def _segment_costs(cp: Compiled, h: Hulls) -> list[np.ndarray]:
    """Per constraint, the ``(M, K-1)`` cost added by each hull segment (0 past the hull)."""
    kk = h.eff.shape[1]
    real = h.eff >= 0
    if h.points is None:
        return [np.where(real, np.diff(c, axis=1), 0.0) for c in cp.costs]
    out = []
    for c in cp.costs:
        v = np.take_along_axis(c, h.points, axis=1)
        out.append(np.where(real, np.diff(v, axis=1)[:, :kk], 0.0))
    return out


def _next_segments(h: Hulls, pos: np.ndarray, d: list, rows: np.ndarray | None, a: int, b: int):
    """Rows ``a:b`` (of all rows, or of ``rows``): ``(rows, has_next, eff, cost (n, C))`` of
    each one's next hull segment (slices when ``rows`` is None, no gathers)."""
    kk = h.eff.shape[1]
    if rows is None:
        r = np.arange(a, b)
        p = pos[a:b]
        j = np.minimum(p, kk - 1)
        eff = row_entries(h.eff, a, b, j)
        cost = [along(dc, a, b, j, eff) for dc in d]
        return r, p < h.count[a:b] - 1, eff, cost
    r = rows[a:b]
    p = pos[r]
    j = np.minimum(p, kk - 1)
    return r, p < h.count[r] - 1, h.eff[r, j], [dc[r, j] for dc in d]


def _best_fitting(h: Hulls, pos: np.ndarray, slack: list, d: list, rows: np.ndarray | None,
                  below: float, moved: np.ndarray | None):
    """One pass over the rows, in blocks: the best ``_BLOCK`` (and ties) fitting next
    segments with efficiency below ``below`` of rows not ``moved``, in greedy order.

    Returns ``(rows, eff, cost (n, C), rest)``: ``rest`` is, per budget, the least cost
    among the fitting segments left out (``inf`` if none): when one of them exceeds
    the slack, no segment left out can fit later (the slack only shrinks).
    """
    n = len(pos) if rows is None else len(rows)
    sl = np.array(slack)
    rest = np.full(len(d), np.inf)
    keep_r, keep_e, keep_c = [], [], []
    held, th = 0, -np.inf
    for a in range(0, n, VEC_CHUNK):
        r, ok, eff, cost = _next_segments(h, pos, d, rows, a, min(a + VEC_CHUNK, n))
        for dc, sc in zip(cost, sl):
            ok &= dc <= sc
        if below < np.inf:
            ok &= eff < below
        if moved is not None:
            ok &= ~moved[r]
        cost = np.stack(cost, axis=1)
        low = ok & (eff < th)
        if low.any():
            np.minimum(rest, cost[low].min(axis=0), out=rest)
        ok &= eff >= th
        if ok.any():
            keep_r.append(r[ok]), keep_e.append(eff[ok]), keep_c.append(cost[ok])
            held += int(np.count_nonzero(ok))
        if held > 4 * _BLOCK or (a + VEC_CHUNK >= n and held > _BLOCK):
            r, eff, cost = (np.concatenate(x) for x in (keep_r, keep_e, keep_c))
            th = float(np.partition(eff, len(eff) - _BLOCK)[len(eff) - _BLOCK])
            top = eff >= th
            if not top.all():
                np.minimum(rest, cost[~top].min(axis=0), out=rest)
            keep_r, keep_e, keep_c = [r[top]], [eff[top]], [cost[top]]
            held = len(keep_r[0])
    if not keep_r:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, len(d))), rest
    r, eff, cost = (np.concatenate(x) for x in (keep_r, keep_e, keep_c))
    order = np.argsort(-eff, kind="stable")  # rows ascending within ties: the greedy order
    return r[order], eff[order], cost[order], rest


def segment_fill(h: Hulls, pos: np.ndarray, slack: np.ndarray, d: list[np.ndarray],
                 rows: np.ndarray | None) -> np.ndarray:
    """Advance ``rows`` (all when None) one hull point at a time, best next segment
    first, while it fits.

    The exact greedy order: candidates whose next segment fits now are taken in order
    of efficiency, and a group that moves offers its following segment at once (a
    heap merged with the sorted candidates). ``d[c]`` is the cost each segment adds
    to budget ``c``. Moves ``pos`` in place; returns the slack left. The candidates
    come in blocks, each one pass over the rows keeping only the best fitting
    segments below the previous block (no list of every fitting segment, no sort):
    usually the first block spends the slack, and a rank-one ``d`` is never a table.
    """
    kk = h.eff.shape[1]
    slack = np.array(slack, dtype=np.float64)
    if kk == 0 or (rows is not None and len(rows) == 0):
        return slack
    sl = slack.tolist()
    heap: list = []
    below, moved, moved_rows = np.inf, None, []
    while True:
        if moved_rows:
            moved = np.zeros(len(pos), dtype=bool)
            moved[moved_rows] = True
        cand, c_eff, c_d, rest = _best_fitting(h, pos, sl, d, rows, below, moved)
        b_rows, b_eff, b_d = cand.tolist(), c_eff.tolist(), c_d.tolist()
        if b_rows:
            below = b_eff[-1]  # a later pass looks strictly below this block
        i, n, more = 0, len(b_rows), False
        while True:
            if i >= n:
                # block spent: another pass can help only if a left-out segment may fit
                more = n > 0 and not bool((rest > np.array(sl)).any())
                if more or not heap:
                    break
                _, m, dm = heapq.heappop(heap)
            elif heap and -heap[0][0] > b_eff[i]:
                _, m, dm = heapq.heappop(heap)
            else:
                m, dm = b_rows[i], b_d[i]
                i += 1
            if all(x <= s for x, s in zip(dm, sl)):
                sl = [s - x for x, s in zip(dm, sl)]
                pos[m] += 1
                moved_rows.append(m)
                q = pos[m]
                if q < h.count[m] - 1:
                    heapq.heappush(heap, (-float(h.eff[m, q]), m,
                                          [float(dc[m, q]) for dc in d]))
        if not more:
            return np.array(sl)


def hull_greedy(cp: Compiled, lp: SingleLP | None = None) -> np.ndarray | None:
    """The greedy allocation from every group's cheapest option (see the module docstring).

    Args:
        cp: the compiled problem.
        lp: for one constraint, its :func:`.lp.single_lp` (reused: its integer part is
            the greedy prefix); computed when not given.

    Returns:
        A feasible ``(M,)`` choice, or ``None`` when the cheapest allocation (the
        greedy start) breaks some budget: start from a feasible point with
        :func:`.fill.fill` then.
    """
    weights = np.ones(len(cp.costs))
    if not cp.costs:
        return np.argmin(cp.errors, axis=1)
    if len(cp.costs) == 1:
        lp = single_lp(cp, 0) if lp is None else lp
        h, pos = lp.hulls, lp.pos.copy()
        d = [h.d_cost]
        if not cp.fits(h.options(np.zeros(cp.n, dtype=np.int64))):
            return None
    else:
        h = lower_hulls(cp.errors, normalised_cost(cp))
        pos = np.zeros(cp.n, dtype=np.int64)
        base = h.options(pos)
        if not cp.fits(base):
            return None
        slack = cp.limits + cp.tol - cp.usage(base)
        d = _segment_costs(cp, h)
        kk = h.eff.shape[1]
        if kk:
            flat = np.flatnonzero(h.eff.reshape(-1) >= 0)
            order = flat[np.argsort(-h.eff.reshape(-1)[flat], kind="stable")]
            ok = np.ones(len(order), dtype=bool)
            for dc, sc in zip(d, slack):
                ok &= np.cumsum(dc.reshape(-1)[order]) <= sc
            p = int(np.argmin(ok)) if not ok.all() else len(order)
            pos += np.bincount(order[:p] // kk, minlength=cp.n)
    slack = cp.limits + cp.tol - cp.usage(h.options(pos))
    if (slack < 0).any():  # rounding at the budget's edge: the generic fill repairs nothing
        return None
    regular = np.ones(cp.n, dtype=bool)
    regular[h.irregular] = False
    segment_fill(h, pos, slack, d, np.flatnonzero(regular))
    choice = h.options(pos)
    if len(cp.costs) > 1:  # moves that lower some budget can open others anywhere
        return fill(cp, choice, weights)
    return fill(cp, choice, weights, rows=h.irregular) if len(h.irregular) else choice


def split_alternatives(cp: Compiled, choice: np.ndarray, bound: float | None = None,
                       tries: int = 3, weights: np.ndarray | None = None,
                       min_gap: float = SPLIT_MIN_GAP,
                       objective: float | None = None) -> np.ndarray:
    """The best of ``choice`` and, for each of the ``tries`` most efficient blocked moves,
    that move forced, the budget repaired without undoing it, and filled again.

    A blocked move is a group's best improving move by error removed per unit of
    aggregated normalised cost that does not fit the remaining budget. With a valid
    lower ``bound`` (compiled units), nothing is tried when ``choice`` is already
    within a relative ``min_gap`` of it: no alternative could gain more than that.
    ``objective``: ``choice``'s objective when the caller has it (saves a pass).
    """
    if not cp.costs:
        return choice
    obj0 = cp.objective(choice) if objective is None else objective
    if bound is not None and rel_gap(obj0, bound) <= min_gap:
        return choice
    weights = np.ones(len(cp.costs)) if weights is None else weights
    agg = cp.costs[0] if len(cp.costs) == 1 else normalised_cost(cp)
    r = np.arange(cp.n)
    e0 = cp.errors[r, choice]
    gain = e0[:, None] - cp.errors
    da = agg - agg[r, choice][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((gain > 0) & (da > 0), gain / np.where(da > 0, da, 1.0), -np.inf)
    tgt = np.argmax(ratio, axis=1)
    best = ratio[r, tgt]
    cand = np.flatnonzero(np.isfinite(best))
    if len(cand) == 0:
        return choice
    if len(cand) > tries:
        cand = cand[np.argpartition(-best[cand], tries)[:tries]]
    best_choice, best_obj = choice, obj0
    for m in cand[np.argsort(-best[cand])].tolist():
        forced = np.array(choice, dtype=np.int64)
        forced[m] = tgt[m]
        if not cp.fits(forced):
            forced = repair(cp, forced, pinned=np.array([m]))
            if forced is None:
                continue
        alt = fill(cp, forced, weights)
        obj = cp.objective(alt)
        if obj < best_obj:
            best_choice, best_obj = alt, obj
    return best_choice
