"""Cost tables without the table: the rank-one form ``cost[i, k] = w[i] * f[k]``.

:class:`~bitalloc.AverageBits`, :class:`~bitalloc.MemoryBudget` and
:class:`~bitalloc.BOPsBudget` cost ``w_i * bits_k`` (``w`` the sizes, or MACs x
activation bits, over a divisor). At a million groups the ``(N, K)`` table is tens
of megabytes and a pass to build; the kernels mostly need costs of chosen options,
per-group minima or hull segments, all of which the two factors give directly.

This module is the one home of that representation:

* :class:`RankOneCost`: the factors, indexable like the table (``c[rows, cols]``,
  ``c[rows]``, ``c[:, k]``), and an array wherever numpy wants one (``np.asarray(c)``,
  ufuncs and operators build the dense table: the entries are the same floats, each
  ``w[i] * f[k]`` rounded once, as ``np.outer(w, f)``).
* :class:`SegmentCost`: the cost each lower-hull segment adds
  (``c[i, j+1] - c[i, j]`` along a row whose options are in convex order, exact
  hull differences for the other rows, ``0`` past the hull), again without a table.
* helpers that take either form (a plain ``ndarray`` or the lazy one):
  :func:`chosen`, :func:`along`, :func:`row_entries`, :func:`dense_rows`,
  :func:`row_min`, :func:`abs_row_max_sum`, :func:`masked_sum`, :func:`sum_above`,
  :func:`count_above`, :func:`is_lazy`.

Example:
    >>> import numpy as np
    >>> c = RankOneCost(np.array([1.0, 3.0]), np.array([2.0, 4.0, 8.0]))
    >>> c[np.array([0, 1]), np.array([2, 0])].tolist(), c.shape
    ([8.0, 6.0], (2, 3))
    >>> np.asarray(c).tolist()
    [[2.0, 4.0, 8.0], [6.0, 12.0, 24.0]]
"""

from __future__ import annotations

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["RankOneCost", "SegmentCost", "is_lazy", "dense", "chosen", "along", "row_entries",
           "dense_rows", "row_min", "abs_row_max_sum", "masked_sum", "sum_above",
           "count_above", "CHUNK", "VEC_CHUNK"]

#: Rows per block where a kernel walks a table in cache-sized pieces.
CHUNK = 8192
#: Rows per block where a kernel walks per-row vectors (no table rows touched).
VEC_CHUNK = 65536


def _readonly(a) -> np.ndarray:
    """A read-only float64 view of ``a`` (no copy when it is float64 already)."""
    a = np.asarray(a, dtype=np.float64)
    if a.flags.writeable:
        a = a.view()
        a.setflags(write=False)
    return a


class _Lazy(NDArrayOperatorsMixin):
    """Shared behaviour: read-only, 2-D, float64, an array wherever numpy asks for one."""

    ndim = 2
    dtype = np.dtype(np.float64)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def dense(self) -> np.ndarray:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def __array__(self, dtype=None, copy=None):
        out = self.dense()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(x.dense() if isinstance(x, _Lazy) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(x.dense() if isinstance(x, _Lazy) else x
                                  for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __setitem__(self, key, value) -> None:
        raise ValueError("assignment destination is read-only (a lazy cost table)")

    def reshape(self, *shape):
        """The dense table reshaped (``reshape(-1)`` of :class:`SegmentCost` stays lazy)."""
        return self.dense().reshape(*shape)

    def copy(self) -> np.ndarray:
        """The dense table (a new writable array)."""
        return np.array(self.dense())

    def __getattr__(self, name: str):
        # any other ndarray method (``max(axis=1)``, ``astype``, ``T``...) on the table
        if name.startswith("_") or "shape" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.dense(), name)


def _is_index_array(k) -> bool:
    return not isinstance(k, slice) and np.ndim(k) > 0


class RankOneCost(_Lazy):
    """``cost[i, k] = w[i] * f[k]``, kept as its two factors (read-only).

    Args:
        w: ``(M,)`` per-group weights.
        f: ``(K,)`` per-option factors (the candidate bitwidths).
    """

    def __init__(self, w, f) -> None:
        self.w = _readonly(w)
        self.f = _readonly(f)
        self.shape = (len(self.w), len(self.f))

    def dense(self) -> np.ndarray:
        """The ``(M, K)`` table (built on each call)."""
        return np.multiply(self.w[:, None], self.f[None, :])

    def min(self, axis=None, **kwargs):
        """As ``ndarray.min``; per row (``axis=1``) without the table."""
        if axis in (1, -1) and not kwargs:
            return np.where(self.w >= 0, self.w * self.f.min(), self.w * self.f.max())
        return self.dense().min(axis=axis, **kwargs)

    def max(self, axis=None, **kwargs):
        """As ``ndarray.max``; per row (``axis=1``) without the table."""
        if axis in (1, -1) and not kwargs:
            return np.where(self.w >= 0, self.w * self.f.max(), self.w * self.f.min())
        return self.dense().max(axis=axis, **kwargs)

    def column(self, k: int) -> np.ndarray:
        """``cost[:, k]`` as a new array."""
        return self.w * self.f[k]

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) == 1:
            key = (key[0], slice(None))
        if len(key) != 2:
            raise IndexError("a cost table has two axes")
        r, c = key
        if isinstance(r, slice) or isinstance(c, slice):
            wr = self.w[r]
            fc = self.f[c]
            if _is_index_array(wr) and _is_index_array(fc):
                return np.multiply(wr[:, None], fc[None, :])
            return wr * fc
        return self.w[r] * self.f[c]

    def __repr__(self) -> str:
        return f"RankOneCost(shape={self.shape}, f={self.f.tolist()})"


class SegmentCost(_Lazy):
    """Cost added by each lower-hull segment of a :class:`RankOneCost`, without a table.

    Entry ``[i, j]`` is ``cost[i, j+1] - cost[i, j]`` where ``eff[i, j] >= 0`` (rows
    whose options are in convex order, so the hull is ``0, 1, ..., count-1``) and 0
    past the hull; the rows in ``rows`` take their entries from ``table`` instead.

    Args:
        cost: the rank-one cost table.
        eff: ``(M, K-1)`` hull efficiencies (``< 0`` past the hull).
        rows: sorted rows with explicit entries.
        table: ``(len(rows), K-1)`` their entries.
    """

    def __init__(self, cost: RankOneCost, eff: np.ndarray, rows: np.ndarray | None = None,
                 table: np.ndarray | None = None) -> None:
        self.cost = cost
        self.eff = eff
        self.rows = np.zeros(0, dtype=np.int64) if rows is None else np.asarray(rows)
        self.table = np.zeros((0, eff.shape[1])) if table is None else np.asarray(table)
        self.shape = eff.shape

    def _regular(self, r, c) -> np.ndarray:
        w, f = self.cost.w[r], self.cost.f
        v = w * f[c + 1] - w * f[c]
        return np.where(self.eff[r, c] >= 0, v, 0.0)

    def __getitem__(self, key):
        if not isinstance(key, tuple) or len(key) != 2 or any(
                isinstance(k, slice) for k in key):
            return self.dense()[key]
        r, c = np.broadcast_arrays(*(np.asarray(k, dtype=np.int64) for k in key))
        out = self._regular(r, c)
        if len(self.rows):
            at = np.minimum(np.searchsorted(self.rows, r), len(self.rows) - 1)
            hit = self.rows[at] == r
            if hit.any():
                out = np.array(out, dtype=np.float64)
                out[hit] = self.table[at[hit], c[hit]]
        return out[()] if out.ndim == 0 else out

    def dense(self) -> np.ndarray:
        """The ``(M, K-1)`` table (built on each call)."""
        w, f = self.cost.w[:, None], self.cost.f[None, :]
        out = w * f[:, 1:] - w * f[:, :-1]
        np.putmask(out, self.eff < 0, 0.0)
        if len(self.rows):
            out[self.rows] = self.table
        return out

    def reshape(self, *shape):
        """``reshape(-1)``: a lazy flat view (flat ``[idx]``; :func:`masked_sum` understands it)."""
        if shape in ((-1,), ((-1,),)):
            return _FlatSegments(self)
        return self.dense().reshape(*shape)

    def masked_sum(self, mask: np.ndarray) -> float:
        """``sum(table[mask])`` for an ``(M, K-1)`` boolean mask (in blocks of rows)."""
        total = 0.0
        w, f = self.cost.w, self.cost.f
        m = self.shape[0]
        for a in range(0, m, CHUNK):
            b = min(a + CHUNK, m)
            wc = w[a:b, None]
            seg = np.subtract(wc * f[None, 1:], wc * f[None, :-1])
            sel = mask[a:b] & (self.eff[a:b] >= 0)
            total += float(np.sum(seg, where=sel))
        if len(self.rows):  # their entries replace the rank-one ones
            w_r = w[self.rows, None]
            seg = np.subtract(w_r * f[None, 1:], w_r * f[None, :-1])
            sel = mask[self.rows] & (self.eff[self.rows] >= 0)
            total += float(self.table[mask[self.rows]].sum()) - float(np.sum(seg, where=sel))
        return total


    def along(self, a: int, b: int, j: np.ndarray, eff: np.ndarray | None = None) -> np.ndarray:
        """Entries ``[a + i, j[i]]`` for the rows ``a:b`` (slices, no row gathers);
        ``eff``: those entries of ``self.eff`` when the caller has them."""
        w, f = self.cost.w[a:b], self.cost.f
        v = w * f[j + 1] - w * f[j]
        e = row_entries(self.eff, a, b, j) if eff is None else eff
        out = np.where(e >= 0, v, 0.0)
        if len(self.rows):
            lo, hi = np.searchsorted(self.rows, (a, b))
            if hi > lo:
                r = self.rows[lo:hi]
                out[r - a] = self.table[np.arange(lo, hi), j[r - a]]
        return out

    def sum_above(self, t: float) -> float:
        """``sum(table[eff > t])``: the cost of every segment more efficient than ``t``.

        Along a row in convex order ``eff`` does not increase, so those segments are a
        prefix ``0..n_i-1`` and their costs telescope to ``cost[i, n_i] - cost[i, 0]``:
        one count per row, no per-segment costs (the rows in ``rows`` add theirs).
        """
        t = max(float(t), -1.0)  # entries past the hull are -1 and cost nothing
        m = self.shape[0]
        w, f = self.cost.w, self.cost.f
        total = 0.0
        for a in range(0, m, CHUNK):
            b = min(a + CHUNK, m)
            n_i = count_above(self.eff[a:b], t)
            wc = w[a:b]
            total += float((wc * f[n_i] - wc * f[0]).sum())
        if len(self.rows):  # explicit rows: their own entries instead
            e = self.eff[self.rows]
            n_i = (e > t).sum(axis=1)
            w_r = w[self.rows]
            total += float(np.sum(self.table, where=e > t)) - float(
                (w_r * f[n_i] - w_r * f[0]).sum())
        return total


class _FlatSegments:
    """``SegmentCost.reshape(-1)``: flat indexing ``[idx]`` and :func:`masked_sum`."""

    ndim = 1

    def __init__(self, seg: SegmentCost) -> None:
        self.seg = seg
        self.shape = (seg.shape[0] * seg.shape[1],)

    def __getitem__(self, idx):
        r, c = np.divmod(np.asarray(idx, dtype=np.int64), self.seg.shape[1])
        return self.seg[r, c]

    def __array__(self, dtype=None, copy=None):
        out = self.seg.dense().reshape(-1)
        return out if dtype is None else out.astype(dtype, copy=False)


def count_above(eff: np.ndarray, t: float) -> np.ndarray:
    """``(M,)`` number of entries of each row of ``eff`` above ``t`` (in blocks of rows)."""
    m, kk = eff.shape
    out = np.empty(m, dtype=np.int64)
    ones = np.ones(kk, dtype=np.float32)
    for a in range(0, m, CHUNK):
        b = min(a + CHUNK, m)
        # a float32 matrix-vector product counts exactly (K <= 64) and runs as one call
        out[a:b] = np.greater(eff[a:b], t).astype(np.float32) @ ones
    return out


def is_lazy(table) -> bool:
    """Whether ``table`` is a lazy cost table (rather than an ``ndarray``)."""
    return isinstance(table, (_Lazy, _FlatSegments))


def dense(table) -> np.ndarray:
    """``table`` as an ``ndarray`` (the lazy forms build it)."""
    return np.asarray(table, dtype=np.float64)


def chosen(table, choice: np.ndarray) -> np.ndarray:
    """``(M,)`` cost of each row at its option ``choice[m]`` (``table[arange(M), choice]``)."""
    return along(table, 0, len(choice), choice)


def dense_rows(table, a: int, b: int) -> np.ndarray:
    """Rows ``a:b`` of a cost table as an ``ndarray`` (a view for a dense table)."""
    if isinstance(table, RankOneCost):
        return np.multiply(table.w[a:b, None], table.f[None, :])
    return table[a:b]


def row_entries(table: np.ndarray, a: int, b: int, j: np.ndarray) -> np.ndarray:
    """``table[a + i, j[i]]`` of a 2-D array (a flat take: faster than ``take_along_axis``)."""
    k = table.shape[1]
    if table.flags.c_contiguous:
        return table.reshape(-1)[np.arange(a * k, b * k, k) + j]
    return table[np.arange(a, b), j]


def along(table, a: int, b: int, j: np.ndarray, eff: np.ndarray | None = None) -> np.ndarray:
    """``table[a + i, j[i]]`` for ``i < b - a``: one entry per row of a block of rows.

    ``eff``: for a :class:`SegmentCost`, its efficiencies at those entries if known.
    """
    if isinstance(table, SegmentCost):
        return table.along(a, b, j, eff)
    if isinstance(table, RankOneCost):
        return table.w[a:b] * table.f[j]
    return row_entries(table, a, b, j)


def row_min(table, allowed: np.ndarray | None = None) -> np.ndarray:
    """``(M,)`` least cost of each row over its allowed options (all when ``allowed`` is None)."""
    if isinstance(table, RankOneCost):
        w, f = table.w, table.f
        if allowed is None or allowed.all():
            if len(w) and w.min() >= 0:
                return w * f.min()
            return table.min(axis=1)
        best = np.full(len(w), np.inf)
        for k in range(len(f)):
            np.minimum(best, np.where(allowed[:, k], w * f[k], np.inf), out=best)
        return best
    if allowed is None or allowed.all():
        return table.min(axis=1)
    return np.where(allowed, table, np.inf).min(axis=1)


def abs_row_max_sum(table) -> float:
    """``sum_m max_k |cost[m, k]|`` (no ``(M, K)`` temporary); may be ``inf``."""
    with np.errstate(over="ignore"):
        if isinstance(table, RankOneCost):
            return float((np.abs(table.w) * float(np.abs(table.f).max())).sum())
        best = np.abs(table[:, 0])
        for j in range(1, table.shape[1]):
            np.maximum(best, np.abs(table[:, j]), out=best)
        return float(best.sum())


def masked_sum(table, mask: np.ndarray) -> float:
    """``table[mask].sum()`` for a flat table and a flat boolean mask of the same size."""
    if isinstance(table, _FlatSegments):
        return table.seg.masked_sum(mask.reshape(table.seg.shape))
    return float(np.sum(table, where=mask))


def sum_above(table, eff: np.ndarray, t: float) -> float:
    """``table[eff > t].sum()`` for flat segment costs and their flat efficiencies.

    A lazy :class:`SegmentCost` view (``reshape(-1)``) sums without per-segment costs
    (:meth:`SegmentCost.sum_above`).
    """
    if isinstance(table, _FlatSegments):
        return table.seg.sum_above(t)
    return float(np.sum(table, where=eff > t))
