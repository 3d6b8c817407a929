"""Solvers, one module each, registered by name in :data:`SOLVERS`.

Heavy dependencies (cvxpy, ortools) are imported only when their solver runs.
"""

from . import (  # noqa: F401  (registration side effects)
    auto,
    exact,
    fractional,
    greedy,
    ilp,
    ilp_onehot,
    lagrangian,
)
from .base import SOLVERS, SolverOutput, get_solver, register

__all__ = ["SOLVERS", "SolverOutput", "get_solver", "register"]
