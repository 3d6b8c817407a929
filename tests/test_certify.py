"""Exact feasibility of answers (bitalloc.certify): never a value over its limit."""

from __future__ import annotations

import numpy as np
import pytest
from reference import assert_feasible, brute_force

import bitalloc as ba
from bitalloc.certify import usage, violated


def test_integer_sizes_at_the_edge_are_checked_exactly():
    # [3e11 - 1, 1] at 2 + 6/(3e11): floats round the average onto the limit either way
    p = ba.Problem(errors=[[1.0, 0.0], [1.0, 0.0]], sizes=[3e11 - 1, 1], bits=(2, 8),
                   constraints=[ba.AverageBits(2.0)])
    assert violated(p, np.array([0, 1])) == [0] and violated(p, np.array([0, 0])) == []


@pytest.mark.parametrize("method", sorted(ba.SOLVERS))
def test_sizes_3e11_at_average_4_is_never_over(method):
    p = ba.Problem.from_sensitivities([1.0, 5.0], [3e11 - 1, 1], bits=(2, 3, 4, 8),
                                      constraints=[ba.AverageBits(4.0)])
    r = ba.solve(p, method=method)
    assert_feasible(p, r.bits)
    assert r.usage["average_bits"][0] <= 4.0
    opt, _ = brute_force(p)
    assert r.objective <= opt * (1 + 1e-9) or r.status == "feasible"


def test_limit_just_below_the_minimum_is_infeasible_not_over():
    p = ba.Problem.from_sensitivities([1.0, 1.0], [1, 1], bits=(2, 4),
                                      constraints=[ba.AverageBits(2 - 1e-13)])
    for method in sorted(ba.SOLVERS):
        with pytest.raises(ba.InfeasibleError, match=r"^average_bits: max 1\.9999999999999") as e:
            ba.solve(p, method=method)
        assert e.value.reachable == 2.0


def test_limit_exactly_at_the_minimum_is_feasible():
    p = ba.Problem.from_sensitivities([1.0, 1.0], [3, 7], bits=(2, 4),
                                      constraints=[ba.AverageBits(2.0)])
    r = ba.solve(p)
    assert r.bits.tolist() == [2, 2] and r.usage["average_bits"] == (2.0, 2.0)


def test_usage_reports_at_most_the_limit():
    sizes = np.full(10, 0.1)
    p = ba.Problem.from_sensitivities(np.ones(10), sizes, bits=(2, 4),
                                      constraints=[ba.MemoryBudget(float(sizes.sum() * 4 / 8))])
    u = usage(p, np.ones(10, dtype=np.int64))
    assert u["memory"][0] <= u["memory"][1]
