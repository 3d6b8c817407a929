"""``method="auto"`` (the default): exact when it will finish fast, else Lagrangian.

Rule, decided by size *and* by measurement on the instance itself:

1. Run the Lagrangian method (:mod:`.lagrangian`): a few passes over the tables,
   any size. If its gap is already ``<= 1e-9`` the answer is optimal: return it.
2. If ``ortools`` is not installed, return the Lagrangian answer.
3. Reduced-cost fixing (step 4) measures the core first. With one budget a core of more
   than ``AUTO_CORE_MAX_OPTIONS`` options returns the Lagrangian answer at once (as
   before the search existed); a core of at most ``SEARCH_MIN_OPTIONS`` options gets
   one CP-SAT slice first (it closes most small cores faster; ``exact`` has the same
   rule). Then, with any number of budgets, the reduced-cost search
   (:func:`.exact.search_core`) deepens its budget round by round, each round a
   measurement: it stops when the next round, extrapolated from the last two (their time
   ratio, squared), would not finish within a quarter of the time left. It ends with
   the optimum when its rounds stay small (then ``Result.method`` is ``"exact"``);
   otherwise it leaves a better bound.
4. Reduced-cost fixing (:func:`.exact.reduced_options`) measures how much of the
   problem is still open. A core of more than ``AUTO_CORE_MAX_OPTIONS``
   (group, bitwidth) options is not tried (building the CP-SAT model alone would
   cost seconds): the Lagrangian answer is returned with the best bound.
5. Otherwise CP-SAT works on the core in slices (:func:`.exact.close_core` with
   ``stop_when_stalled``) within the rest of the caller's time limit (default
   ``AUTO_TIME_LIMIT`` seconds, counted from the start). Each slice is a
   measurement: a better answer re-fixes and shrinks the core; after two slices in
   a row that neither proved the core, nor closed a fifth of the gap with their
   bound, nor shrank the core to 60 % of its groups, ``auto`` stops. The answer is
   always the better of CP-SAT's and the Lagrangian one, with the better bound; the
   status is ``"optimal"`` when CP-SAT proves the core (``Result.method`` is then
   ``"exact"``) or the gap is at most ``1e-9``.

Measured (``benchmarks/results/exact_multi.md``, ``solvers.md``, 2 shared cores): one
budget at 10^6 groups x 7 bits is proven in about 2 s (CP-SAT on the core ran into
the 10 s limit unproven before the search ran for one budget too); layer-scale cores
are proven within a second or two, and the 20000-group, three-budget test instances
(``tests/solvers/test_exact.py``) end proven in 0.7-2.5 s (by the search; CP-SAT
alone took 2.7-23 s). The harder ``multi`` family of that benchmark (7 bits, BOPs at
30 % of its range, a scoped memory budget) is *not* proven within 20 s at 2x10^4 or
10^5 groups: its optimum lies ``>= 3e-9`` (10^5) to ``>= 7e-8`` (2x10^4) above the LP
bound, where the search's rounds grow too large, and CP-SAT's bound stalls; ``auto``
then returns the better answer with the better bound. Use ``method="exact"`` (no
default limit) to insist on a proof.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 20, 30], bits=(2, 4, 8),
    ...                                   macs=[5, 1, 1],
    ...                                   constraints=[ba.AverageBits(4.0), ba.BOPsBudget(400)])
    >>> r = ba.solve(p)
    >>> r.status, r.method in ("exact", "lagrangian")
    ('optimal', True)
"""

from __future__ import annotations

import importlib.util
import time

from ..compiled import Compiled
from ..numeric import GAP_OPTIMAL, rel_gap
from .base import SolverOutput, register
from .lagrangian import lagrangian

__all__ = ["solve_auto", "have_module", "AUTO_CORE_MAX_OPTIONS", "AUTO_TIME_LIMIT"]

#: Largest core (options) ``auto`` hands to CP-SAT: beyond it building the model alone
#: costs seconds. Below it, whether to go on is measured (``close_core``).
AUTO_CORE_MAX_OPTIONS = 50_000
AUTO_TIME_LIMIT = 10.0


def have_module(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # pragma: no cover - broken installs
        return False


@register("auto")
def solve_auto(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Pick and run a method (see the module docstring for the rule)."""
    t0 = time.perf_counter()
    limit = time_limit or AUTO_TIME_LIMIT
    lag = lagrangian(cp, limit)
    gap = rel_gap(lag.objective, lag.bound)
    if gap <= GAP_OPTIMAL or not have_module("ortools"):
        return SolverOutput(lag.choice, lag.bound, False, "lagrangian")
    from .exact import close_core, reduced_options, search_core

    core = reduced_options(cp, lag)
    if len(cp.costs) == 1 and core.options > AUTO_CORE_MAX_OPTIONS:
        return SolverOutput(lag.choice, lag.bound, False, "lagrangian")  # as before the search
    left = max(limit - (time.perf_counter() - t0), 0.01)
    lag, bound, core, proven = search_core(cp, lag, core, left, predict=True)
    if proven or rel_gap(lag.objective, bound) <= GAP_OPTIMAL:
        return SolverOutput(lag.choice, bound, proven, "exact")
    core = core or reduced_options(cp, lag)  # a better answer fixes more: measured again
    if core.options > AUTO_CORE_MAX_OPTIONS:
        return SolverOutput(lag.choice, bound, False, "lagrangian")
    left = max(limit - (time.perf_counter() - t0), 0.01)
    return close_core(cp, lag, core, left, stop_when_stalled=True, bound=bound)
