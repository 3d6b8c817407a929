"""``bitalloc.solve``: validate, check reachability, run a solver, certify the answer."""

from __future__ import annotations

import math
import time

import numpy as np

from .problem import Problem
from .result import Result
from .solvers import get_solver

__all__ = ["solve", "GAP_OPTIMAL"]

#: A heuristic answer whose relative gap is at most this is reported as ``"optimal"``.
GAP_OPTIMAL = 1e-9


def _check_time_limit(time_limit) -> float | None:
    if time_limit is None:
        return None
    try:
        t = float(time_limit)
    except (TypeError, ValueError):
        raise ValueError(f"time_limit: must be a number of seconds, got {time_limit!r}") from None
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"time_limit: must be positive and finite, got {time_limit!r}")
    return t


def solve(problem: Problem, method: str = "auto", time_limit: float | None = None) -> Result:
    """Allocate bitwidths: minimise total error subject to every constraint.

    Args:
        problem: the :class:`Problem`.
        method: ``"auto"`` (default), ``"greedy"``, ``"fractional"``, ``"ilp"``, or any
            other registered solver (``bitalloc.solvers.SOLVERS``).
        time_limit: seconds for the exact solver; on expiry it returns its best
            feasible answer with status ``"feasible"`` and its proven bound.

    Returns:
        A feasible :class:`Result` with a proven lower bound.

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
    solver = get_solver(method)
    limit = _check_time_limit(time_limit)
    t0 = time.perf_counter()
    cp = problem.compiled()
    cp.check_reachable()
    out = solver(cp, limit)
    used = cp.usage(out.choice)
    if not (cp.allowed[np.arange(cp.n), out.choice].all()
            and (used <= cp.limits + cp.tol).all()):  # pragma: no cover - a solver bug
        raise RuntimeError(f"solver {out.method!r} returned an allocation outside the budget")
    per_group = out.choice[cp.group_of]
    bits = cp.bits[per_group]
    objective = float(problem.errors[np.arange(problem.n_groups), per_group].sum())
    usage = {name: (float(u), float(lim))
             for name, u, lim in zip(cp.constraint_names, used, cp.limits)}
    bound = min(float(out.bound), objective)
    gap = (objective - bound) / max(abs(objective), 1e-300)
    status = "optimal" if out.proven or gap <= GAP_OPTIMAL else "feasible"
    return Result(bits=np.asarray(bits, dtype=np.int64), objective=objective, bound=bound,
                  gap=float(gap), status=status, method=out.method,
                  seconds=time.perf_counter() - t0, usage=usage, names=problem.names)
