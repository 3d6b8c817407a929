"""Solver behaviour beyond the brute-force properties: larger cross-checks, limits, results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from reference import assert_feasible

import bitalloc as ba


def layer_problem(n: int, seed: int, constraints=("avg",)) -> ba.Problem:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1_000, 200_000, n)
    macs = sizes * rng.integers(10, 3_000, n)
    trace = rng.lognormal(0.0, 1.5, n)
    bits = (2, 3, 4, 6, 8)
    cons = {"avg": ba.AverageBits(4.0), "bops": ba.BOPsBudget(float((macs * 8 * 4.5).sum())),
            "mem": ba.MemoryBudget(float(sizes.sum() * 4.2 / 8))}
    return ba.Problem.from_sensitivities(trace * sizes, sizes, bits=bits, noise="exp",
                                         macs=macs, constraints=[cons[c] for c in constraints])


@pytest.mark.parametrize("seed, kinds", [(0, ("avg",)), (1, ("avg", "bops")),
                                         (2, ("avg", "bops", "mem"))])
def test_methods_agree_on_larger_instances(seed, kinds):
    p = layer_problem(300, seed, kinds)
    exact = ba.solve(p, method="ilp")
    assert exact.status == "optimal"
    assert_feasible(p, exact.bits)
    for method in sorted(ba.SOLVERS):
        r = ba.solve(p, method=method)
        assert_feasible(p, r.bits)
        assert r.objective >= exact.objective * (1 - 1e-9)
        assert r.bound <= exact.objective * (1 + 1e-9)
        assert r.gap == pytest.approx((r.objective - r.bound) / r.objective)
        assert r.gap < 0.05, (method, r.gap)  # heuristics stay close on layer-like data


def test_onehot_ilp_time_limit_returns_feasible_answer_with_valid_bound():
    p = layer_problem(3000, 7, ("avg", "bops", "mem"))
    r = ba.solve(p, method="ilp_onehot", time_limit=0.001)
    assert_feasible(p, r.bits)
    assert r.status == "feasible" and r.gap > 1e-9


def test_no_constraints_takes_smallest_error():
    p = ba.Problem(errors=[[3, 1, 2], [0, 5, 5]], sizes=[1, 1], bits=(2, 4, 8))
    for method in ba.SOLVERS:
        r = ba.solve(p, method=method)
        assert r.bits.tolist() == [4, 2] and r.status == "optimal" and r.usage == {}


def test_ties_and_allowed_expand_to_original_order():
    p = ba.Problem.from_sensitivities(
        [5.0, 0.1, 0.2, 3.0], [100, 100, 100, 100], bits=(2, 4, 8),
        names=["first", "mid1", "mid2", "last"], allowed={"first": [8], "last": [8]},
        ties=[["mid1", "mid2"]], constraints=[ba.AverageBits(5.0)])
    for method in ba.SOLVERS:
        r = ba.solve(p, method=method)
        assert r.bits[0] == 8 and r.bits[3] == 8 and r.bits[1] == r.bits[2] == 2
        assert r.bits_by_name == {"first": 8, "mid1": 2, "mid2": 2, "last": 8}


def test_result_is_frozen_and_serialises():
    p = layer_problem(20, 3, ("avg", "bops"))
    r = ba.solve(p, method="greedy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.objective = 0.0
    d = r.to_dict()
    assert set(d) == {"status", "method", "objective", "bound", "gap", "seconds", "bits", "usage"}
    assert d["usage"]["bops"]["max"] == p.constraints[1].limit
    text = r.table(max_rows=5)
    assert "... 15 more groups" in text and "average_bits" in text
    assert str(r).startswith("group")


def test_constraint_grading():
    p = layer_problem(10, 4, ("avg",))
    c = p.constraints[0]
    low = np.full(10, 2)
    assert c.value(p, low) == pytest.approx(2.0)
    assert c.violation(p, low) == 0.0
    assert c.violation(p, np.full(10, 8)) == pytest.approx(4.0)
    assert c.min_reachable(p) == pytest.approx(2.0)


def test_zero_sensitivity_groups_get_lowest_bits():
    p = ba.Problem.from_sensitivities([0.0, 1.0, 0.0], [10, 10, 10], bits=(2, 4, 8),
                                      constraints=[ba.AverageBits(6.0)])
    r = ba.solve(p, method="ilp")
    assert r.bits[1] == 8 and r.status == "optimal"


def test_problem_fits_and_usage():
    p = ba.Problem(errors=[[1.0, 0.1], [2.0, 0.5], [1.0, 1.0]], sizes=[10, 30, 10], bits=(2, 4),
                   allowed={2: [2]}, ties=[[0, 1]], constraints=[ba.AverageBits(3.5)])
    assert p.usage([4, 4, 2])["average_bits"] == pytest.approx((3.6, 3.5))
    assert not p.fits([4, 4, 2])  # 3.6 > 3.5
    assert p.fits([2, 2, 2])
    assert not p.fits([4, 2, 2])  # tie broken
    assert not p.fits([2, 2, 4])  # group 2 only allows 2 bits
    assert p.usage([2, 2, 2])["average_bits"] == pytest.approx((2.0, 3.5))


def test_tiny_error_scale_keeps_bounds_tight():
    """FIT values of 1e-9 must not weaken the relaxation bound (solver tolerances)."""
    base = layer_problem(60, 11, ("avg", "bops"))
    tiny = ba.Problem(errors=base.errors * 1e-12, sizes=base.sizes, bits=base.bits,
                      macs=base.macs, constraints=base.constraints)
    exact = ba.solve(tiny, method="ilp")
    for method in ("greedy", "fractional"):
        r = ba.solve(tiny, method=method)
        ref = ba.solve(base, method=method)
        assert r.bound == pytest.approx(ref.bound * 1e-12, rel=1e-6)
        assert r.bound <= exact.objective * (1 + 1e-9)


def test_ilp_is_the_fast_exact_path_and_onehot_the_reference():
    p = layer_problem(400, 3, ("avg", "bops"))
    fast, plain = ba.solve(p, method="ilp"), ba.solve(p, method="ilp_onehot")
    assert fast.method == "ilp" and plain.method == "ilp_onehot"
    assert fast.status == plain.status == "optimal"
    assert fast.objective == pytest.approx(plain.objective, rel=1e-9)
