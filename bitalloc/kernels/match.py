"""Matching two lists of partial allocations through the budgets' slack.

Used by the reduced-cost search (:mod:`.rcsearch`) to join its two halves: a pair is
wanted when it fits in the slack and the slack it leaves, priced at the multipliers,
is small, so only pairs in neighbouring cells of a grid on the slack are compared.
"""

from __future__ import annotations

import numpy as np

__all__ = ["join_pairs"]


def join_pairs(slack: np.ndarray, lam: np.ndarray, a, b, thr: float,
               limit: int | None = None):
    """Pairs (one item of ``a``, one of ``b``) below ``thr`` that fit in ``slack``.

    ``a`` and ``b`` are ``(value, cost change)`` arrays (``(n,)`` and ``(n, C)``, extra
    entries ignored); a pair's value is ``value_a + value_b + lam . final slack`` and it
    fits when ``slack - change_a - change_b >= 0``. Returns ``(ia, ib, value)`` sorted
    by value, or ``None`` when more than ``limit`` candidate pairs share cells.

    The final slack of a pair is below ``thr / lam_c`` in each priced budget, so
    ``b``'s cost change lies in a box of that width under ``slack - a``'s: both are
    bucketed on that grid and matched cell by cell.
    """
    q = slack[None, :] - a[1]
    dcb = b[1]
    act = np.flatnonzero(lam > 0)
    # cells at least thr / lam_c wide (wider when the values spread over too many
    # cells for an int64 key: a wider cell only lets more pairs through to the check)
    vals = np.concatenate([q[:, act], dcb[:, act]])
    top = np.abs(vals).max(axis=0, initial=0.0)
    cells = 2.0 ** (60 // max(len(act), 1) - 3)
    w = np.maximum(thr / lam[act] * (1.0 + 1e-6), top / cells)
    w = np.where(w > 0, w, 1.0)
    kq = np.floor(q[:, act] / w).astype(np.int64)
    kb = np.floor(dcb[:, act] / w).astype(np.int64)
    lo = np.minimum(kq.min(axis=0, initial=0) - 1, kb.min(axis=0, initial=0))
    span = np.maximum(kq.max(axis=0, initial=0), kb.max(axis=0, initial=0)) - lo + 2
    stride = np.array([int(np.prod(span[i + 1:])) for i in range(len(act))], dtype=np.int64)
    keyb = (kb - lo) @ stride
    sb = np.argsort(keyb, kind="stable")
    keyb = keyb[sb]
    found_a, found_b = [], []
    for off in range(2 ** len(act)):
        shift = -np.array([(off >> i) & 1 for i in range(len(act))], dtype=np.int64)
        key = (kq + shift - lo) @ stride
        left = np.searchsorted(keyb, key, side="left")
        cnt = np.searchsorted(keyb, key, side="right") - left
        tot = int(cnt.sum())
        if tot == 0:
            continue
        if limit is not None and tot > limit:
            return None
        ia = np.repeat(np.arange(len(q)), cnt)
        first = np.repeat(left - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
        ib = sb[first + np.arange(tot)]
        found_a.append(ia)
        found_b.append(ib)
    if not found_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    ia, ib = np.concatenate(found_a), np.concatenate(found_b)
    sf = q[ia] - dcb[ib]
    val = a[0][ia] + b[0][ib] + sf @ lam
    ok = (sf >= 0).all(axis=1) & (val < thr)
    ia, ib, val = ia[ok], ib[ok], val[ok]
    o = np.argsort(val, kind="stable")
    return ia[o], ib[o], val[o]
