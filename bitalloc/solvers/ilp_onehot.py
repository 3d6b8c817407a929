"""``method="ilp_onehot"``: the plain one-hot integer program in CP-SAT (the reference).

Every (group, bitwidth) option is a boolean; CP-SAT gets the whole program
(:func:`bitalloc.kernels.cpsat.cpsat`), with the Lagrangian answer as a hint and
the Lagrangian bound as a fallback. Slower than ``"ilp"`` (the fast exact path) by
orders of magnitude at layer scale; kept as an independent reference.

Status ``"optimal"`` only when CP-SAT proved it on an exactly encoded model.
"""

from __future__ import annotations

import numpy as np

from ..compiled import Compiled
from ..errors import require
from ..kernels.cpsat import cpsat
from ..kernels.feasibility import cheapest_choice, find_feasible
from ..kernels.lagrange import joint_infeasible
from .base import SolverOutput, register
from .lagrangian import lagrangian

__all__ = ["solve_ilp_onehot"]


@register("ilp_onehot")
def solve_ilp_onehot(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Exact integer program (CP-SAT) over every option; see the module docstring.

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
        ...                                   constraints=[ba.AverageBits(4.0)])
        >>> r = ba.solve(p, method="ilp_onehot")
        >>> r.bits.tolist(), r.status
        ([4, 4, 4], 'optimal')
    """
    require("ortools.sat.python.cp_model", "ilp", "method='ilp_onehot'")
    if not cp.costs:
        choice = np.argmin(cp.errors, axis=1)
        return SolverOutput(choice, cp.objective(choice), True, "ilp_onehot")
    lag = None
    if cp.fits(cheapest_choice(cp)):  # else let CP-SAT find a point or prove there is none
        lag = lagrangian(cp, time_limit)
    out = cpsat(cp, hint=None if lag is None else lag.choice, time_limit=time_limit)
    if out.infeasible:
        raise joint_infeasible(cp, "proven by the CP-SAT integer program")
    lag_bound = -np.inf if lag is None else lag.bound
    bound = max(out.bound, lag_bound)
    if out.choice is not None and (lag is None or cp.objective(out.choice) <= lag.objective):
        return SolverOutput(out.choice, bound, out.proven, "ilp_onehot")
    choice = lag.choice if lag is not None else find_feasible(cp, time_limit)
    return SolverOutput(choice, bound, False, "ilp_onehot")
