"""``method="lagrangian"``: convex hulls and a Lagrange-multiplier search, for any scale.

One constraint: the LP relaxation of the multiple-choice knapsack is solved
exactly from the per-group lower convex hulls (:mod:`.hull`): hull segments are
taken in order of error removed per unit of cost until the budget is spent, so
the LP optimum has at most one *split* group. The integer answer takes that
group's lower hull point, fills the leftover budget greedily over all options
(:func:`.fill.fill`) and, up to a few million options, tries pairwise exchanges
(:func:`.fill.exchange`); the bound is ``L(lam*)`` at the split segment's slope, which
equals the LP value. Finding the split segment is a weighted selection, done with
a sampled bracket plus a sort of the few segments inside it, so the whole solve is
a handful of passes over the ``(M, K)`` tables.

Several constraints: the dual ``max_{lam >= 0} L(lam)`` is maximised by a
trust-region cutting-plane method (:mod:`.dual`); every evaluated ``lam`` gives a
valid bound. The integer answer is the Lagrangian minimiser at the best ``lam``
(or the best feasible one seen), repaired onto the budgets if needed and filled
greedily with the duals as prices.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([9.0, 1.0, 0.1], [10, 10, 10], bits=(2, 4, 8),
    ...                                   constraints=[ba.AverageBits(4.0)])
    >>> r = ba.solve(p, method="lagrangian")
    >>> r.bits.tolist(), r.bound <= r.objective  # optimal; the LP bound is below it
    ([4, 4, 4], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compiled import Compiled
from ..kernels.dual import maximize_dual
from ..kernels.feasibility import cheapest_choice, find_feasible
from ..kernels.fill import exchange, fill, repair
from ..kernels.lagrange import lagrangian_value
from ..kernels.lp import single_lp
from ..kernels.moves import segment_fill, split_alternatives
from .base import SolverOutput, register

__all__ = ["LagrangianResult", "lagrangian", "solve_lagrangian"]

_EXCHANGE_MAX = 2_500_000  # options: pairwise exchanges after the fill up to this size


@dataclass(frozen=True)
class LagrangianResult:
    """Everything the Lagrangian method found (used by ``exact`` and ``auto``).

    Attributes:
        choice: ``(M,)`` feasible merged choice.
        objective: its objective.
        bound: valid lower bound ``L(lam)``.
        lam: ``(C,)`` multipliers of the bound.
        converged: the multiplier search reached its tolerance (one constraint: always).
    """

    choice: np.ndarray
    objective: float
    bound: float
    lam: np.ndarray
    converged: bool


def _single_choice(cp: Compiled) -> tuple[np.ndarray, float]:
    """LP-rounded choice filled greedily, and ``lam*`` (the hulls die on return)."""
    lp = single_lp(cp, 0)
    h = lp.hulls
    pos = lp.pos  # ours to advance: the LP dies on return
    slack = cp.limits + cp.tol - cp.usage(h.options(pos))
    choice = None
    if (slack >= 0).all():
        regular = None
        if len(h.irregular):
            regular = np.ones(cp.n, dtype=bool)
            regular[h.irregular] = False
            regular = np.flatnonzero(regular)
        segment_fill(h, pos, slack, [h.d_cost], regular)
        choice = h.options(pos)
        if len(h.irregular):
            choice = fill(cp, choice, np.ones(1), rows=h.irregular)
    return (h.options(pos) if choice is None else choice), lp.lam


def _single(cp: Compiled) -> LagrangianResult:
    choice, lam_star = _single_choice(cp)
    if not cp.fits(choice):  # summation rounding at the budget's edge
        fixed = repair(cp, choice)
        choice = fill(cp, fixed if fixed is not None else find_feasible(cp), np.ones(1))
    lam = np.array([lam_star])
    if cp.n * cp.errors.shape[1] <= _EXCHANGE_MAX:
        choice = fill(cp, exchange(cp, choice, lam), np.ones(1))
    bound = lagrangian_value(cp, lam)
    obj = cp.objective(choice)
    split = split_alternatives(cp, choice, bound, objective=obj)
    if split is not choice:
        choice, obj = split, cp.objective(split)
    return LagrangianResult(choice, obj, bound, lam, True)


def _multi(cp: Compiled, time_limit: float | None) -> LagrangianResult:
    start = cheapest_choice(cp)
    if not cp.fits(start):
        start = find_feasible(cp, time_limit)  # raises InfeasibleError when none exists
    d = maximize_dual(cp, time_limit=time_limit)
    # rank moves by the duals' prices; a tiny share of each budget's scale breaks ties
    # among budgets the duals price at zero
    scales = np.ones(len(cp.costs))
    weights = d.lam + 1e-9 * max(abs(cp.objective(start)), 1e-300) / (len(scales) * scales)
    best = None
    for x in [d.choice] + ([d.feasible] if d.feasible is not None else []):
        x = x if cp.fits(x) else repair(cp, x)
        if x is not None:
            x = fill(cp, x, weights)
            if best is None or cp.objective(x) < cp.objective(best):
                best = x
    if best is None:
        best = fill(cp, start, weights)
    if cp.n * cp.errors.shape[1] <= _EXCHANGE_MAX:
        best = fill(cp, exchange(cp, best, d.lam), weights)
    best = split_alternatives(cp, best, d.bound, weights=weights)
    return LagrangianResult(best, cp.objective(best), d.bound, d.lam, d.converged)


def lagrangian(cp: Compiled, time_limit: float | None = None) -> LagrangianResult:
    """Run the Lagrangian method; see the module docstring.

    Raises:
        InfeasibleError: no allocation meets every constraint.
    """
    if not cp.costs:
        choice = np.argmin(cp.errors, axis=1)
        obj = cp.objective(choice)
        return LagrangianResult(choice, obj, obj, np.zeros(0), True)
    if len(cp.costs) == 1:
        return _single(cp)
    return _multi(cp, time_limit)


@register("lagrangian")
def solve_lagrangian(cp: Compiled, time_limit: float | None = None) -> SolverOutput:
    """Lagrangian bound plus greedy fill: near-optimal with a proof, at any scale.

    Example:
        >>> import numpy as np, bitalloc as ba
        >>> rng = np.random.default_rng(0)
        >>> n = 100_000
        >>> p = ba.Problem.from_sensitivities(rng.lognormal(0, 1.5, n), rng.integers(1, 9, n),
        ...                                   constraints=[ba.AverageBits(4.0)])
        >>> r = ba.solve(p, method="lagrangian")
        >>> bool(r.gap < 1e-6), r.usage["average_bits"][0] <= 4.0
        (True, True)
    """
    res = lagrangian(cp, time_limit)
    return SolverOutput(res.choice, res.bound, False, "lagrangian")


