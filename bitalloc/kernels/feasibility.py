"""Finding a feasible starting point when the cheapest allocation is not one.

With budgets whose costs all grow with bitwidth, every group at its lowest-cost
option is feasible whenever anything is, so this is rarely needed. With general
:class:`~bitalloc.LinearBudget` tables several budgets can pull in different
directions; then an exact MILP (HiGHS through scipy, no extra dependency) either
finds a feasible allocation or proves there is none.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from ..compiled import Compiled
from .lagrange import joint_infeasible, one_hot_matrices

__all__ = ["cheapest_choice", "normalised_cost", "find_feasible"]


def normalised_cost(cp: Compiled) -> np.ndarray:
    """``(M, K)`` sum over constraints of their (already normalised) costs."""
    agg = np.zeros(cp.errors.shape)
    for cost in cp.costs:
        agg += cost
    return agg


def cheapest_choice(cp: Compiled, agg: np.ndarray | None = None) -> np.ndarray:
    """Per group, the allowed option of least normalised cost (ties: least error)."""
    agg = normalised_cost(cp) if agg is None else agg
    key = np.where(cp.allowed, agg, np.inf)
    low = key.min(axis=1, keepdims=True)
    # among options within rounding of the cheapest, prefer the smallest error
    near = key <= low + 1e-15 * np.maximum(np.abs(low), 1.0)
    return np.argmin(np.where(near, cp.errors, np.inf), axis=1)


def find_feasible(cp: Compiled, time_limit: float | None = None) -> np.ndarray:
    """A feasible merged choice, from the cheapest one or from an exact MILP.

    Raises:
        InfeasibleError: the MILP proves no allocation meets all constraints.
    """
    start = cheapest_choice(cp)
    if cp.fits(start):
        return start
    rows, cols, _, a_eq, a_ub = one_hot_matrices(cp)
    agg = normalised_cost(cp)[rows, cols]
    cons = [LinearConstraint(a_eq, 1, 1), LinearConstraint(a_ub, -np.inf, cp.limits + cp.tol)]
    opts = {"time_limit": time_limit} if time_limit else {}
    res = milp(agg, constraints=cons, integrality=np.ones(len(rows)), bounds=Bounds(0, 1),
               options=opts)
    if res.status == 2:
        raise joint_infeasible(cp, "proven by an exact MILP search")
    if res.x is None:
        raise RuntimeError(f"no feasible starting point found within the time limit "
                           f"({res.message}); try method='ilp' or a longer time_limit")
    choice = np.zeros(cp.n, dtype=np.int64)
    pick = res.x > 0.5
    choice[rows[pick]] = cols[pick]
    if not cp.fits(choice):  # HiGHS's tolerance (1e-6) can admit a slightly infeasible point
        from .fill import repair

        fixed = repair(cp, choice)
        if fixed is None:
            raise RuntimeError("the MILP's point is outside the budget and cannot be repaired; "
                               "use method='ilp' for exact integer arithmetic")
        choice = fixed
    return choice
