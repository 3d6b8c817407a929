"""Solver registry and the output every solver returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..compiled import Compiled

__all__ = ["SolverOutput", "SolverFn", "SOLVERS", "register", "get_solver"]


@dataclass(frozen=True)
class SolverOutput:
    """What a solver hands back to :func:`bitalloc.solve`.

    Attributes:
        choice: ``(M,)`` option index per merged group; must be feasible.
        bound: a valid lower bound on the optimal objective.
        proven: the solver itself proved ``choice`` optimal.
        method: the method that produced ``choice`` (lets ``auto`` report its pick).
    """

    choice: np.ndarray
    bound: float
    proven: bool
    method: str


SolverFn = Callable[[Compiled, "float | None"], SolverOutput]
SOLVERS: dict[str, SolverFn] = {}


def register(name: str) -> Callable[[SolverFn], SolverFn]:
    """Decorator: register a solver function under ``name``."""

    def deco(fn: SolverFn) -> SolverFn:
        SOLVERS[name] = fn
        return fn

    return deco


def get_solver(method: str) -> SolverFn:
    """The solver registered as ``method``; ``ValueError`` naming the choices otherwise."""
    if not isinstance(method, str) or method not in SOLVERS:
        raise ValueError(f"method: unknown method {method!r}; expected one of {sorted(SOLVERS)}")
    return SOLVERS[method]
