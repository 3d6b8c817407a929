"""Solvers, one module each, registered by name in :data:`SOLVERS`.

Heavy dependencies (cvxpy, ortools) are imported only when their solver runs.
"""

from . import auto, exact, fractional, greedy, ilp, lagrangian  # noqa: F401  (registration side effects)
from .base import SOLVERS, SolverOutput, get_solver, register

__all__ = ["SOLVERS", "SolverOutput", "get_solver", "register"]
