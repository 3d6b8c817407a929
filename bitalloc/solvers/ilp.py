"""``method="ilp"``: exact integer programming, the fast way.

The same path as ``method="exact"`` (:mod:`.exact`): the Lagrangian bound,
reduced-cost fixing, and OR-Tools CP-SAT on the small core that is left, so a user
who asks for "the ILP" gets a proven optimum in a fraction of a second at layer
scale. The plain one-hot CP-SAT model over every option stays available as
``method="ilp_onehot"`` (:mod:`.ilp_onehot`), the independent reference.

Status ``"optimal"`` only when proven (CP-SAT proved the core, or the gap closed
to ``GAP_OPTIMAL``); on ``time_limit`` expiry the best feasible answer and its bound.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
    ...                                   constraints=[ba.AverageBits(4.0)])
    >>> r = ba.solve(p, method="ilp")
    >>> r.bits.tolist(), r.status, r.method
    ([4, 4, 4], 'optimal', 'ilp')
"""

from __future__ import annotations

import dataclasses

from ..compiled import Compiled
from .base import SolverOutput, register
from .exact import solve_exact

__all__ = ["solve_ilp"]


@register("ilp")
def solve_ilp(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Exact integer program by the fast exact path (see the module docstring)."""
    from ..errors import require

    require("ortools.sat.python.cp_model", "ilp", "method='ilp'")
    return dataclasses.replace(solve_exact(cp, time_limit), method="ilp")
