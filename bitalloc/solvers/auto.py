"""``method="auto"``: exact when small and OR-Tools is installed, else greedy.

Rule: if ``ortools`` is importable and the merged problem has at most
``AUTO_ILP_MAX_OPTIONS`` allowed (group, bitwidth) options, run ``"ilp"`` (with the
caller's time limit, or ``AUTO_ILP_TIME_LIMIT`` seconds; on expiry its best feasible
answer and bound come back). Otherwise run ``"greedy"``.
"""

from __future__ import annotations

import importlib.util

from ..compiled import Compiled
from .base import SOLVERS, SolverOutput, register

__all__ = ["solve_auto", "AUTO_ILP_MAX_OPTIONS", "AUTO_ILP_TIME_LIMIT"]

AUTO_ILP_MAX_OPTIONS = 50_000
AUTO_ILP_TIME_LIMIT = 30.0


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@register("auto")
def solve_auto(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Pick a solver by size and availability (see module docstring)."""
    if _have("ortools") and int(cp.allowed.sum()) <= AUTO_ILP_MAX_OPTIONS:
        return SOLVERS["ilp"](cp, time_limit or AUTO_ILP_TIME_LIMIT)
    return SOLVERS["greedy"](cp, time_limit)
