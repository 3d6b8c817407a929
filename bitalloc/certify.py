"""Exact feasibility of an allocation against a problem's own constraints.

Solvers work in floating point on the normalised compiled form; this module is
the final word. Each constraint's value is computed in floating point with a
rigorous rounding-error bound; only when the bound does not settle the
comparison with the limit is the value computed exactly
(:meth:`bitalloc.Constraint.exact_value`: integer and ``Fraction`` arithmetic).
A value reported for a feasible allocation is therefore never above its limit.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem(errors=[[1.0, 0.0], [1.0, 0.0]], sizes=[3e11 - 1, 1], bits=(2, 8),
    ...                constraints=[ba.AverageBits(2.0)])
    >>> violated(p, p.bit_index([2, 8]))  # 2.00000000002 > 2, exactly
    [0]
    >>> violated(p, p.bit_index([2, 2]))
    []
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from .numeric import pairwise_error_bound

_EPS = float(np.finfo(np.float64).eps)

if TYPE_CHECKING:  # pragma: no cover
    from .constraints import Constraint
    from .problem import Problem

__all__ = ["violated", "usage", "float_value"]


def float_value(problem: Problem, c: Constraint, k: np.ndarray) -> tuple[float, float]:
    """``(value, error bound)`` of constraint ``c`` at option indices ``k`` (floats)."""
    n = len(k)
    w = c.weights(problem)
    if w is not None:
        terms = w * problem.bits.astype(np.float64)[k]
        d = c.divisor(problem)
        # a computed divisor (a sum of weights) carries the rounding of that sum
        d_err = pairwise_error_bound(n, float(np.abs(w).sum()))
    else:
        table = np.asarray(c.cost_table(problem), dtype=np.float64)
        terms = table[np.arange(n), k]
        d, d_err = 1.0, 0.0
    total = float(terms.sum())
    abs_total = float(np.abs(terms).sum())
    value = total / d
    err = ((pairwise_error_bound(n, abs_total) + _EPS * abs_total) / abs(d)
           + abs(value) * (2.0 * d_err / abs(d) + 2.0 * _EPS))
    return value, err


def _grade(problem: Problem, c: Constraint, k: np.ndarray) -> tuple[bool, float]:
    value, err = float_value(problem, c, k)
    if value + err < c.limit:
        return True, value
    if value - err > c.limit:
        return False, value
    exact = c.exact_value(problem, problem.bits[k])
    return exact <= Fraction(c.limit), float(exact)


def violated(problem: Problem, k: np.ndarray) -> list[int]:
    """Positions of the constraints that option indices ``k`` break (checked exactly)."""
    k = np.asarray(k, dtype=np.int64)
    return [i for i, c in enumerate(problem.constraints) if not _grade(problem, c, k)[0]]


def usage(problem: Problem, k: np.ndarray) -> dict[str, tuple[float, float]]:
    """``{name: (value, max)}``; a value within its limit is reported at most the limit."""
    k = np.asarray(k, dtype=np.int64)
    out = {}
    for c in problem.constraints:
        ok, value = _grade(problem, c, k)
        out[c.name] = (min(value, c.limit) if ok else value, float(c.limit))
    return out
