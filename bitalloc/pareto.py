"""Pareto sweep: the least total error at each value of one constraint.

``bitalloc.pareto(problem, constraint="average_bits", values=None)``

* ``values=None`` and no other constraint: the whole *convex* frontier from one
  sort. Every group's lower convex hull (:mod:`bitalloc.kernels.hull`) is cut into
  segments; taking segments in order of error removed per unit of cost visits
  allocations that are each exactly optimal for the resource they use (Everett's
  theorem: each minimises ``errors + lam * cost`` for some ``lam``). There are up to
  ``M * (K - 1) + 1`` such vertices; ``max_points`` of them, evenly spread in usage
  and always including both ends, are returned.
* ``values=None`` with other constraints held: ``max_points`` values evenly
  spaced from the swept constraint's smallest reachable value to the most of it
  that helps (its usage when its own limit is lifted), each solved as below
  (values that cannot be met together with the other constraints are skipped).
* ``values`` given: each value solved as its own problem (the swept limit replaced
  by the value, the other constraints held) with ``method`` (default ``"auto"``:
  exact when fast, with a proven bound either way).

Points are sorted by value and made monotone: if a heuristic answer at a larger
value were worse than one at a smaller value, the smaller value's allocation
(feasible there too) is used instead. Every point is feasible at its own value.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
    ...                                   constraints=[ba.AverageBits(4.0)])
    >>> f = ba.pareto(p)
    >>> f.usage.round(2).tolist()
    [2.0, 2.67, 3.33, 4.67, 5.33, 6.67, 8.0]
    >>> f.bits[1].tolist(), f.bits[-1].tolist()
    ([4, 2, 2], [8, 8, 8])
    >>> g = ba.pareto(p, values=[3.0, 5.0])
    >>> g.bits.tolist(), bool(g.objective[0] >= g.objective[1])
    ([[4, 2, 2], [8, 4, 2]], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import certify
from .compiled import Compiled
from .errors import InfeasibleError
from .kernels.hull import lower_hulls
from .problem import Problem
from .solve import run_method
from .solvers import get_solver

__all__ = ["Frontier", "pareto"]


@dataclass(frozen=True)
class Frontier:
    """Points of a Pareto sweep, sorted by ``values``.

    Attributes:
        constraint: name of the swept constraint.
        values: ``(P,)`` the limit each point was solved for.
        usage: ``(P,)`` value of the swept constraint at each point (``<= values``).
        objective: ``(P,)`` total error at each point, non-increasing.
        bound: ``(P,)`` proven lower bound on the optimum at each point's value
            (equal to ``objective`` on convex-frontier vertices).
        bits: ``(P, N)`` allocation of each point in the original group order
            (smallest unsigned integer type holding the candidate bitwidths).
    """

    constraint: str
    values: np.ndarray
    usage: np.ndarray
    objective: np.ndarray
    bound: np.ndarray
    bits: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def to_dict(self, names: Sequence[str] | None = None) -> dict:
        """JSON-ready dict; with ``names`` each point's bits are ``{name: bits}``."""
        pts = []
        for i in range(len(self)):
            b = self.bits[i].tolist()
            pts.append({"value": float(self.values[i]), "usage": float(self.usage[i]),
                        "objective": float(self.objective[i]), "bound": float(self.bound[i]),
                        "bits": dict(zip(names, b)) if names is not None else b})
        return {"constraint": self.constraint, "points": pts}

    def table(self) -> str:
        """One line per point: value, usage, objective, bound."""
        head = f"{'value':>14} {'usage':>14} {'objective':>14} {'bound':>14}"
        lines = [f"pareto frontier over {self.constraint!r}", head, "-" * len(head)]
        for v, u, o, b in zip(self.values, self.usage, self.objective, self.bound):
            lines.append(f"{v:>14.8g} {u:>14.8g} {o:>14.8g} {b:>14.8g}")
        return "\n".join(lines)


def _index(problem: Problem, constraint: str) -> int:
    names = [c.name for c in problem.constraints]
    if constraint not in names:
        raise ValueError(f"constraint: unknown constraint {constraint!r}; the problem has "
                         f"{names}")
    return names.index(constraint)


def _bits_dtype(problem: Problem):
    return np.min_scalar_type(int(problem.bits.max()))


def _vertices(cp: Compiled, c: int, max_points: int):
    """Choices at ``max_points`` vertices of the convex frontier (one constraint)."""
    h = lower_hulls(cp.errors, cp.costs[c])
    kk = h.eff.shape[1]
    flat = np.flatnonzero(h.eff.reshape(-1) >= 0) if kk else np.zeros(0, dtype=np.int64)
    order = flat[np.argsort(-h.eff.reshape(-1)[flat], kind="stable")]
    pos = np.zeros(cp.n, dtype=np.int64)
    start_use = float(cp.costs[c][np.arange(cp.n), h.options(pos)].sum())
    used = start_use + np.concatenate([[0.0], np.cumsum(h.d_cost.reshape(-1)[order])])
    if len(used) > max_points:
        grid = np.linspace(used[0], used[-1], max_points)
        pick = np.unique(np.concatenate([[0, len(used) - 1],
                                         np.searchsorted(used, grid, side="right") - 1]))
    else:
        pick = np.arange(len(used))
    choices, done = [], 0
    for q in pick.tolist():
        pos += np.bincount(order[done:q] // max(kk, 1), minlength=cp.n)
        done = q
        choices.append(h.options(pos))
    return choices


def _solve_at(problem: Problem, c: int, value: float, method: str,
              time_limit: float | None):
    """Solve with constraint ``c`` at ``value`` through the driver (certified exactly)."""
    at = problem.with_limit(problem.constraints[c].name, value)
    choice, bound, _, _ = run_method(at, at.compiled(), method, time_limit)
    return at, choice, bound


def pareto(problem: Problem, constraint: str = "average_bits",
           values: Sequence[float] | None = None, method: str = "auto",
           max_points: int = 101, time_limit: float | None = None) -> Frontier:
    """Sweep one constraint's limit; see the module docstring.

    Args:
        problem: the problem; its other constraints are held at their limits.
        constraint: name of the constraint to sweep (as in ``Result.usage``).
        values: limits to solve at; ``None`` for the frontier over the whole range.
        method: solver for each value (any of ``bitalloc.SOLVERS``).
        max_points: at most this many points when ``values`` is None (at least 2).
        time_limit: seconds per solved value.

    Returns:
        A :class:`Frontier`.

    Raises:
        ValueError: unknown ``constraint`` or ``method``, bad ``values``/``max_points``.
        InfeasibleError: a given value cannot be met (with the other constraints).
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"problem: expected a bitalloc.Problem, got {type(problem).__name__}")
    c = _index(problem, constraint)
    get_solver(method)
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) \
            or max_points < 2:
        raise ValueError(f"max_points: must be an integer >= 2, got {max_points!r}")
    cp = problem.compiled()
    if values is not None:
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(vals) == 0 or not np.isfinite(vals).all():
            raise ValueError("values: must be a non-empty list of finite numbers")
        points = _solve_values(problem, c, np.sort(vals), method, time_limit, skip=False)
    elif len(cp.costs) == 1:
        choices = _vertices(cp, c, int(max_points))
        con = problem.constraints[c]
        # each vertex is solved at (an upper bound on) its own exact usage
        use = np.array([sum(certify.float_value(problem, con, x[cp.group_of]))
                        for x in choices])
        obj = np.array([cp.objective(x) for x in choices]) * cp.e_scale
        points = (use, choices, obj)
    else:
        sc = float(cp.scales[c])
        lo = float(cp.min_costs()[c]) * sc
        hi = float(cp.usage(np.argmin(cp.errors, axis=1))[c]) * sc
        try:  # the most of it the other constraints let any allocation use
            _, top, _ = _solve_at(problem, c, max(hi, lo), method, time_limit)
            hi = float(cp.usage(top)[c]) * sc
        except InfeasibleError:
            pass
        grid = np.linspace(lo, max(hi, lo), int(max_points))
        points = _solve_values(problem, c, np.unique(grid), method, time_limit, skip=True)
    return _frontier(problem, cp, c, *points)


def _solve_values(problem: Problem, c: int, vals: np.ndarray, method: str,
                  time_limit: float | None, skip: bool):
    keep, choices, bounds = [], [], []
    for v in vals.tolist():
        try:
            _, choice, bound = _solve_at(problem, c, v, method, time_limit)
        except InfeasibleError as e:
            if skip:
                continue
            raise InfeasibleError(f"values: {v:.10g} cannot be met: {e}", constraint=e.constraint,
                                  limit=v, reachable=e.reachable) from e
        keep.append(v)
        choices.append(choice)
        bounds.append(bound)
    if not keep:
        raise InfeasibleError("values: no value in the range can be met together with the "
                              "other constraints", constraint=problem.constraints[c].name)
    return np.array(keep), choices, np.array(bounds)


def _frontier(problem: Problem, cp: Compiled, c: int, vals, choices, bounds) -> Frontier:
    choices = list(choices)
    rows = np.arange(problem.n_groups)
    obj = np.array([float(problem.errors[rows, x[cp.group_of]].sum()) for x in choices])
    for i in range(1, len(choices)):  # a looser limit never has to do worse
        if obj[i] > obj[i - 1]:
            choices[i], obj[i] = choices[i - 1], obj[i - 1]
    name = problem.constraints[c].name
    use = np.array([certify.usage(problem, x[cp.group_of])[name][0] for x in choices])
    bits = np.stack([cp.expand(x) for x in choices]).astype(_bits_dtype(problem))
    bound = np.minimum(np.asarray(bounds, dtype=np.float64), obj)
    return Frontier(cp.constraint_names[c], np.asarray(vals, dtype=np.float64), use, obj,
                    bound, bits)
