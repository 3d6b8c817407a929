"""Lower bounds: the LP (convex-hull) relaxation, exactly or through the dual search.

Bounds are in the compiled problem's units (multiply by ``Compiled.e_scale``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from ..compiled import Compiled
from .dual import maximize_dual
from .lagrange import joint_infeasible, lagrangian_value, one_hot_matrices
from .lp import lp_solution

__all__ = ["lp_relaxation", "dual_bound"]


def lp_relaxation(cp: Compiled) -> tuple[float, np.ndarray, np.ndarray]:
    """Solve the LP relaxation: exactly from convex hulls for one constraint, else HiGHS.

    Returns:
        ``(bound, lam, x)``: the Lagrangian bound at the LP's duals, the duals
        ``lam >= 0`` per constraint, and the fractional solution as an ``(M, K)`` table.

    Raises:
        InfeasibleError: the relaxation itself is infeasible, so no allocation exists.
    """
    if len(cp.costs) == 1:  # exact from the convex hulls: no LP solver needed
        return lp_solution(cp)
    x = np.zeros(cp.errors.shape)
    if not cp.costs:
        x[np.arange(cp.n), np.argmin(cp.errors, axis=1)] = 1.0
        return lagrangian_value(cp, np.zeros(0)), np.zeros(0), x
    rows, cols, c, a_eq, a_ub = one_hot_matrices(cp)
    res = linprog(c, A_ub=a_ub, b_ub=cp.limits + cp.tol, A_eq=a_eq, b_eq=np.ones(cp.n),
                  bounds=(0, 1), method="highs")
    if res.status == 2:
        raise joint_infeasible(cp, "proven by the LP relaxation")
    if res.status != 0:  # pragma: no cover - HiGHS numerical trouble
        lam = np.zeros(len(cp.costs))
        return lagrangian_value(cp, lam), lam, x
    lam = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)
    x[rows, cols] = res.x
    return lagrangian_value(cp, lam), lam, x


def dual_bound(cp: Compiled) -> float:
    """The LP-relaxation bound, fast: a valid lower bound on the optimum.

    One constraint (or none): exact from the convex hulls. Several: the Lagrangian
    dual search (:func:`bitalloc.kernels.dual.maximize_dual`), which proves it
    reached the LP value; if it did not, the better of its bound and HiGHS's LP.
    Call it on problems known to be feasible (the dual of an infeasible one is
    unbounded).
    """
    if len(cp.costs) <= 1:
        return lp_relaxation(cp)[0]
    d = maximize_dual(cp)
    return d.bound if d.converged else max(d.bound, lp_relaxation(cp)[0])
