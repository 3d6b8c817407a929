"""The merged, normalised array form every solver works on.

A tie is the same as one merged group: its errors and costs are the sums over its
members and its allowed bitwidths are the intersection of theirs. Solvers pick one
option index per merged group (``choice``, shape ``(M,)``); :meth:`Compiled.expand`
maps that back to one bitwidth per original group.

Scale lives here and nowhere else: each constraint's costs and limit are divided
by a power of two ``scales[c] >= max(|limit|, sum_m max_k |cost|)`` (exact: no
rounding), so every solver, the reachability pre-check and pareto see budgets of
size about 1 and use the one tolerance :data:`bitalloc.numeric.TOL`. The errors keep
their units (``e_scale = 1``, no copy) while their total lies in
``[2**-E_RANGE, 2**E_RANGE]``: dividing by a power of two is exact and every solver
only compares, adds and divides errors, so a power-of-two factor changes no
decision there. Outside that range they are divided by a power of two ``e_scale``
covering the sum of each group's largest error. A bound found on the compiled
form is multiplied by ``e_scale`` to be a bound on the problem.

Memory: without ties or ``allowed``, the compiled errors *are* the problem's
(read-only) table, and the rank-one budgets (:class:`~bitalloc.AverageBits`,
:class:`~bitalloc.MemoryBudget`, :class:`~bitalloc.BOPsBudget`) are kept as two
vectors (:class:`bitalloc.costs.RankOneCost`), so compiling a million groups costs
a few ``(M,)`` vectors, not tables. :class:`~bitalloc.LinearBudget` stays a table.

:func:`compile_problem` is a pure function of the (immutable) problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .costs import RankOneCost, abs_row_max_sum, chosen, row_entries, row_min
from .errors import InfeasibleError
from .numeric import TOL

if TYPE_CHECKING:  # pragma: no cover
    from .problem import Problem

__all__ = ["Compiled", "compile_problem", "pow2_at_least", "E_RANGE"]

#: Errors whose total lies in ``[2**-E_RANGE, 2**E_RANGE]`` are used unscaled.
E_RANGE = 256


def pow2_at_least(x: float) -> float:
    """The smallest power of two ``>= x`` (1.0 for ``x <= 0``); exact to scale by.

    Above ``2**1023`` (the largest power of two a float holds) it is ``2**1023``, so
    ``x / pow2_at_least(x)`` stays below 2 for every finite ``x``.
    """
    if not x > 0:
        return 1.0
    m, e = math.frexp(x)
    return math.ldexp(1.0, min(e - 1 if m == 0.5 else e, 1023))


@dataclass(frozen=True, eq=False)
class Compiled:
    """Merged, normalised problem arrays (read-only).

    Attributes:
        bits: ``(K,)`` candidate bitwidths.
        errors: ``(M, K)`` merged errors divided by ``e_scale``, ``inf`` where an
            option is not allowed.
        allowed: ``(M, K)`` bool mask of allowed options (every row has one).
        costs: one ``(M, K)`` merged cost table per constraint, divided by its scale:
            an ``ndarray``, or a :class:`~bitalloc.costs.RankOneCost` (indexable like
            one; ``np.asarray`` gives the table).
        limits: ``(C,)`` constraint limits divided by their scales.
        constraint_names: names, in constraint order.
        group_of: ``(N,)`` merged index of each original group.
        tol: ``(C,)`` the feasibility tolerance (:data:`TOL`) of each normalised budget.
        int_scales: per constraint, a factor making its normalised costs integral, or None.
        scales: ``(C,)`` the power of two each constraint was divided by.
        e_scale: the power of two the errors were divided by.
        all_allowed: every option of every group is allowed (computed when not given).
        stated_limits: ``(C,)`` the limits as given, normalised; ``limits`` is the same
            snapped down to the largest usage that fits where usages are integral in
            some unit (:func:`snapped_limit`); None: equal to ``limits``.
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
    scales: np.ndarray | None = None
    e_scale: float = 1.0
    all_allowed: bool | None = None
    stated_limits: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.all_allowed is None:
            object.__setattr__(self, "all_allowed", bool(self.allowed.all()))

    @property
    def n(self) -> int:
        """Number of merged groups ``M``."""
        return self.errors.shape[0]

    def usage(self, choice: np.ndarray) -> np.ndarray:
        """Normalised resource used per constraint by a merged choice."""
        return np.array([chosen(c, choice).sum() for c in self.costs], dtype=np.float64)

    def fits(self, choice: np.ndarray) -> bool:
        """Whether a merged choice is allowed and meets every budget (within ``TOL``)."""
        if not self.all_allowed and not self.allowed[np.arange(self.n), choice].all():
            return False
        return bool((self.usage(choice) <= self.limits + self.tol).all())

    def objective(self, choice: np.ndarray) -> float:
        """Merged objective of a choice, in compiled (``e_scale``) units."""
        return float(row_entries(self.errors, 0, self.n, np.asarray(choice)).sum())

    def per_group(self, choice: np.ndarray) -> np.ndarray:
        """The merged choice of each original group (``choice`` itself without ties)."""
        if self.n == len(self.group_of):
            return np.asarray(choice)
        return np.asarray(choice)[self.group_of]

    def expand(self, choice: np.ndarray) -> np.ndarray:
        """One bitwidth per original group from a merged choice."""
        return self.bits[self.per_group(choice)]

    def min_costs(self) -> np.ndarray:
        """``(C,)`` smallest reachable normalised value of each constraint on its own."""
        allowed = None if self.all_allowed else self.allowed
        return np.array([row_min(c, allowed).sum() for c in self.costs], dtype=np.float64)

    def with_limits(self, limits: np.ndarray, tol: np.ndarray | None = None,
                    stated: np.ndarray | None = None) -> Compiled:
        """The same problem with other normalised limits (and tolerances); ``stated``: the
        limits as stated for those (kept as they are when not given)."""
        import dataclasses

        lim = np.array(limits, dtype=np.float64)
        t = self.tol if tol is None else np.array(tol, dtype=np.float64)
        st = self.stated_limits if stated is None else np.array(stated, dtype=np.float64)
        for a in (lim, t, st):
            if a is not None:
                a.setflags(write=False)
        return dataclasses.replace(self, limits=lim, tol=t, stated_limits=st)

    def limit_for(self, c: int, value: float) -> float:
        """Constraint ``c``'s normalised (and snapped) limit for a stated ``value``."""
        s = float(self.scales[c]) if self.scales is not None else 1.0
        k = self.int_scales[c] if c < len(self.int_scales) else None
        return snapped_limit(value, s, None if k is None else k / s)

    def stated(self) -> np.ndarray:
        """The limits as stated (normalised, before snapping)."""
        return self.limits if self.stated_limits is None else self.stated_limits

    def infeasible(self, c: int, low: float | None = None) -> InfeasibleError:
        """The error for constraint ``c`` whose reachable minimum is above its limit."""
        name = self.constraint_names[c]
        s = float(self.scales[c]) if self.scales is not None else 1.0
        lim = float(self.stated()[c]) * s
        low = float(self.min_costs()[c] if low is None else low) * s
        return InfeasibleError(
            f"{name}: max {lim:.10g}, smallest reachable {low:.10g} with every group "
            f"at its lowest-cost allowed bits", constraint=name, limit=lim, reachable=low)

    def check_reachable(self) -> None:
        """Raise :class:`InfeasibleError` if some constraint alone cannot be met (in floats)."""
        for c, (lim, tol, low) in enumerate(zip(self.limits, self.tol, self.min_costs())):
            if low > lim + tol:
                raise self.infeasible(c, low)


def _merge_index(n: int, ties) -> np.ndarray:
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


def _finite_row_max_sum(err: np.ndarray, allowed: np.ndarray) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        top = np.where(allowed, err, 0.0).max(axis=1)
        return float(top.sum())


def _errors(problem: Problem, group_of: np.ndarray, m: int, allowed: np.ndarray,
            all_allowed: bool) -> tuple[np.ndarray, float]:
    """Merged errors (``inf`` where not allowed) and ``e_scale``; no copy when nothing changes."""
    total = problem.error_total
    if m == problem.n_groups and 2.0**-E_RANGE <= total <= 2.0**E_RANGE:
        errors, e_scale = problem.errors, 1.0  # the caller's units; a total that fits
    else:
        with np.errstate(over="ignore"):
            errors = _merge(problem.errors, group_of, m)
        e_total = _finite_row_max_sum(errors, allowed)
        if not (math.isfinite(e_total) and (m == problem.n_groups or np.isfinite(errors).all())):
            raise ValueError("errors: the total error overflows (values too large to add up)")
        e_scale = 1.0 if 2.0**-E_RANGE <= e_total <= 2.0**E_RANGE else pow2_at_least(e_total)
        errors = errors / e_scale if e_scale != 1.0 else errors
    if not all_allowed:
        errors = np.where(allowed, errors, np.inf)
    return errors, e_scale


def _cost(problem: Problem, c, i: int, group_of: np.ndarray, m: int):
    """The merged cost of constraint ``c`` (rank-one when it has factors) and its span."""
    fac = c.factors(problem)
    with np.errstate(over="ignore", invalid="ignore"):
        if fac is not None:
            w, f = fac
            if m != len(group_of):
                w = np.bincount(group_of, weights=w, minlength=m)
            raw = RankOneCost(w, f)
        else:
            raw = _merge(np.asarray(c.cost_table(problem), dtype=np.float64), group_of, m)
        span = abs_row_max_sum(raw)  # not finite when any cost is (NaN and inf carry over)
    if not math.isfinite(span):
        raise ValueError(f"constraints[{i}]: the costs of {c.name!r} overflow (not finite); "
                         f"use smaller units")
    return raw, span


def snapped_limit(limit: float, scale: float, k: float | None) -> float:
    """The normalised limit; where usage x ``k`` is an integer, the largest such usage
    that fits, exactly (``floor(limit * k) / k``): the same allocations fit, and one just
    above a limit that is not a multiple of ``1/k`` (``AverageBits(3.8)`` over 75 weights:
    285/75 > float(3.8)) is no longer inside the solvers' tolerance."""
    plain = limit / scale
    if k is None or not math.isfinite(k) or k <= 0:
        return plain
    exact = Fraction(math.floor(Fraction(limit) * Fraction(k))) / (Fraction(k) * Fraction(scale))
    return min(plain, float(exact))


def compile_problem(problem: Problem) -> Compiled:
    """Collapse ties, evaluate every constraint's costs, normalise; a pure function.

    Raises:
        ValueError: a cost table, a total or a limit is not finite (the argument named).
        InfeasibleError: tied groups share no allowed bitwidth.
    """
    group_of = _merge_index(problem.n_groups, problem.ties)
    m = int(group_of[-1]) + 1 if not problem.ties else int(group_of.max()) + 1
    if m == problem.n_groups:
        allowed = problem.allowed
        all_allowed = problem.all_allowed
    else:
        allowed = np.ones((m, len(problem.bits)), dtype=bool)
        np.logical_and.at(allowed, group_of, problem.allowed)
        all_allowed = bool(allowed.all())
    if not all_allowed:
        empty = np.flatnonzero(~allowed.any(axis=1))
        if len(empty):
            members = [problem.names[i] for i in np.flatnonzero(group_of == empty[0])]
            raise InfeasibleError(
                f"allowed: tied groups {members} have no bitwidth allowed for all of them",
                constraint="allowed")
    errors, e_scale = _errors(problem, group_of, m, allowed, all_allowed)
    costs, limits, scales, ints, stated = [], [], [], [], []
    for i, c in enumerate(problem.constraints):
        raw, span = _cost(problem, c, i, group_of, m)
        s = pow2_at_least(max(abs(c.limit), span))
        if s != 1.0:
            raw = RankOneCost(raw.w / s, raw.f) if isinstance(raw, RankOneCost) else raw / s
        costs.append(raw)
        scales.append(s)
        k = c.integer_scale(problem)
        ints.append(None if k is None else float(k) * s)
        limits.append(snapped_limit(c.limit, s, k))
        stated.append(c.limit / s)
    limits = np.array(limits, dtype=np.float64)
    stated = np.array(stated, dtype=np.float64)
    tol = np.full(len(limits), TOL)
    scales = np.array(scales, dtype=np.float64)
    for a in (errors, allowed, limits, stated, tol, group_of, scales,
              *(c for c in costs if isinstance(c, np.ndarray))):
        if a.flags.writeable:
            a.setflags(write=False)
    return Compiled(bits=problem.bits, errors=errors, allowed=allowed, costs=tuple(costs),
                    limits=limits, constraint_names=tuple(c.name for c in problem.constraints),
                    group_of=group_of, tol=tol, int_scales=tuple(ints), scales=scales,
                    e_scale=e_scale, all_allowed=all_allowed, stated_limits=stated)
