"""The compiled form: ties merged, every budget normalised once by a power of two."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bitalloc as ba
from bitalloc.compiled import compile_problem, pow2_at_least


@pytest.mark.parametrize("unit", [1e-7, 1.0, 1e15])
def test_costs_and_limits_are_normalised_exactly(unit):
    costs = np.array([[1.0, 2.0, 4.0], [3.0, 5.0, 9.0]]) * unit
    p = ba.Problem(errors=[[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]], sizes=[1, 1], bits=(2, 4, 8),
                   constraints=[ba.LinearBudget(costs, 9.0 * unit, name="lat"),
                                ba.AverageBits(5.0)])
    cp = compile_problem(p)
    for c, con in enumerate(p.constraints):
        s = cp.scales[c]
        assert math.frexp(s)[0] == 0.5  # a power of two: dividing by it is exact
        assert np.array_equal(cp.costs[c] * s, con.cost_table(p))
        assert cp.limits[c] * s == con.limit
        assert np.abs(cp.costs[c]).max(axis=1).sum() <= 1.0 and abs(cp.limits[c]) <= 1.0
    assert np.array_equal(cp.errors * cp.e_scale, p.errors)


def test_compiling_is_pure_and_cached_form_is_read_only():
    p = ba.Problem.from_sensitivities([1.0, 2.0, 3.0], [1, 2, 3], bits=(2, 4),
                                      ties=[[0, 2]], constraints=[ba.AverageBits(3.0)])
    a, b = compile_problem(p), compile_problem(p)
    assert np.array_equal(a.errors, b.errors) and a.group_of.tolist() == [0, 1, 0]
    assert p.compiled() is p.compiled()
    with pytest.raises(ValueError, match="read-only"):
        p.compiled().costs[0][0, 0] = 1.0


def test_pow2_at_least():
    assert [pow2_at_least(x) for x in (0.0, 1.0, 3.0, 4.0, 1e-300)] == \
        [1.0, 1.0, 4.0, 4.0, 2.0 ** math.ceil(math.log2(1e-300))]


def test_pow2_at_least_near_the_float_maximum_stays_finite():
    # 2**1024 is not a float: above 2**1023 the scale is 2**1023 and x / scale < 2
    for x in (2.0 ** 1023, 1e308, 1.7976931348623157e308):
        s = pow2_at_least(x)
        assert s == 2.0 ** 1023 and x / s < 2


def test_limit_snapped_to_the_largest_integral_usage_that_fits():
    # 285/75 = 3.8 exactly is above float(3.8): the solvers' tolerance must not let it in,
    # or exact methods prove an answer the certificate then rejects (found by hypothesis)
    e = np.array([[0.7366, 0.0079, 0.2703], [0.9334, 0.5191, 0.2313],
                  [0.7999, 0.5628, 0.6792], [0.1921, 0.2967, 0.4291]])
    p = ba.Problem(errors=e, sizes=[28, 1, 22, 24], bits=(3, 5, 7),
                   constraints=[ba.AverageBits(3.8)])
    cp = p.compiled()
    assert cp.stated()[0] * cp.scales[0] == 3.8  # messages report the limit as stated
    assert cp.limits[0] * cp.scales[0] == pytest.approx(284 / 75, rel=1e-15)
    for method in ("exact", "ilp_onehot", "auto"):
        r = ba.solve(p, method=method)
        assert r.status == "optimal" and r.bits.tolist() == [5, 5, 3, 3], method
    assert p.with_limit("average_bits", 3.8).compiled().limits[0] == cp.limits[0]
    moved = p.with_limit("average_bits", 3.7).compiled()  # stated stays as stated there too
    assert moved.stated()[0] * moved.scales[0] == 3.7
    assert moved.limits[0] == ba.Problem(errors=e, sizes=[28, 1, 22, 24], bits=(3, 5, 7),
                                         constraints=[ba.AverageBits(3.7)]).compiled().limits[0]
