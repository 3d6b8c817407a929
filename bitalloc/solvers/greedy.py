"""QBitOpt's greedy integer method, heap-based.

Start from a feasible point (every group at its cheapest option, or a given start),
then repeatedly apply the move with the best error decrease per unit of normalised
resource (each constraint's cost divided by its limit, summed) that still fits all
constraints. A group's candidate move is recomputed only when that group changes or
when its queued move no longer fits, so the work is ``O(N K C log N)``, no rescans.
"""

from __future__ import annotations

import heapq

import numpy as np

from ..compiled import Compiled
from ..kernels.bounds import dual_bound
from ..kernels.feasibility import find_feasible, normalised_cost
from .base import SolverOutput, register

__all__ = ["greedy_fill", "solve_greedy"]

_INF = float("inf")


class _State:
    """Python-list copies of the tables: fast scalar access in the inner loop."""

    def __init__(self, cp: Compiled, start: np.ndarray) -> None:
        self.err = cp.errors.tolist()
        self.agg = normalised_cost(cp).tolist()
        self.cost = np.stack(cp.costs, axis=2).tolist() if cp.costs else None
        self.slack = (cp.limits + cp.tol - cp.usage(start)).tolist()
        self.cur = start.tolist()
        self.nc = len(cp.costs)

    def best_move(self, m: int):
        """``(ratio, de, target)`` of the best fitting improving move of group m, or None."""
        k = self.cur[m]
        e_row, a_row = self.err[m], self.agg[m]
        e0, a0 = e_row[k], a_row[k]
        c_row = self.cost[m] if self.cost is not None else None
        best = None
        for j, ej in enumerate(e_row):
            if not ej < e0:  # also skips disallowed options (inf)
                continue
            if c_row is not None and not self._fits(c_row[j], c_row[k]):
                continue
            de, da = e0 - ej, a_row[j] - a0
            key = (_INF if da <= 0 else de / da, de)
            if best is None or key > best[:2]:
                best = (key[0], key[1], j)
        return best

    def _fits(self, cj, ck) -> bool:
        slack = self.slack
        for c in range(self.nc):
            if cj[c] - ck[c] > slack[c]:
                return False
        return True

    def apply(self, m: int, j: int) -> None:
        if self.cost is not None:
            cj, ck = self.cost[m][j], self.cost[m][self.cur[m]]
            for c in range(self.nc):
                self.slack[c] -= cj[c] - ck[c]
        self.cur[m] = j


def _all_moves(cp: Compiled, agg: np.ndarray, cur: np.ndarray, slack: np.ndarray):
    """:meth:`_State.best_move` of every group at once (same keys, same tie-breaks).

    Returns ``(groups, ratio, de, target)`` of the groups that have a move.
    """
    r = np.arange(cp.n)
    err = cp.errors
    e0 = err[r, cur]
    ok = err < e0[:, None]  # also rules out disallowed options (inf)
    for c, cost in enumerate(cp.costs):
        ok &= ~(cost - cost[r, cur][:, None] > slack[c])
    de = e0[:, None] - err
    da = agg - agg[r, cur][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok, np.where(da <= 0, _INF, de / da), -_INF)
    best = ratio.max(axis=1)
    tie = ok & (ratio == best[:, None])
    de_best = np.where(tie, de, -_INF).max(axis=1)
    target = np.argmax(tie & (de == de_best[:, None]), axis=1)  # first of equal keys
    m = np.flatnonzero(ok.any(axis=1))
    return m, best[m], de_best[m], target[m]


def greedy_fill(cp: Compiled, start: np.ndarray) -> np.ndarray:
    """Improve a feasible merged choice greedily until no improving move fits.

    Args:
        cp: the compiled problem.
        start: a feasible ``(M,)`` choice.

    Returns:
        A feasible choice whose objective is at most that of ``start``.
    """
    st = _State(cp, np.asarray(start, dtype=np.int64))
    agg = normalised_cost(cp)
    version = [0] * cp.n
    heap: list = []

    def push(m: int) -> None:
        mv = st.best_move(m)
        if mv is not None:
            heapq.heappush(heap, (-mv[0], -mv[1], m, mv[2], version[m]))

    while True:
        # every group's best move, computed at once; the heap order does not depend on
        # insertion order (group index breaks ties), so this equals pushing one by one
        ms, ratio, de, tgt = _all_moves(cp, agg, np.array(st.cur), np.array(st.slack))
        if len(ms) == 0:
            break
        msl = ms.tolist()
        heap = list(zip((-ratio).tolist(), (-de).tolist(), msl, tgt.tolist(),
                        [version[m] for m in msl]))
        heapq.heapify(heap)
        while heap:
            _, _, m, j, ver = heapq.heappop(heap)
            if ver != version[m]:
                continue
            k = st.cur[m]
            if st.cost is not None and not st._fits(st.cost[m][j], st.cost[m][k]):
                version[m] += 1
                push(m)  # the best move shrank with the slack; queue the next best
                continue
            st.apply(m, j)
            version[m] += 1
            push(m)
        # a move that lowers some cost can reopen moves of other groups: sweep once more
    choice = np.array(st.cur, dtype=np.int64)
    return choice


@register("greedy")
def solve_greedy(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Greedy integer allocation with the LP-relaxation bound.

    The bound is the LP relaxation's value: exactly from convex hulls for one
    constraint, from the Lagrangian dual search for several (see
    :func:`bitalloc.bounds.dual_bound`).

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
        ...                                   constraints=[ba.AverageBits(4.0)])
        >>> ba.solve(p, method="greedy").bits.tolist()
        [4, 4, 4]
    """
    choice = greedy_fill(cp, find_feasible(cp, time_limit))
    return SolverOutput(choice=choice, bound=dual_bound(cp), proven=False, method="greedy")
