"""``bitalloc.solve``: validate, check reachability, run a solver, certify the answer."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np

from . import certify
from .compiled import Compiled
from .costs import row_entries
from .errors import InfeasibleError
from .kernels.feasibility import cheapest_choice
from .kernels.fill import fill, repair
from .numeric import GAP_OPTIMAL, TOL, rel_gap, sum_error_bound
from .problem import Problem
from .result import Result
from .solvers import SolverOutput, get_solver

__all__ = ["solve", "run_method", "GAP_OPTIMAL"]


def _check_time_limit(time_limit) -> float | None:
    if time_limit is None:
        return None
    if isinstance(time_limit, bool):
        raise ValueError(f"time_limit: must be a number of seconds, got {time_limit!r}")
    try:
        t = float(time_limit)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"time_limit: must be a number of seconds, got {time_limit!r}") from None
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"time_limit: must be positive and finite, got {time_limit!r}")
    return t


def _margin(cp: Compiled) -> float:
    """Normalised rounding margin of a usage sum (every budget has scale 1)."""
    return 4.0 * sum_error_bound(cp.n + len(cp.bits), 1.0) + TOL


def check_reachable(problem: Problem, cp: Compiled) -> None:
    """:class:`InfeasibleError` if some constraint alone cannot be met, decided exactly."""
    lows = cp.min_costs()
    for c, (lim, low) in enumerate(zip(cp.stated(), lows)):
        if low > lim + cp.tol[c]:
            raise cp.infeasible(c, low)
        if low > lim - _margin(cp):  # too close to call in floating point
            key = np.where(cp.allowed, cp.costs[c], np.inf)
            k = np.argmin(key, axis=1)[cp.group_of]
            con = problem.constraints[c]
            exact = con.exact_value(problem, problem.bits[k])
            if exact > Fraction(con.limit):
                raise InfeasibleError(
                    f"{con.name}: max {con.limit:.17g}, smallest reachable {float(exact):.17g} "
                    f"with every group at its lowest-cost allowed bits (checked exactly)",
                    constraint=con.name, limit=float(con.limit), reachable=float(exact))


def certified_choice(problem: Problem, cp: Compiled, choice: np.ndarray) -> tuple[np.ndarray, bool]:
    """``choice`` if it meets every constraint exactly, else a repaired one.

    Returns ``(choice, unchanged)``. A repair lowers groups until the budgets hold
    with a rounding margin, then fills greedily within that margin.
    """
    choice = np.asarray(choice, dtype=np.int64)
    if not certify.violated(problem, cp.per_group(choice)):
        return choice, True
    margin = _margin(cp)
    zero = np.zeros(len(cp.limits))
    for _ in range(6):
        tight = cp.with_limits(cp.limits - margin, zero)
        for start in (repair(tight, choice), cheapest_choice(cp)):
            if start is None:
                continue
            cand = fill(tight, start, np.ones(len(cp.limits))) if tight.fits(start) else start
            if not certify.violated(problem, cp.per_group(cand)):
                return cand, False
        margin *= 64.0
    raise RuntimeError("no allocation within the budget could be certified; "
                       "please report this problem")  # pragma: no cover


def run_method(problem: Problem, cp: Compiled, method: str,
               time_limit: float | None) -> tuple[np.ndarray, float, bool, str]:
    """Pre-check, run ``method`` on ``cp`` and certify: ``(choice, bound, proven, method)``.

    ``cp`` must be ``problem.compiled()`` (or the same with other limits, as pareto
    uses); the bound is in the problem's units.
    """
    check_reachable(problem, cp)
    out: SolverOutput = get_solver(method)(cp, time_limit)
    choice, unchanged = certified_choice(problem, cp, out.choice)
    return choice, float(out.bound) * cp.e_scale, out.proven and unchanged, out.method


def solve(problem: Problem, method: str = "auto", time_limit: float | None = None) -> Result:
    """Allocate bitwidths: minimise total error subject to every constraint.

    Args:
        problem: the :class:`Problem`.
        method: ``"auto"`` (default), ``"greedy"``, ``"fractional"``, ``"ilp"``, or any
            other registered solver (``bitalloc.solvers.SOLVERS``).
        time_limit: seconds for the exact solver; on expiry it returns its best
            feasible answer with status ``"feasible"`` and its proven bound.

    Returns:
        A :class:`Result` that meets every constraint exactly, with a proven lower bound.

    Raises:
        ValueError: bad ``method``, ``time_limit`` or ``problem``.
        InfeasibleError: no allocation meets every constraint; the message names the
            constraint and the smallest value it can reach.

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([8.0, 1.0], [100, 100], bits=(2, 4, 8),
        ...                                   constraints=[ba.AverageBits(5.0)])
        >>> r = ba.solve(p, method="greedy")
        >>> r.bits.tolist(), r.usage["average_bits"][0] <= 5.0
        ([4, 4], True)
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"problem: expected a bitalloc.Problem, got {type(problem).__name__}")
    get_solver(method)
    limit = _check_time_limit(time_limit)
    t0 = time.perf_counter()
    cp = problem.compiled()
    choice, bound, proven, used_method = run_method(problem, cp, method, limit)
    per_group = cp.per_group(choice)
    objective = float(row_entries(problem.errors, 0, problem.n_groups, per_group).sum())
    bound = min(bound, objective)
    gap = rel_gap(objective, bound)
    status = "optimal" if proven or gap <= GAP_OPTIMAL else "feasible"
    return Result(bits=cp.bits[per_group].astype(np.int64), objective=objective, bound=bound,
                  gap=gap, status=status, method=used_method,
                  seconds=time.perf_counter() - t0, usage=certify.usage(problem, per_group),
                  names=problem.names)
