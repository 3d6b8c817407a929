"""``method="exact"``: proven optimum fast, by reduced-cost fixing around a Lagrangian answer.

1. The Lagrangian method (:mod:`.lagrangian`) gives an incumbent ``U`` (feasible)
   and a bound ``L = L(lam)``, usually within ``1e-5`` of each other.
2. Reduced-cost fixing: with ``T = E + lam . C``, any allocation that uses option
   ``(m, k)`` costs at least ``L + T[m, k] - min_j T[m, j]`` (weak duality). Options
   for which that exceeds ``U`` cannot be in any allocation better than the
   incumbent, so they are dropped; groups left with one option are fixed.
3. Any number of budgets (after one CP-SAT slice for a core of at most
   :data:`SEARCH_MIN_OPTIONS` options): the reduced-cost search
   (:func:`bitalloc.kernels.rcsearch.prove`) visits every allocation whose reduced
   costs sum to less than a budget ``B`` (``E = L + sum rc + lam . slack``, so nothing
   else can be below ``L + B``), with
   ``B`` deepened round by round; it ends with the optimum (or ``L + B`` within
   ``PROOF_RTOL`` of the answer) when the rounds stay small, and with a better bound
   in any case. It uses at most ``PROOF_SHARE`` of the time left, and with a time
   limit it stops before a round that, from the growth of the last ones, would not
   finish in time.
4. CP-SAT (:func:`bitalloc.kernels.cpsat.cpsat`) solves what is left (the *core*,
   typically a few percent of the groups), starting from the incumbent. Its optimum
   is the optimum of the whole problem, and its bound is a bound on the whole problem.

Status ``"optimal"`` when CP-SAT proved the core optimal, or the gap closed to
:data:`bitalloc.numeric.GAP_OPTIMAL` (``1e-9``, relative).

Measured (``benchmarks/results/exact_multi.md``): the 20000-group three-budget test
instances are proven in 0.7-2.5 s by the search (CP-SAT alone: 2.7-23 s); on the
harder ``multi`` family (BOPs at 30 % of its range) the search raises the bound by
``3e-9`` (10^5 groups) to ``1e-7`` (2x10^4), relative, but neither it nor CP-SAT
proves those within 20 s: their optimum lies further above ``L`` than the search
can afford to enumerate, and no answer close enough to it is found.

Example:
    >>> import numpy as np, bitalloc as ba
    >>> rng = np.random.default_rng(0)
    >>> sizes = rng.integers(1_000, 200_000, 2000)
    >>> p = ba.Problem.from_sensitivities(rng.lognormal(0, 1.5, 2000) * sizes, sizes,
    ...                                   bits=(2, 3, 4, 6, 8), noise="exp",
    ...                                   constraints=[ba.AverageBits(4.0)])
    >>> ba.solve(p, method="exact").status
    'optimal'
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ..compiled import Compiled
from ..errors import require
from ..kernels.cpsat import cpsat
from ..kernels.lagrange import priced
from ..kernels.rcsearch import prove
from ..numeric import GAP_OPTIMAL, rel_gap
from .base import SolverOutput, register
from .lagrangian import LagrangianResult, lagrangian

__all__ = ["solve_exact", "reduced_options", "close_core", "prove_multi", "search_core", "Core",
           "STALL_CLOSE", "STALL_SHRINK", "STALL_SLICES", "PROOF_RTOL", "PROOF_SHARE",
           "SEARCH_MIN_OPTIONS"]

#: Relative slack (of the incumbent) kept when fixing, absorbing rounding in ``L``.
FIX_RTOL = 1e-9
#: The reduced-cost search stops when its bound is this close (relative) to the answer:
#: half of :data:`bitalloc.numeric.GAP_OPTIMAL`, so such an answer is reported optimal.
PROOF_RTOL = 0.5 * GAP_OPTIMAL
#: Share of the time left after the Lagrangian step that the search may take.
PROOF_SHARE = 0.25
#: Cores of at most this many options get one CP-SAT slice before the search, which
#: closes most of them faster (measured: 5000 layers, average bits + BOPs, a 778-option
#: core: CP-SAT 0.64 s, the search 1.9 s; 20000 x 3 budgets, 1700-2700 options: the
#: search 0.7-2.5 s, CP-SAT 2.7-23 s); the search follows when the slice did not prove
#: the core (20000 x 3 budgets, seed 1: a 228-option core CP-SAT did not close in 10 s).
#: The rule of both ``exact`` and ``auto``.
SEARCH_MIN_OPTIONS = 1000
_FIRST_SLICE = 1.0      # seconds of the first CP-SAT run on the core, at least
_SLICE_PER_OPTION = 2e-3  # ... and this many seconds per core option
#: ``close_core(stop_when_stalled=True)`` stops after ``STALL_SLICES`` slices in a row
#: whose bound closed less than ``STALL_CLOSE`` of the gap and whose answer did not
#: shrink the core to ``STALL_SHRINK`` of its groups.
STALL_CLOSE = 0.2
STALL_SHRINK = 0.6
STALL_SLICES = 2
_ONE_WORKER_MAX = 5000  # cores up to this many groups run CP-SAT single-threaded


@dataclass(frozen=True)
class Core:
    """Options that survive reduced-cost fixing.

    Attributes:
        keep: ``(M, K)`` options that may appear in an allocation better than the
            incumbent (the incumbent's own options always survive).
        groups: number of groups with two or more options left.
        options: number of options in those groups.
    """

    keep: np.ndarray
    groups: int
    options: int


def reduced_options(cp: Compiled, lag: LagrangianResult) -> Core:
    """Reduced-cost fixing against the Lagrangian incumbent (see the module docstring)."""
    total = priced(cp, lag.lam)
    rows = np.arange(cp.n)
    low = total.min(axis=1)
    slack = lag.objective - lag.bound
    margin = FIX_RTOL * (abs(lag.objective) + abs(lag.bound)) + 1e-300
    keep = cp.allowed & (total - low[:, None] <= slack + margin)
    keep[rows, lag.choice] = True  # always true in exact arithmetic; never drop it
    per = keep.sum(axis=1)
    multi = per >= 2
    return Core(keep, int(multi.sum()), int(per[multi].sum()))


def close_core(cp: Compiled, lag: LagrangianResult, core: Core,
               time_limit: float | None, stop_when_stalled: bool = False,
               bound: float | None = None) -> SolverOutput:
    """Solve the core with CP-SAT; the better of its answer and the incumbent.

    CP-SAT runs in time slices (one worker, its LP at full strength: the fastest
    setting on these LP-tight knapsacks). The first slice grows with the core (CP-SAT
    needs about ``2 ms`` per option to presolve and return its first answer). When a
    slice ends unproven with a better answer, fixing is redone against it, which
    shrinks the core (about in proportion to the gap); the next slice keeps its length
    when the core at least halved, else it is four times longer. Every CP-SAT bound
    is valid for the whole problem, because each core contains every allocation at
    least as good as the incumbent it was fixed against.

    With ``stop_when_stalled`` (``auto``), the slices are also a measurement: it stops
    after ``STALL_SLICES`` slices in a row that neither proved the core, nor closed
    ``STALL_CLOSE`` of the gap with their bound, nor shrank the core to
    ``STALL_SHRINK`` of its groups (CP-SAT's proofs of these cores come in one jump,
    so one such slice is not enough evidence), and returns
    the best answer with the best bound (a slice that returned no answer at all
    measured nothing and never counts as stalled). ``bound``: a lower bound already
    proven (e.g. by :func:`prove_multi`), kept if better than ``lag.bound``.
    """
    t0 = time.perf_counter()
    best, bound = lag, max(lag.bound, -np.inf if bound is None else bound)
    slice_s = _first_slice(core)
    stalls = 0
    while True:
        if core.groups == 0:  # only the incumbent survived: it is optimal
            return SolverOutput(best.choice, max(bound, best.objective), True, "exact")
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            return SolverOutput(best.choice, bound, False, "exact")
        run = slice_s if left is None else min(slice_s, left)
        last = left is not None and run >= left
        out = cpsat(cp, keep=core.keep, hint=best.choice, time_limit=run,
                    workers=1 if core.groups <= _ONE_WORKER_MAX else None)
        if out.infeasible:  # cannot happen (the incumbent is in the core); be safe
            return SolverOutput(best.choice, bound, False, "exact")
        gap_before, bound_before = best.objective - bound, bound
        bound = max(bound, out.bound)
        better = out.choice is not None and cp.objective(out.choice) < best.objective
        if better:
            best = dataclasses.replace(best, choice=out.choice,
                                       objective=cp.objective(out.choice))
        if out.proven:
            return SolverOutput(best.choice, bound, True, "exact")
        if out.choice is not None and not better and out.bound >= best.objective - \
                FIX_RTOL * abs(best.objective):  # proven to the floored objective's hair
            return SolverOutput(best.choice, bound, True, "exact")
        if last:
            return SolverOutput(best.choice, bound, False, "exact")
        groups_before = core.groups
        if better:
            core = reduced_options(cp, best)  # best.bound is still L(lam) of best.lam
        shrunk = core.groups <= STALL_SHRINK * groups_before
        stalled = out.choice is not None and not shrunk and \
            bound - bound_before < STALL_CLOSE * max(gap_before, 0.0)
        stalls = stalls + 1 if stalled else 0
        if stop_when_stalled and stalls >= STALL_SLICES:
            return SolverOutput(best.choice, bound, False, "exact")
        if not shrunk:
            slice_s *= 4.0


def prove_multi(cp: Compiled, lag: LagrangianResult, time_limit: float | None,
                predict: bool) -> tuple[LagrangianResult, float]:
    """The reduced-cost search (:func:`bitalloc.kernels.rcsearch.prove`), any number of budgets.

    Returns the Lagrangian result with the best allocation found, and the bound the
    search proved (``lag.bound`` at least). It takes at most ``PROOF_SHARE`` of
    ``time_limit`` (CP-SAT gets the rest); ``predict``: stop before a round that, by the
    growth of the last rounds, would not finish within that.
    """
    proof = prove(cp, lag.lam, lag.choice, rtol=PROOF_RTOL, predict=predict,
                  time_limit=None if time_limit is None else PROOF_SHARE * time_limit)
    if proof.objective < lag.objective:
        lag = dataclasses.replace(lag, choice=proof.choice, objective=proof.objective)
    return lag, max(lag.bound, proof.bound)


def search_core(cp: Compiled, lag: LagrangianResult, core: Core, time_limit: float | None,
                predict: bool) -> tuple[LagrangianResult, float, Core | None, bool]:
    """What ``exact`` and ``auto`` do with a core before CP-SAT gets the rest of the time.

    A core of at most :data:`SEARCH_MIN_OPTIONS` options gets one CP-SAT slice first
    (:func:`close_core` for the first slice's length), which proves most of them; then,
    and for larger cores at once, the reduced-cost search (:func:`prove_multi`).
    Returns ``(lag, bound, core, proven)``: the Lagrangian result with the best
    allocation found, the best bound, the core (``None`` when a better answer was
    found, against which the core is to be measured again) and whether CP-SAT proved
    the answer optimal.
    """
    t0, bound = time.perf_counter(), lag.bound
    if core.options <= SEARCH_MIN_OPTIONS:
        first = _first_slice(core)
        out = close_core(cp, lag, core, first if time_limit is None else min(first, time_limit))
        obj = cp.objective(out.choice)
        if obj < lag.objective:
            lag, core = dataclasses.replace(lag, choice=out.choice, objective=obj), None
        bound = max(bound, out.bound)
        if out.proven or rel_gap(lag.objective, bound) <= GAP_OPTIMAL:
            return lag, bound, core, out.proven
        if time_limit is not None:
            time_limit = max(time_limit - (time.perf_counter() - t0), 0.01)
    found, proved = prove_multi(cp, lag, time_limit, predict)
    better = found.objective < lag.objective
    return found, max(bound, proved), (None if better else core), False


def _first_slice(core: Core) -> float:
    """Seconds of the first CP-SAT slice on ``core`` (grows with its options)."""
    return max(_FIRST_SLICE, _SLICE_PER_OPTION * core.options)


@register("exact")
def solve_exact(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Lagrangian answer, then the core: searched, then CP-SAT on what is left (docstring)."""
    require("ortools.sat.python.cp_model", "ilp", "method='exact'")
    t0 = time.perf_counter()
    lag = lagrangian(cp, time_limit)
    if rel_gap(lag.objective, lag.bound) <= GAP_OPTIMAL:
        return SolverOutput(lag.choice, lag.bound, False, "exact")
    core = reduced_options(cp, lag)
    left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
    lag, bound, core, proven = search_core(cp, lag, core, left, predict=time_limit is not None)
    if proven or rel_gap(lag.objective, bound) <= GAP_OPTIMAL:
        return SolverOutput(lag.choice, bound, proven, "exact")
    core = core or reduced_options(cp, lag)
    left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
    return close_core(cp, lag, core, left, bound=bound)
