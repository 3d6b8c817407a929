"""Lower bounds: the LP (convex-hull) relaxation and Lagrangian dual values.

For a multiple-choice knapsack the LP relaxation of the one-hot program equals the
Lagrangian dual ``max_{lam >= 0} L(lam)`` with
``L(lam) = sum_m min_k (E[m,k] + sum_c lam_c C_c[m,k]) - sum_c lam_c limit_c``.
By weak duality ``L(lam)`` is a lower bound on the integer optimum for *any*
``lam >= 0``, so a bound computed from an LP solver's duals stays valid even when
the LP solver is only accurate to its tolerance.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from .compiled import Compiled
from .errors import InfeasibleError

__all__ = ["lagrangian_value", "lagrangian_eval", "lp_relaxation", "dual_bound", "priced",
           "one_hot_matrices", "joint_infeasible"]


def priced(cp: Compiled, lam: np.ndarray) -> np.ndarray:
    """``E + sum_c lam_c C_c``: the errors with each budget priced at ``lam``.

    ``inf`` at disallowed options, as in ``cp.errors``; ``cp.errors`` itself (not a
    copy) when every ``lam`` is zero, so callers must not write to the result.
    """
    total = None
    for lc, c in zip(lam, cp.costs):
        if lc:
            total = cp.errors + lc * c if total is None else total + lc * c
    if total is None:
        return cp.errors
    if not cp.allowed.all():  # inf + (-inf) cannot occur (costs are finite); keep inf exact
        total[~cp.allowed] = np.inf
    return total


def lagrangian_eval(cp: Compiled, lam) -> tuple[float, np.ndarray, np.ndarray]:
    """``L(lam)`` with its minimiser and the minimiser's usage (a subgradient oracle).

    Returns:
        ``(value, choice, usage)``: the bound ``L(lam)`` (valid for any ``lam >= 0``),
        the ``(M,)`` choice minimising ``E + lam . C`` per group, and its ``(C,)`` usage
        (``usage - limit - tol`` is a supergradient of ``L`` at ``lam``).

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([4.0, 1.0], [1, 1], bits=(2, 4), noise="exp",
        ...                                   constraints=[ba.AverageBits(3.0)])
        >>> value, choice, usage = lagrangian_eval(p.compiled(), [0.0])
        >>> choice.tolist(), usage.tolist()
        ([1, 1], [4.0])
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float64).reshape(-1), 0.0)
    total = priced(cp, lam)
    rows = np.arange(cp.n)
    choice = np.argmin(total, axis=1)
    usage = cp.usage(choice)
    # the feasible set admits usage up to limit + tol, so the bound subtracts that
    value = float(total[rows, choice].sum()) - float(lam @ (cp.limits + cp.tol))
    return value, choice, usage


def lagrangian_value(cp: Compiled, lam: np.ndarray) -> float:
    """``L(lam)``: a valid lower bound on the optimum for any ``lam >= 0``."""
    return lagrangian_eval(cp, lam)[0]


def one_hot_matrices(cp: Compiled):
    """Sparse one-hot program over allowed options.

    Returns:
        ``(rows, cols, c, a_eq, a_ub)``: group and option of each variable, the
        objective, the one-per-group equality matrix and the constraint matrix.
    """
    rows, cols = np.nonzero(cp.allowed)
    nvar = len(rows)
    c = cp.errors[rows, cols]
    a_eq = csr_matrix((np.ones(nvar), (rows, np.arange(nvar))), shape=(cp.n, nvar))
    if cp.costs:
        a_ub = np.vstack([cost[rows, cols] for cost in cp.costs])
        a_ub = csr_matrix(a_ub)
    else:
        a_ub = None
    return rows, cols, c, a_eq, a_ub


def joint_infeasible(cp: Compiled, proof: str) -> InfeasibleError:
    """The error for constraints each reachable alone but not all together."""
    parts = ", ".join(f"{n} max {lim:.6g} (alone reachable down to {low:.6g})"
                      for n, lim, low in zip(cp.constraint_names, cp.limits, cp.min_costs()))
    names = ", ".join(cp.constraint_names)
    return InfeasibleError(
        f"{names}: each constraint is reachable on its own but no allocation meets them "
        f"all together ({proof}): {parts}", constraint=names)


def lp_relaxation(cp: Compiled) -> tuple[float, np.ndarray, np.ndarray]:
    """Solve the LP relaxation: exactly from convex hulls for one constraint, else HiGHS.

    Returns:
        ``(bound, lam, x)``: the Lagrangian bound at the LP's duals, the duals
        ``lam >= 0`` per constraint, and the fractional solution as an ``(M, K)`` table.

    Raises:
        InfeasibleError: the relaxation itself is infeasible, so no allocation exists.
    """
    if len(cp.costs) == 1:  # exact from the convex hulls: no LP solver needed
        from .solvers.lagrangian import lp_solution

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
    dual search (:func:`bitalloc.solvers.dual.maximize_dual`), which proves it
    reached the LP value; if it did not, the better of its bound and HiGHS's LP.
    Call it on problems known to be feasible (the dual of an infeasible one is
    unbounded).
    """
    if len(cp.costs) <= 1:
        return lp_relaxation(cp)[0]
    from .solvers.dual import maximize_dual

    d = maximize_dual(cp)
    return d.bound if d.converged else max(d.bound, lp_relaxation(cp)[0])
