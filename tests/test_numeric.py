"""Exact sums, error bounds and the gap helper (bitalloc.numeric)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitalloc.numeric import TOL, exact_sum, pairwise_error_bound, rel_gap, sum_error_bound

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@given(st.lists(finite, max_size=60))
def test_exact_sum_is_exact(xs):
    assert exact_sum(xs) == sum((Fraction(x) for x in xs), Fraction(0))


def test_exact_sum_of_many_subnormals_and_large_values():
    xs = np.array([5e-324] * 1000 + [1e300, -1e300])
    assert exact_sum(xs) == Fraction(5e-324) * 1000


def test_exact_sum_rejects_non_finite():
    with pytest.raises(ValueError, match="finite"):
        exact_sum([1.0, np.inf])


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=3000))
def test_error_bounds_hold(xs):
    a = np.array(xs)
    err = abs(Fraction(float(a.sum())) - exact_sum(a))
    assert err <= Fraction(pairwise_error_bound(len(a), float(np.abs(a).sum())))
    assert pairwise_error_bound(len(a), 1.0) <= sum_error_bound(len(a), 1.0) or len(a) < 200


def test_rel_gap_and_tolerance():
    assert rel_gap(2.0, 1.0) == 0.5 and rel_gap(0.0, 0.0) == 0.0
    assert 0 < TOL < 1e-9
