"""The one home of bitalloc's numerical conventions: tolerance, gaps, exact sums.

* :data:`TOL`: the single floating-point tolerance. Solvers work on the compiled
  form, where every constraint is normalised to scale 1 (:mod:`bitalloc.compiled`);
  there a budget is met in floating point when ``usage <= limit + TOL``. The answer
  the driver returns is then checked *exactly* (:func:`exact_sum`): no result is
  ever reported over its limit.
* :data:`GAP_OPTIMAL` and :func:`rel_gap`: how a heuristic answer is certified.
* :func:`exact_sum`: the exact sum of floating-point numbers, as a ``Fraction``.

Example:
    >>> exact_sum([0.1, 0.2]) == Fraction(0.1) + Fraction(0.2)
    True
    >>> rel_gap(1.0, 0.5)
    0.5
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["TOL", "GAP_OPTIMAL", "TINY", "rel_gap", "exact_sum", "sum_error_bound",
           "pairwise_error_bound"]

#: Absolute tolerance in normalised units (each budget's scale is 1): summation noise only.
TOL = 1e-12
#: A heuristic answer whose relative gap is at most this is reported as ``"optimal"``.
GAP_OPTIMAL = 1e-9
#: Denominator floor of :func:`rel_gap`.
TINY = 1e-300

_EPS = float(np.finfo(np.float64).eps)


def rel_gap(objective: float, bound: float) -> float:
    """``(objective - bound) / max(|objective|, TINY)``: 0 means proven optimal."""
    return float((objective - bound) / max(abs(objective), TINY))


def sum_error_bound(n: int, abs_total: float) -> float:
    """A rigorous bound on the rounding error of a float sum of ``n`` terms.

    ``abs_total`` is the sum of the terms' absolute values (any order of summation).
    """
    g = (n + 2) * _EPS
    return 2.0 * g * abs_total / max(1.0 - g, 0.5)


def pairwise_error_bound(n: int, abs_total: float) -> float:
    """Rounding-error bound of numpy's pairwise ``sum`` of ``n`` float64 terms.

    numpy sums blocks of up to 128 terms in 8 interleaved partial sums and combines
    blocks pairwise, so each term passes through at most ``128 + log2(n)`` roundings.
    """
    depth = 130 + max(int(n).bit_length(), 1)
    g = depth * _EPS
    return 2.0 * g * abs_total / max(1.0 - g, 0.5)


def exact_sum(values) -> Fraction:
    """The exact sum of finite float64 values (no rounding at all), as a ``Fraction``.

    Vectorised: each value is split into an integer mantissa and an exponent; the
    mantissas are summed per exponent in integer arithmetic.

    Raises:
        ValueError: a value is not finite.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        return Fraction(0)
    if not np.isfinite(a).all():
        raise ValueError("exact_sum: values must be finite")
    mant, expo = np.frexp(a)
    mi = np.ldexp(mant, 53).astype(np.int64)  # exact: |mant| < 1 has 53 bits
    expo = expo.astype(np.int64) - 53
    hi, lo = mi >> 27, mi & ((1 << 27) - 1)  # both partial sums stay below 2**53
    uniq, inv = np.unique(expo, return_inverse=True)
    total = 0
    e0 = int(uniq[0])
    # chunks keep every float partial sum an exact integer (< 2**53)
    for start in range(0, a.size, 1 << 24):
        sl = slice(start, start + (1 << 24))
        sh = np.bincount(inv[sl], weights=hi[sl], minlength=len(uniq))
        sw = np.bincount(inv[sl], weights=lo[sl], minlength=len(uniq))
        for j, ex in enumerate(uniq.tolist()):
            s = (int(sh[j]) << 27) + int(sw[j])
            if s:
                total += s << (ex - e0)
    return Fraction(total) * (Fraction(2) ** e0)
