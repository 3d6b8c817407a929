"""Every allocation whose reduced cost is below a budget: an exact search that proves.

With multipliers ``lam >= 0``, priced errors ``T = E + lam . C``, the Lagrangian
minimiser ``x0`` (each group at its smallest ``T``) and ``L = L(lam)``, every
allocation ``x`` satisfies exactly

``E(x) = L + sum_i rc_i(x_i) + lam . s(x)``,   ``rc_i(k) = T[i,k] - T[i,x0_i] >= 0``,

with ``s(x) = limit + tol - usage(x)`` its slack (``>= 0`` when ``x`` is feasible).
So a feasible ``x`` with ``E(x) < L + B`` has reduced costs summing to less than
``B``: it changes only groups with a move cheaper than ``B``, and only a few of them.
:func:`rc_search` visits all such allocations, group by group (breadth first, in
arrays), and drops a partial allocation as soon as it cannot end below ``L + B``:

* its reduced costs already reach ``B``;
* a budget it overdraws cannot be paid back: in each budget, the later groups'
  moves that lower its use, taken fractionally in order of reduced cost per unit
  (one-choice-per-group relaxed), cost more than what is left of ``B``;
* its slack in a budget, priced at ``lam``, cannot be used up cheaply enough:
  ``rc + min_beta (beta + lam_c * max(s_c - use_c(beta), 0)) >= B``, with
  ``use_c(beta)`` the most of budget ``c`` the later moves can take for ``beta``.

If the search finishes, the best allocation found below ``L + B`` is optimal, and
when there is none, ``L + B`` is a lower bound on the optimum. Unlike an LP-based
branch-and-bound this uses the integrality of the slack: the LP can fill each budget
to the brim with a fraction of a group, an allocation cannot, and this search counts
what each integer fill costs.

:func:`prove` deepens ``B`` geometrically from a small value until the incumbent is
proven (to ``rtol``) or a state cap or the time limit stops it; each finished round
is a valid bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..compiled import Compiled
from ..numeric import pairwise_error_bound
from .lagrange import priced
from .match import join_pairs

__all__ = ["RcSearch", "rc_search", "Proof", "prove", "MAX_STATES"]

#: A search round stops (unfinished) when it holds more partial allocations than this.
MAX_STATES = 2_000_000
_RECHECK = 8  # every this many groups, old partial allocations are bounded again
_CHUNK = 1 << 16  # partial allocations bounded at once on the grid
_GRID = 16  # cells of the reduced-cost budget in the all-budgets bound


@dataclass(frozen=True)
class RcSearch:
    """What one :func:`rc_search` round found.

    Attributes:
        finished: every allocation below ``L + budget`` was examined.
        choice: ``(M,)`` the best feasible allocation found below ``L + budget``
            (``None`` if none).
        value: its ``E - L`` (``inf`` if none).
        states: the largest number of partial allocations held at once.
    """

    finished: bool
    choice: np.ndarray | None
    value: float
    states: int


class _Priced:
    """``T``, ``x0``, ``L``, slack and the rounding margin at fixed multipliers."""

    def __init__(self, cp: Compiled, lam: np.ndarray) -> None:
        self.cp = cp
        self.lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
        t = priced(cp, self.lam)
        self.x0 = np.argmin(t, axis=1)
        rows = np.arange(cp.n)
        tmin = t[rows, self.x0]
        self.rc = t - tmin[:, None]  # inf at disallowed options
        rhs = cp.limits + cp.tol
        self.bound = float(tmin.sum()) - float(self.lam @ rhs)
        self.slack = rhs - cp.usage(self.x0)
        # float rounding in L, the slacks and the reduced costs (sums of n terms)
        total = float(np.abs(tmin).sum()) + float(self.lam.sum()) * (1.0 + float(np.abs(rhs).sum()))
        self.margin = 4.0 * pairwise_error_bound(cp.n, total)


def _curves(rcs: np.ndarray, amount: np.ndarray):
    """Fractional greedy over moves with ``amount > 0``: breakpoints ``(beta, total)``."""
    ok = amount > 0
    r, a = rcs[ok], amount[ok]
    order = np.argsort(r / a, kind="stable")
    beta = np.concatenate([[0.0], np.cumsum(r[order])])
    total = np.concatenate([[0.0], np.cumsum(a[order])])
    return beta, total


def _cost_to_reach(beta, total, need):
    """Smallest ``beta`` whose greedy total reaches ``need`` (``inf`` beyond the curve)."""
    out = np.interp(need, total, beta)
    return np.where(need > total[-1], np.inf, out)


def _slack_price(beta, total, lam_c, s):
    """``min_beta (beta + lam_c * max(s - total(beta), 0))`` for each slack ``s >= 0``."""
    if lam_c <= 0:
        return np.zeros_like(s)
    reach = _cost_to_reach(beta, total, s)
    pref = np.minimum.accumulate(beta - lam_c * total)
    idx = np.searchsorted(total, s, side="right") - 1  # breakpoints with total <= s
    return np.minimum(reach, pref[np.clip(idx, 0, None)] + lam_c * s)


def _grid_curves(mrc, mdc, mpos, levels, grid):
    """``use[j, c, g]`` / ``pay[j, c, g]``: the most of budget ``c`` the moves at positions
    ``>= j`` with reduced cost ``<= grid[g+1]`` can take / give back for ``grid[g+1]``
    (fractionally), for ``j <= levels``."""
    nc = mdc.shape[1]
    use = np.zeros((levels + 1, nc, _GRID))
    pay = np.zeros((levels + 1, nc, _GRID))
    level = np.arange(levels + 1)[:, None]
    for out, sign in ((use, 1.0), (pay, -1.0)):
        for c in range(nc):
            amount = sign * mdc[:, c]
            for g in range(_GRID):
                top = grid[g + 1]
                sel = np.flatnonzero((amount > 0) & (mrc <= top))
                if len(sel) == 0:
                    continue
                order = sel[np.argsort(mrc[sel] / amount[sel], kind="stable")]
                there = mpos[order][None, :] >= level  # (levels + 1, moves) in suffix j
                r = np.cumsum(np.where(there, mrc[order], 0.0), axis=1)
                a = np.cumsum(np.where(there, amount[order], 0.0), axis=1)
                # the greedy takes moves while their running cost stays within top, and
                # a fraction of the first one beyond it
                k = (r <= top).sum(axis=1)  # whole moves taken (r is non-decreasing)
                rows = np.arange(levels + 1)
                full = np.where(k > 0, a[rows, np.maximum(k - 1, 0)], 0.0)
                spent = np.where(k > 0, r[rows, np.maximum(k - 1, 0)], 0.0)
                nxt = np.minimum(k, len(order) - 1)
                step_r = r[rows, nxt] - spent
                step_a = a[rows, nxt] - full
                frac = np.where((k < len(order)) & (step_r > 0),
                                np.minimum((top - spent) / np.where(step_r > 0, step_r, 1.0), 1.0),
                                0.0)
                out[:, c, g] = full + frac * step_a
    return use, pay


class _Moves:
    """Every move cheaper than the threshold: group, option, reduced cost, cost change."""

    def __init__(self, cp: Compiled, p: _Priced, thr: float, most: int | None = None) -> None:
        cheap = (p.rc < thr) & (np.arange(cp.errors.shape[1]) != p.x0[:, None])
        self.rows, self.ks = np.nonzero(cheap)
        if most is not None and len(self.rows) > most:  # the cheapest moves only
            sel = np.sort(np.argsort(p.rc[self.rows, self.ks], kind="stable")[:most])
            self.rows, self.ks = self.rows[sel], self.ks[sel]
        self.rc = p.rc[self.rows, self.ks]
        x0 = p.x0[self.rows]
        self.dc = np.stack([c[self.rows, self.ks] - c[self.rows, x0] for c in cp.costs], axis=1)
        self.groups, first = np.unique(self.rows, return_index=True)
        gmin = np.minimum.reduceat(self.rc, first) if len(self.rows) else np.zeros(0)
        self.order = self.groups[np.argsort(gmin, kind="stable")]  # cheapest groups first


class _Abort(Exception):
    pass


def _forward(p: _Priced, mv: _Moves, order: np.ndarray, stop: int, thr: float,
             deadline, max_states, beam=None):
    """Partial allocations over the groups ``order[:stop]`` that may still end below
    ``thr``, every later group of ``order`` counted as still to come.

    Returns ``(rc, dc, picks, depth)``: reduced costs, cost changes, chosen move ids
    (``-1`` padded) and their count, one row per partial allocation.
    """
    nc = mv.dc.shape[1]
    pos = np.full(p.rc.shape[0], len(order), dtype=np.int64)
    pos[order] = np.arange(len(order))
    mpos = pos[mv.rows]
    ids = np.argsort(mpos, kind="stable")
    ids = ids[mpos[ids] < len(order)]
    mrc, mdc, mp = mv.rc[ids], mv.dc[ids], mpos[ids]
    starts = np.searchsorted(mp, np.arange(len(order) + 1))
    curves = []
    for j in range(stop + 1):
        tail = slice(starts[j], len(mrc))
        curves.append([(_curves(mrc[tail], mdc[tail, c]), _curves(mrc[tail], -mdc[tail, c]))
                       for c in range(nc)])
    grid = np.linspace(0.0, thr, _GRID + 1)
    use, pay = _grid_curves(mrc, mdc, mp, stop, grid)

    def lower(j, srs, sdc):
        """A lower bound on ``E - L`` of every completion (``inf``: none meets the budgets)."""
        lb = srs.copy()
        for c in range(nc):
            s = p.slack[c] - sdc[:, c]
            (ub, ut), (pb, pt) = curves[j][c]
            low = np.where(s < 0, _cost_to_reach(pb, pt, -s),
                           _slack_price(ub, ut, p.lam[c], np.maximum(s, 0.0)))
            lb = np.maximum(lb, srs + low)
        # every budget at once, one rc budget beta for the rest: in the cell
        # [grid[g], grid[g+1]], sum_c lam_c * max(0, s_c - use_c) with use_c at grid[g+1]
        alive = np.flatnonzero(lb < thr)
        for start in range(0, len(alive), _CHUNK):  # (states, cells) blocks of bounded size
            idx = alive[start:start + _CHUNK]
            s = p.slack[None, :] - sdc[idx]
            val = np.broadcast_to(grid[:-1], (len(idx), _GRID)).copy()
            for c in range(nc):
                sc = s[:, c:c + 1]
                val += p.lam[c] * np.maximum(sc - use[j, c][None, :], 0.0)
                val[sc + pay[j, c][None, :] < 0] = np.inf
            lb[idx] = np.maximum(lb[idx], srs[idx] + val.min(axis=1))
        return lb

    srs = np.zeros(1)
    sdc = np.zeros((1, nc))
    picks = np.full((1, 4), -1, dtype=np.int32)
    depth = np.zeros(1, dtype=np.int32)
    lbs = lower(0, srs, sdc)
    for j in range(stop):
        if deadline is not None and time.perf_counter() > deadline:
            raise _Abort
        recheck = (j + 1) % _RECHECK == 0 or j + 1 == stop
        parts = [(srs, sdc, picks, depth, lower(j + 1, srs, sdc) if recheck else lbs)]
        for m in range(starts[j], starts[j + 1]):
            sel = np.flatnonzero(srs + mrc[m] < thr)
            if len(sel) == 0:
                continue
            pk, dp = picks[sel], depth[sel]
            if (dp >= pk.shape[1]).any():
                pk = np.hstack([pk, np.full(pk.shape, -1, dtype=np.int32)])
            pk[np.arange(len(sel)), dp] = ids[m]
            crs, cdc = srs[sel] + mrc[m], sdc[sel] + mdc[m]
            parts.append((crs, cdc, pk, dp + 1, lower(j + 1, crs, cdc)))
        width = max(x[2].shape[1] for x in parts)
        srs = np.concatenate([x[0] for x in parts])
        sdc = np.concatenate([x[1] for x in parts])
        picks = np.concatenate([np.hstack([x[2], np.full((len(x[2]), width - x[2].shape[1]), -1,
                                                         dtype=np.int32)]) for x in parts])
        depth = np.concatenate([x[3] for x in parts])
        lbs = np.concatenate([x[4] for x in parts])
        keep = lbs < thr
        if beam is not None and keep.sum() > beam:
            keep = np.zeros(len(lbs), dtype=bool)
            keep[np.argpartition(lbs, beam)[:beam]] = True
        srs, sdc, picks, depth, lbs = srs[keep], sdc[keep], picks[keep], depth[keep], lbs[keep]
        if len(srs) > max_states:
            raise _Abort
    return srs, sdc, picks, depth


def rc_search(cp: Compiled, lam: np.ndarray, budget: float, max_states: int = MAX_STATES,
              deadline: float | None = None, beam: int | None = None,
              moves: int | None = None, _p: _Priced | None = None) -> RcSearch:
    """Examine every allocation with ``E < L(lam) + budget`` (module docstring).

    The groups with a move cheaper than ``budget`` are split in two halves
    (alternately, cheapest first); each half's partial allocations are enumerated with
    the other half counted as still to come, and the two lists are joined.

    Args:
        cp: the compiled problem (at least one constraint).
        lam: ``(C,)`` multipliers ``>= 0`` (the LP duals make the search smallest).
        budget: ``B`` in compiled units (``> 0``).
        max_states: give up (``finished=False``) beyond this many partial allocations.
        deadline: ``time.perf_counter()`` value at which to give up.
        beam: keep at most this many partial allocations per half, those with the
            smallest bounds: a heuristic search for a good allocation (then
            ``finished`` is ``False``: nothing is proven).
        moves: use only this many of the cheapest moves (a heuristic too, unless
            there are no more).
    """
    p = _p or _Priced(cp, lam)
    thr = budget + p.margin
    mv = _Moves(cp, p, thr, moves)
    exact = beam is None and (moves is None or len(mv.rc) < moves)
    h1, h2 = mv.order[0::2], mv.order[1::2]
    try:
        a = _forward(p, mv, np.concatenate([h1, h2]), len(h1), thr, deadline, max_states, beam)
        b = _forward(p, mv, np.concatenate([h2, h1]), len(h2), thr, deadline, max_states, beam)
    except _Abort:
        return RcSearch(False, None, np.inf, 0)
    peak = len(a[0]) + len(b[0])
    joined = join_pairs(p.slack, p.lam, a, b, thr, limit=4 * max_states)
    if joined is None:
        return RcSearch(False, None, np.inf, peak)
    ia, ib, val = joined
    for n, (i, j) in enumerate(zip(ia.tolist(), ib.tolist())):
        if n == 32:  # 32 pairs in a row overdraw a budget by a rounding hair
            return RcSearch(False, None, np.inf, peak)
        ms = np.concatenate([a[2][i, : a[3][i]], b[2][j, : b[3][j]]])
        choice = p.x0.copy()
        choice[mv.rows[ms]] = mv.ks[ms]
        if cp.fits(choice):
            return RcSearch(exact, choice, cp.objective(choice) - p.bound, peak)
    return RcSearch(exact, None, np.inf, peak)


@dataclass(frozen=True)
class Proof:
    """What :func:`prove` reached.

    Attributes:
        choice: ``(M,)`` best feasible allocation (the incumbent if nothing better).
        objective: its objective.
        bound: a valid lower bound on the optimum.
        rounds: search rounds run; ``states``: most partial allocations in one round.
    """

    choice: np.ndarray
    objective: float
    bound: float
    rounds: int
    states: int


def prove(cp: Compiled, lam: np.ndarray, incumbent: np.ndarray, time_limit: float | None = None,
          rtol: float = 5e-10, start: float = 1e-3, grow: float = 1.6,
          max_states: int = MAX_STATES, predict: bool = False) -> Proof:
    """Deepen :func:`rc_search` until the incumbent is proven to ``rtol`` (or a cap).

    The first budget is ``start`` times the gap between the incumbent and ``L(lam)``
    (at least the smallest reduced cost of a move); each round multiplies it by
    ``grow``, up to the gap less ``rtol`` of the incumbent. A round that finds an
    allocation below ``L + B`` ends the search: that allocation is optimal.

    Args:
        cp: the compiled problem (at least one constraint).
        lam: ``(C,)`` multipliers ``>= 0`` (the LP duals).
        incumbent: a feasible ``(M,)`` choice.
        time_limit: seconds (default: none).
        rtol: stop when the bound is within ``rtol`` (relative) of the incumbent.
        start, grow: the first budget (a share of the gap) and its growth per round.
        max_states: a round holding more partial allocations stops the search.
        predict: also stop when the next round, extrapolated from the growth of the
            last two rounds' times (their ratio squared), would not finish within
            ``time_limit``.

    Example:
        >>> import bitalloc as ba
        >>> from bitalloc.kernels import find_feasible, maximize_dual
        >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 20, 30], bits=(2, 4, 8),
        ...                                   macs=[5, 1, 1],
        ...                                   constraints=[ba.AverageBits(4.0), ba.BOPsBudget(400)])
        >>> cp = p.compiled()
        >>> out = prove(cp, maximize_dual(cp).lam, find_feasible(cp), rtol=0.0)
        >>> cp.expand(out.choice).tolist(), bool(out.bound <= out.objective)
        ([8, 4, 2], True)
    """
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    p = _Priced(cp, lam)
    best = np.asarray(incumbent)
    u = cp.objective(best)
    bound = p.bound - p.margin
    low = float(np.min(p.rc, where=(p.rc > 0) & np.isfinite(p.rc), initial=np.inf))
    b = max(start * (u - p.bound), low if np.isfinite(low) else 0.0, 1e-300)
    rounds = peak = 0
    times: list[float] = []
    while u - bound > rtol * abs(u):
        target = u - p.bound - 0.5 * rtol * abs(u)
        b = min(b, target)
        now = time.perf_counter()
        if deadline is not None:
            left = deadline - now
            # rounds grow faster than geometrically (the count of allocations below
            # L + B is about exp(c sqrt(B))): extrapolate with the last ratio squared
            guess = times[-1] * max(times[-1] / max(times[-2], 1e-3), 1.0) ** 2 \
                if len(times) >= 2 else 0.0
            if left <= 0 or (predict and guess > left):
                break
        out = rc_search(cp, lam, b, max_states=max_states, deadline=deadline, _p=p)
        times.append(time.perf_counter() - now)
        rounds += 1
        peak = max(peak, out.states)
        if not out.finished:
            break
        if out.choice is not None:
            obj = cp.objective(out.choice)
            if obj < u:
                best, u = out.choice, obj
            bound = max(bound, min(u, p.bound + out.value) - p.margin)
            break
        bound = max(bound, p.bound + b - p.margin)
        if b >= target:
            break
        b *= grow
    return Proof(best, u, min(bound, u), rounds, peak)
