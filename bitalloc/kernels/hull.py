"""Per-group lower convex hulls of (cost, error) points, vectorised over groups.

For one cost table, the continuous relaxation of a multiple-choice knapsack only
ever uses points on each group's *lower convex hull*: starting at the cheapest
allowed option (least error among equally cheap ones), each further hull point
costs more, has strictly less error, and the error saved per unit of cost
(``eff``) does not increase along the hull. Collinear points are kept, so the hull
is as fine-grained as the integer options allow.

Rows whose options are already in convex order (all allowed, costs strictly
increasing, ``eff`` non-increasing: the usual ``sensitivity * phi(bits)`` tables)
are recognised with a few array passes and need no sorting; the other rows go
through a vectorised monotone-chain scan (a loop over the ``K`` options, never over
groups).

Example:
    >>> import numpy as np
    >>> err = np.array([[8.0, 4.0, 3.5, 1.0]])
    >>> cost = np.array([[1.0, 2.0, 3.0, 4.0]])
    >>> h = lower_hulls(err, cost)
    >>> h.options(h.count - 1).tolist(), h.count.tolist()  # option 2 is above the hull
    ([3], [3])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..costs import CHUNK, RankOneCost, SegmentCost

__all__ = ["Hulls", "lower_hulls", "row_count", "monotone_chain"]


@dataclass(frozen=True, eq=False)
class Hulls:
    """Lower hulls of ``M`` groups for one cost table.

    Attributes:
        points: ``(M, K)`` option index of each hull point, cheapest first (entries
            past ``count`` repeat the last point), or ``None`` when every row's hull
            is ``0, 1, ..., count-1`` (options already in convex order).
        count: ``(M,)`` number of hull points, at least 1 (read-only; a broadcast of
            ``K`` when every option of every group is on its hull).
        d_cost: ``(M, K-1)`` cost added by hull segment ``j`` (0 past the hull): an
            array, or a lazy :class:`~bitalloc.costs.SegmentCost` for a rank-one cost
            (indexable ``[rows, cols]`` and ``reshape(-1)[flat]`` the same way).
        eff: ``(M, K-1)`` error removed per unit of cost added by hull segment ``j``
            (``eff * d_cost`` is the error it removes), non-increasing along each row;
            ``-1`` past the hull, so ``eff > t`` for any ``t >= 0`` selects real segments.
        irregular: indices of the rows that were not already in convex order (their
            hulls skip options; the other rows' options past the hull never help).
    """

    points: np.ndarray | None
    count: np.ndarray
    d_cost: np.ndarray
    eff: np.ndarray
    irregular: np.ndarray

    def options(self, pos: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Option index of hull point ``pos`` of each row (all rows, or ``rows``)."""
        pos = np.asarray(pos)
        if self.points is None:
            return pos.astype(np.int64)  # a copy: callers may keep advancing ``pos``
        pts = self.points if rows is None else self.points[rows]
        return np.take_along_axis(pts, pos[:, None], axis=1)[:, 0].astype(np.int64)


def _row_any(mask: np.ndarray) -> np.ndarray:
    """Per-row ``any`` (one contiguous pass when no row has a True, which is typical)."""
    out = np.zeros(mask.shape[0], dtype=bool)
    if mask.any():
        for j in range(mask.shape[1]):
            out |= mask[:, j]
    return out


def row_count(mask: np.ndarray) -> np.ndarray:
    """Per-row number of True, column by column (fast for few columns)."""
    out = np.zeros(mask.shape[0], dtype=np.int64)
    for j in range(mask.shape[1]):
        out += mask[:, j]
    return out


def _block_rows(e: np.ndarray, cols: list, eff: np.ndarray, d_cost: np.ndarray | None,
                count: np.ndarray, bad: np.ndarray, finite: bool) -> None:
    """:func:`_convex_rows` on one block of rows, writing into the given slices.

    ``cols``: the block's cost columns. Differences are taken column by column (long
    1-D loops; a 2-D difference of shifted views runs one short loop per row).
    """
    kk = eff.shape[1]
    dc = np.empty_like(eff) if d_cost is None else d_cost
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for j in range(kk):
            np.subtract(cols[j + 1], cols[j], out=dc[:, j])
            np.subtract(e[:, j], e[:, j + 1], out=eff[:, j])  # error removed one option up...
        # a disallowed (inf) option makes a neighbouring difference inf or nan
        if not finite and not np.isfinite(eff).all():
            bad |= _row_any(~np.isfinite(eff))
        np.divide(eff, dc, out=eff)  # ...per unit of cost added
        if not (dc > 0).all():
            bad |= _row_any(dc <= 0)
        if kk > 1:
            up = np.greater(eff[:, 1], eff[:, 0])
            for j in range(1, kk - 1):
                up |= eff[:, j + 1] > eff[:, j]
            bad |= up
    real = eff > 0
    if real.all():  # the usual table: every segment on the hull
        count += kk
    else:
        count += row_count(real)
        off = ~real
        np.putmask(eff, off, -1.0)
        np.putmask(dc, off, 0.0)


def _convex_rows(err: np.ndarray, cost, finite: bool = False):
    """Segments of rows already in convex order, and the mask of rows that are not.

    Walks the rows in blocks of :data:`bitalloc.costs.CHUNK` (every temporary stays in
    cache); a rank-one ``cost`` gives ``d_cost = None`` (:class:`SegmentCost` later).
    ``finite``: the caller knows every error is finite (no check).
    """
    m, k = err.shape
    eff = np.empty((m, k - 1))
    lazy = isinstance(cost, RankOneCost)
    d_cost = None if lazy else np.empty((m, k - 1))
    count = np.ones(m, dtype=np.int64)
    bad = np.zeros(m, dtype=bool)
    for a in range(0, m, CHUNK):
        b = min(a + CHUNK, m)
        if lazy:
            w = cost.w[a:b]
            cols = [w * fk for fk in cost.f.tolist()]
        else:
            cols = [cost[a:b, j] for j in range(k)]
        _block_rows(err[a:b], cols, eff[a:b], None if d_cost is None else d_cost[a:b],
                    count[a:b], bad[a:b], finite)
    return d_cost, eff, count, bad


def monotone_chain(err: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotone-chain lower hull of each row; returns ``(points, count)``."""
    m, k = err.shape
    finite = np.isfinite(err)
    key = np.where(finite, cost, np.inf)
    order = np.lexsort((err, key), axis=1)  # by cost, then by error
    e = np.take_along_axis(err, order, axis=1)
    c = np.take_along_axis(key, order, axis=1)
    r = np.arange(m)
    stack = np.zeros((m, k), dtype=np.int64)  # positions in sorted order
    h = np.ones(m, dtype=np.int64)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(1, k):
            ej, cj = e[:, j], c[:, j]
            act = np.isfinite(ej) & (ej < e[r, stack[r, h - 1]])
            while True:
                can = act & (h >= 2)
                if not can.any():
                    break
                rows = np.flatnonzero(can)
                a = stack[rows, h[rows] - 2]
                b = stack[rows, h[rows] - 1]
                ea, eb, ca, cb = e[rows, a], e[rows, b], c[rows, a], c[rows, b]
                # drop b when slope(a->b) is flatter than slope(b->j): (eb-ea)/(cb-ca) > ...
                pop = (eb - ea) * (cj[rows] - cb) > (ej[rows] - eb) * (cb - ca)
                if not pop.any():
                    break
                h[rows[pop]] -= 1
            stack[act, h[act]] = j
            h[act] += 1
    last = np.take_along_axis(stack, (h - 1)[:, None], axis=1)
    stack = np.where(np.arange(k)[None, :] < h[:, None], stack, last)
    return np.take_along_axis(order, stack, axis=1), h


def lower_hulls(err: np.ndarray, cost, finite: bool = False) -> Hulls:
    """Lower convex hull of every row's allowed (cost, error) points.

    Args:
        err: ``(M, K)`` errors, ``inf`` where an option is not allowed (every row
            needs one allowed option).
        cost: ``(M, K)`` finite costs: an array, or a
            :class:`~bitalloc.costs.RankOneCost` (then ``d_cost`` is a
            :class:`~bitalloc.costs.SegmentCost`: no ``(M, K-1)`` table).
        finite: every entry of ``err`` is known to be finite (every option allowed):
            skips that check.

    Returns:
        The :class:`Hulls`; memory is one or two ``(M, K-1)`` arrays (``eff``, and
        ``d_cost`` for a dense cost), plus ``points`` when some row is irregular.
    """
    err = np.asarray(err, dtype=np.float64)
    lazy = isinstance(cost, RankOneCost)
    if not lazy:
        cost = np.asarray(cost, dtype=np.float64)
    m, k = err.shape
    if k == 1:
        z = np.zeros((m, 0))
        return Hulls(None, np.ones(m, dtype=np.int64), z, z.copy(), np.zeros(0, dtype=np.int64))
    d_cost, eff, count, bad = _convex_rows(err, cost, finite)
    rows = np.flatnonzero(bad)
    if len(rows) == 0:
        if int(count.min()) == k:  # every option on every hull: one read-only count for all
            count = np.broadcast_to(np.int64(k), (m,))
        return Hulls(None, count, SegmentCost(cost, eff) if lazy else d_cost, eff, rows)
    points = np.broadcast_to(np.arange(k), (m, k)).copy()
    e_rows, c_rows = err[rows], np.asarray(cost[rows], dtype=np.float64)
    pts, cnt = monotone_chain(e_rows, c_rows)
    points[rows], count[rows] = pts, cnt
    e = np.take_along_axis(e_rows, pts, axis=1)
    c = np.take_along_axis(c_rows, pts, axis=1)
    real = np.arange(k - 1)[None, :] < (cnt - 1)[:, None]
    dc = np.where(real, np.diff(c, axis=1), 0.0)
    de = np.where(real, -np.diff(e, axis=1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ef = np.where(real, de / np.where(real, dc, 1.0), -1.0)
    eff[rows] = ef
    if lazy:
        return Hulls(points, count, SegmentCost(cost, eff, rows, dc), eff, rows)
    d_cost[rows] = dc
    return Hulls(points, count, d_cost, eff, rows)
