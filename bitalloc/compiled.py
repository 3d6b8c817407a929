"""The merged array form every solver works on: ties collapsed into one group each.

A tie is the same as one merged group: its errors and costs are the sums over its
members and its allowed bitwidths are the intersection of theirs. Solvers pick one
option index per merged group (``choice``, shape ``(M,)``); :meth:`Compiled.expand`
maps that back to one bitwidth per original group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .constraints import FEAS_RTOL
from .errors import InfeasibleError

if TYPE_CHECKING:  # pragma: no cover
    from .problem import Problem

__all__ = ["Compiled", "compile_problem"]


@dataclass(frozen=True, eq=False)
class Compiled:
    """Merged problem arrays (read-only).

    Attributes:
        bits: ``(K,)`` candidate bitwidths.
        errors: ``(M, K)`` merged errors, ``inf`` where an option is not allowed.
        allowed: ``(M, K)`` bool mask of allowed options (every row has one).
        costs: one ``(M, K)`` merged cost table per constraint.
        limits: ``(C,)`` constraint limits.
        constraint_names: names, in constraint order.
        group_of: ``(N,)`` merged index of each original group.
        tol: ``(C,)`` absolute feasibility tolerance of each constraint.
        int_scales: per constraint, a factor making its costs integral, or None.
    """

    bits: np.ndarray
    errors: np.ndarray
    allowed: np.ndarray
    costs: tuple[np.ndarray, ...]
    limits: np.ndarray
    constraint_names: tuple[str, ...]
    group_of: np.ndarray
    tol: np.ndarray
    int_scales: tuple[float | None, ...] = ()

    @property
    def n(self) -> int:
        """Number of merged groups ``M``."""
        return self.errors.shape[0]

    def usage(self, choice: np.ndarray) -> np.ndarray:
        """Resource used per constraint by a merged choice."""
        rows = np.arange(self.n)
        return np.array([c[rows, choice].sum() for c in self.costs], dtype=np.float64)

    def fits(self, choice: np.ndarray) -> bool:
        """Whether a merged choice is allowed and meets every constraint."""
        if not self.allowed[np.arange(self.n), choice].all():
            return False
        return bool((self.usage(choice) <= self.limits + self.tol).all())

    def objective(self, choice: np.ndarray) -> float:
        """Merged objective of a choice."""
        return float(self.errors[np.arange(self.n), choice].sum())

    def expand(self, choice: np.ndarray) -> np.ndarray:
        """One bitwidth per original group from a merged choice."""
        return self.bits[np.asarray(choice)[self.group_of]]

    def min_costs(self) -> np.ndarray:
        """``(C,)`` smallest reachable value of each constraint on its own."""
        if self.allowed.all():
            return np.array([c.min(axis=1).sum() for c in self.costs], dtype=np.float64)
        return np.array([np.where(self.allowed, c, np.inf).min(axis=1).sum()
                         for c in self.costs], dtype=np.float64)

    def check_reachable(self) -> None:
        """Raise :class:`InfeasibleError` if some constraint alone cannot be met."""
        for name, lim, tol, low in zip(self.constraint_names, self.limits, self.tol,
                                       self.min_costs()):
            if low > lim + tol:
                raise InfeasibleError(
                    f"{name}: max {lim:.10g}, smallest reachable {low:.10g} with every group "
                    f"at its lowest-cost allowed bits", constraint=name, limit=float(lim),
                    reachable=float(low))


def _merge_index(n: int, ties: list[list[int]]) -> np.ndarray:
    """Merged index per group (connected components of the tie graph, in first-seen order)."""
    if not ties:
        return np.arange(n)
    rows, cols = [], []
    for tie in ties:
        rows.extend(tie[:-1])
        cols.extend(tie[1:])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # relabel components by first member
    return order[inverse]


def _merge(table: np.ndarray, group_of: np.ndarray, m: int) -> np.ndarray:
    """Sum member rows per merged group; without ties the table itself (no copy)."""
    if m == len(group_of):
        return np.asarray(table, dtype=np.float64)
    out = np.zeros((m, table.shape[1]))
    np.add.at(out, group_of, table)
    return out


def _row_abs_max_sum(c: np.ndarray) -> float:
    """``np.abs(c).max(axis=1).sum()`` column by column (no (M, K) temporary)."""
    best = np.abs(c[:, 0])
    for j in range(1, c.shape[1]):
        np.maximum(best, np.abs(c[:, j]), out=best)
    return float(best.sum())


def compile_problem(problem: Problem) -> Compiled:
    """Collapse ties and evaluate every constraint's cost table."""
    group_of = _merge_index(problem.n_groups, problem.ties)
    m = int(group_of.max()) + 1
    if m == problem.n_groups:
        allowed = problem.allowed
    else:
        allowed = np.ones((m, len(problem.bits)), dtype=bool)
        np.logical_and.at(allowed, group_of, problem.allowed)
    empty = np.flatnonzero(~allowed.any(axis=1))
    if len(empty):
        members = [problem.names[i] for i in np.flatnonzero(group_of == empty[0])]
        raise InfeasibleError(
            f"allowed: tied groups {members} have no bitwidth allowed for all of them",
            constraint="allowed")
    errors = _merge(problem.errors, group_of, m)
    if not allowed.all():
        errors = np.where(allowed, errors, np.inf)
    costs = tuple(_merge(c.cost_table(problem), group_of, m) for c in problem.constraints)
    limits = np.array([c.limit for c in problem.constraints], dtype=np.float64)
    scale = np.array([_row_abs_max_sum(c) for c in costs], dtype=np.float64)
    tol = FEAS_RTOL * np.maximum(np.abs(limits), scale)
    for a in (errors, allowed, limits, tol, group_of, *costs):
        a.setflags(write=False)
    return Compiled(bits=problem.bits, errors=errors, allowed=allowed, costs=costs,
                    limits=limits, constraint_names=tuple(c.name for c in problem.constraints),
                    group_of=group_of, tol=tol,
                    int_scales=tuple(c.integer_scale(problem) for c in problem.constraints))
