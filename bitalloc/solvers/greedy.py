"""``method="greedy"``: QBitOpt's greedy integer method, vectorised and safeguarded.

Start from the feasible point with every group at its cheapest option, then
repeatedly raise the group with the best error decrease per unit of normalised
resource (the budgets' normalised costs summed) that still fits every budget
(:func:`bitalloc.kernels.moves.hull_greedy`: the greedy order is the order of hull
segment efficiencies, so this is a few table passes, ``O(M K log M)`` at worst).
A plain greedy can be pathologically bad when small efficient moves block one
large one; :func:`bitalloc.kernels.moves.split_alternatives` also tries the best
blocked moves and keeps the better answer. The bound is the LP relaxation's value
(:func:`bitalloc.kernels.bounds.dual_bound`).
"""

from __future__ import annotations

import numpy as np

from ..compiled import Compiled
from ..kernels.bounds import dual_bound
from ..kernels.feasibility import cheapest_choice, find_feasible
from ..kernels.fill import fill
from ..kernels.lagrange import lagrangian_value
from ..kernels.lp import SingleLP, single_lp
from ..kernels.moves import hull_greedy, split_alternatives
from .base import SolverOutput, register

__all__ = ["solve_greedy", "greedy_choice"]


def greedy_choice(cp: Compiled, bound: float | None = None, lp: SingleLP | None = None,
                  time_limit: float | None = None) -> np.ndarray:
    """The greedy allocation (merged choice) with the split-move safeguard.

    ``bound``: a valid lower bound (compiled units); the safeguard is skipped when
    the greedy answer is already within ``SPLIT_MIN_GAP`` of it. ``lp``: the
    one-constraint LP, when already computed.
    """
    choice = hull_greedy(cp, lp)
    if choice is None:  # the cheapest point breaks a budget: greedy from a feasible one
        start = cheapest_choice(cp)
        if not cp.fits(start):
            start = find_feasible(cp, time_limit)  # raises InfeasibleError when none exists
        choice = fill(cp, start, np.ones(len(cp.costs)))
    return split_alternatives(cp, choice, bound)


@register("greedy")
def solve_greedy(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Greedy integer allocation with the LP-relaxation bound.

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
        ...                                   constraints=[ba.AverageBits(4.0)])
        >>> ba.solve(p, method="greedy").bits.tolist()
        [4, 4, 4]
    """
    lp = None
    if len(cp.costs) == 1:  # the LP's hulls serve the greedy and its bound
        lp = single_lp(cp, 0)
        bound = lagrangian_value(cp, np.array([lp.lam]))
    else:
        bound = dual_bound(cp)
    choice = greedy_choice(cp, bound, lp, time_limit)
    return SolverOutput(choice=choice, bound=bound, proven=False, method="greedy")
