"""Vectorised greedy fill and repair for large problems.

:func:`fill` raises groups while something fits: each round finds, for every
candidate group, its best fitting improving move (to *any* option, not only the
next one) ranked by error removed per unit of weighted cost, and applies the
moves in that order while they keep fitting. Groups that had no fitting move drop
out of later rounds (budgets only shrink while filling), so the work after the
first round is proportional to the candidates, not to ``M``.

:func:`repair` is the reverse: it lowers groups, cheapest error increase per unit
of violated budget first, until every constraint holds.

These never loop over groups in Python except on short candidate lists; the
exact greedy order along convex hulls is :func:`bitalloc.kernels.moves.hull_greedy`.

Example:
    >>> import bitalloc as ba
    >>> import numpy as np
    >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
    ...                                   constraints=[ba.AverageBits(4.0)])
    >>> fill(p.compiled(), np.zeros(3, dtype=np.int64), np.ones(1)).tolist()  # 4 bits each
    [1, 1, 1]
"""

from __future__ import annotations

import numpy as np

from ..compiled import Compiled
from ..costs import dense
from .lagrange import priced

__all__ = ["fill", "repair", "exchange"]

_SEQUENTIAL = 4096  # candidate lists up to this long are applied one by one


def _rows_err(cp: Compiled, rows: np.ndarray, choice: np.ndarray):
    err = cp.errors[rows]
    cur = choice[rows]
    return err, cur, err[np.arange(len(rows)), cur]


def _best_moves(cp: Compiled, rows, choice, slack, weights):
    """Best fitting improving move of each row: ``(rows, target, ratio, d_cost (n, C))``."""
    err, cur, e0 = _rows_err(cp, rows, choice)
    r = np.arange(len(rows))
    gain = e0[:, None] - err  # > 0: improving (disallowed: -inf)
    ok = gain > 0
    wdc = np.zeros(err.shape)
    for c, (cost, w) in enumerate(zip(cp.costs, weights)):
        tab = cost[rows]
        dc = tab - tab[r, cur][:, None]
        ok &= dc <= slack[c]
        if w:
            wdc += w * dc
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(wdc > 0, gain / np.where(wdc > 0, wdc, 1.0), np.inf)
    ratio = np.where(ok, ratio, -1.0)
    tgt = np.argmax(ratio, axis=1)
    best = ratio[r, tgt]
    has = best >= 0
    rows, tgt, best, cur = rows[has], tgt[has], best[has], cur[has]
    dcost = np.stack([c[rows, tgt] - c[rows, cur] for c in cp.costs], axis=1) \
        if cp.costs else np.zeros((len(rows), 0))
    return rows, tgt, best, dcost


def _apply_sequential(choice, rows, tgt, dcost, slack) -> bool:
    moved = False
    for i in range(len(rows)):
        d = dcost[i]
        if (d <= slack).all():
            choice[rows[i]] = tgt[i]
            slack -= d
            moved = True
    return moved


def fill(cp: Compiled, choice: np.ndarray, weights: np.ndarray,
         rows: np.ndarray | None = None, max_rounds: int = 10_000) -> np.ndarray:
    """Raise groups greedily while an improving move fits every budget.

    Args:
        cp: the compiled problem.
        choice: a feasible ``(M,)`` choice (not modified).
        weights: ``(C,)`` non-negative price of each constraint's cost in the ranking
            (a move's rank is error removed / weighted cost added; moves that add no
            weighted cost come first).
        rows: restrict the first round to these groups (default: all).
        max_rounds: safety cap on the number of rounds.

    Returns:
        A feasible choice whose objective is at most that of ``choice``.
    """
    choice = np.array(choice, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    slack = cp.limits + cp.tol - cp.usage(choice)
    cand = np.arange(cp.n) if rows is None else np.asarray(rows, dtype=np.int64)
    for _ in range(max_rounds):
        if len(cand) == 0:
            break
        mv_rows, tgt, ratio, dcost = _best_moves(cp, cand, choice, slack, weights)
        if len(mv_rows) == 0:
            break
        order = np.argsort(-ratio, kind="stable")
        mv_rows, tgt, dcost = mv_rows[order], tgt[order], dcost[order]
        grew = (dcost < 0).any()
        if len(mv_rows) <= _SEQUENTIAL:
            _apply_sequential(choice, mv_rows, tgt, dcost, slack)
        else:
            fits = np.logical_and.accumulate((np.cumsum(dcost, axis=0) <= slack).all(axis=1))
            p = max(int(fits.sum()), 1)  # the first move fits on its own
            choice[mv_rows[:p]] = tgt[:p]
            slack -= dcost[:p].sum(axis=0)
        # a move that lowered some cost can open moves anywhere; otherwise only
        # groups that had a fitting move can still have one
        cand = np.arange(cp.n) if grew else mv_rows
    return choice


def repair(cp: Compiled, choice: np.ndarray, max_rounds: int = 200,
           pinned: np.ndarray | None = None) -> np.ndarray | None:
    """Lower groups until every budget holds; ``None`` if no lowering move helps.

    Moves are ranked by error added per unit of (normalised) violated budget removed;
    groups in ``pinned`` are never moved.
    """
    choice = np.array(choice, dtype=np.int64)
    scales = np.ones(len(cp.costs))
    r = np.arange(cp.n)
    tables: dict = {}  # dense tables, built once per violated budget
    for _ in range(max_rounds):
        over = cp.usage(choice) - cp.limits - cp.tol
        if (over <= 0).all():
            return choice
        viol = np.flatnonzero(over > 0)
        red = np.zeros(cp.errors.shape)
        for c in viol:
            if c not in tables:
                tables[c] = dense(cp.costs[c])
            cost = tables[c]
            red += (cost[r, choice][:, None] - cost) / scales[c]
        loss = cp.errors - cp.errors[r, choice][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(red > 0, loss / np.where(red > 0, red, 1.0), np.inf)
        if pinned is not None:
            ratio[pinned] = np.inf
        tgt = np.argmin(ratio, axis=1)
        best = ratio[r, tgt]
        rows = np.flatnonzero(np.isfinite(best))
        if len(rows) == 0:
            return None
        rows = rows[np.argsort(best[rows], kind="stable")]
        tg = tgt[rows]
        gain = np.stack([cp.costs[c][rows, choice[rows]] - cp.costs[c][rows, tg]
                         for c in viol], axis=1)
        done = (np.cumsum(gain, axis=0) >= over[viol]).all(axis=1)
        p = int(np.argmax(done)) + 1 if done.any() else len(rows)
        choice[rows[:p]] = tg[:p]
    return choice if cp.fits(choice) else None


def exchange(cp: Compiled, choice: np.ndarray, lam: np.ndarray, rounds: int = 50,
             width: int = 384) -> np.ndarray:
    """Pairwise exchanges: lower one group and raise another when that helps and fits.

    Candidate moves are the ``width`` lowering and ``width`` raising moves with the
    smallest Lagrangian reduced-cost change at ``lam`` (the moves an LP optimum is
    closest to making); every pair of them is checked exactly, the best improving
    fitting pair is applied, and the search repeats up to ``rounds`` times.
    """
    choice = np.array(choice, dtype=np.int64)
    total = priced(cp, lam)
    r = np.arange(cp.n)
    scales = np.ones(len(cp.costs))
    costs = [dense(c) for c in cp.costs]  # small problems only: tables, built once
    for _ in range(rounds):
        slack = cp.limits + cp.tol - cp.usage(choice)
        delta = total - total[r, choice][:, None]  # reduced-cost change of each move
        agg = sum((c - c[r, choice][:, None]) / s for c, s in zip(costs, scales))
        moves = []
        for side in (agg < 0, agg > 0):  # lowering moves, raising moves
            flat = np.flatnonzero((side & np.isfinite(delta)).reshape(-1))
            if len(flat) > width:
                flat = flat[np.argpartition(delta.reshape(-1)[flat], width)[:width]]
            moves.append(np.divmod(flat, cp.errors.shape[1]))
        (dm, dk), (um, uk) = moves
        if len(dm) == 0 or len(um) == 0:
            break
        gain = (cp.errors[dm, choice[dm]] - cp.errors[dm, dk])[:, None] + \
            (cp.errors[um, choice[um]] - cp.errors[um, uk])[None, :]
        ok = (dm[:, None] != um[None, :]) & (gain > 0)
        for c, cost in enumerate(costs):
            dd = cost[dm, dk] - cost[dm, choice[dm]]
            du = cost[um, uk] - cost[um, choice[um]]
            ok &= dd[:, None] + du[None, :] <= slack[c]
        if not ok.any():
            break
        i, j = np.unravel_index(np.argmax(np.where(ok, gain, -np.inf)), ok.shape)
        choice[dm[i]], choice[um[j]] = dk[i], uk[j]
    return choice
