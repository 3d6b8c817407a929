"""``method="fractional"``: QBitOpt's convex relaxation, solved with cvxpy.

Each group picks a convex combination of its allowed candidates (the convex hull of
its (cost, error) points); the relaxation minimises total error under every budget.
Its value, evaluated as a Lagrangian bound at the solver's duals (or the certified
dual bound of :func:`bitalloc.kernels.bounds.dual_bound` when that is tighter), is the proven
lower bound. The fractional bitwidths
are rounded down to candidates (each group's largest allowed bitwidth not above
its fractional mean) and then filled greedily,
so the answer never exceeds a budget; if the rounded point breaks a budget (costs
not increasing in bits), the fill starts from the greedy start instead.
"""

from __future__ import annotations

import numpy as np

from ..compiled import Compiled
from ..costs import dense
from ..errors import require
from ..kernels.bounds import dual_bound
from ..kernels.feasibility import find_feasible
from ..kernels.fill import fill
from ..kernels.lagrange import lagrangian_value
from ..kernels.moves import split_alternatives
from .base import SolverOutput, register

__all__ = ["solve_fractional", "round_down"]


def round_down(cp: Compiled, x: np.ndarray) -> np.ndarray:
    """Per group, the largest allowed candidate not above the fractional mean bitwidth."""
    mean_bits = x @ cp.bits.astype(np.float64)
    ok = cp.allowed & (cp.bits[None, :] <= mean_bits[:, None] + 1e-9)
    last = ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    lowest = np.argmax(cp.allowed, axis=1)
    return np.where(ok.any(axis=1), last, lowest)


def _relaxation(cvx, cp: Compiled) -> tuple[np.ndarray, np.ndarray]:
    """Solve the relaxation; returns the ``(M, K)`` weights and the duals."""
    m, k = cp.errors.shape
    x = cvx.Variable((m, k), nonneg=True)
    err = np.where(cp.allowed, cp.errors, 0.0)
    # errors scaled to a largest value of 1: FIT values of 1e-9 would sit below the
    # interior-point solver's absolute tolerances
    e_scale = float(err.max()) or 1.0
    err = err / e_scale
    cons = [cvx.sum(x, axis=1) == 1]
    if not cp.allowed.all():
        cons.append(cvx.multiply(x, (~cp.allowed).astype(float)) == 0)
    # budgets are normalised in the compiled form (scale 1): duals are well conditioned
    budgets = [cvx.sum(cvx.multiply(x, dense(c))) <= lim + tol  # tables: cvxpy needs arrays
               for c, lim, tol in zip(cp.costs, cp.limits, cp.tol)]
    prob = cvx.Problem(cvx.Minimize(cvx.sum(cvx.multiply(x, err))), cons + budgets)
    try:
        prob.solve()
    except cvx.error.SolverError:  # pragma: no cover - solver failure
        return np.zeros((m, k)), np.zeros(len(budgets))
    if x.value is None:
        return np.zeros((m, k)), np.zeros(len(budgets))
    lam = np.array([e_scale * float(np.squeeze(b.dual_value))
                    if b.dual_value is not None else 0.0 for b in budgets])
    return np.clip(x.value, 0.0, 1.0), np.maximum(lam, 0.0)


@register("fractional")
def solve_fractional(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Convex relaxation (cvxpy), round down, greedy fill.

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
        ...                                   constraints=[ba.AverageBits(4.0)])
        >>> ba.solve(p, method="fractional").bits.tolist()
        [4, 4, 4]
    """
    cvx = require("cvxpy", "convex", "method='fractional'")
    x, lam = _relaxation(cvx, cp)
    start = round_down(cp, x)
    if not cp.fits(start):
        start = find_feasible(cp, time_limit)
    # the interior-point duals are accurate to the solver's tolerance only, and the
    # Lagrangian value is sensitive to them: keep the better of that and the dual bound
    bound = max(lagrangian_value(cp, lam), dual_bound(cp))
    choice = split_alternatives(cp, fill(cp, start, np.ones(len(cp.costs))), bound)
    return SolverOutput(choice, bound, False, "fractional")
