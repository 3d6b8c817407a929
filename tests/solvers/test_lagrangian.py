"""``method="lagrangian"`` against brute force, ILP and the LP."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from reference import assert_feasible, brute_force, close
from strategies import hlp_value, layer_problem, small_problems

import bitalloc as ba
from bitalloc.kernels.bounds import lp_relaxation
from bitalloc.kernels.hull import lower_hulls


@settings(max_examples=250)
@given(small_problems())
def test_lagrangian_against_brute_force(p):
    opt, _ = brute_force(p)
    if opt is None:
        with pytest.raises(ba.InfeasibleError):
            ba.solve(p, method="lagrangian")
        return
    r = ba.solve(p, method="lagrangian")
    assert_feasible(p, r.bits)
    assert r.objective >= opt - 1e-9 * abs(opt) - 1e-12
    assert r.bound <= opt + 1e-9 * abs(opt) + 1e-12
    assert r.gap == pytest.approx((r.objective - r.bound) / max(abs(r.objective), 1e-300),
                                  abs=1e-15)
    if r.status == "optimal":
        assert close(r.objective, opt)


@pytest.mark.parametrize("seed, kinds", [(0, ("avg",)), (1, ("avg", "bops")),
                                         (2, ("avg", "bops", "mem"))])
def test_lagrangian_close_to_ilp_on_layers(seed, kinds):
    p = layer_problem(800, seed, kinds)
    exact = ba.solve(p, method="exact")
    r = ba.solve(p, method="lagrangian")
    assert exact.status == "optimal"
    assert_feasible(p, r.bits)
    assert exact.objective <= r.objective <= exact.objective * (1 + 1e-3)
    assert r.bound <= exact.objective * (1 + 1e-12)
    assert r.gap <= 1e-3


def test_large_single_constraint_is_near_exact():
    p = layer_problem(200_000, 7, bits=(2, 3, 4, 5, 6, 7, 8))  # sampled selection path
    r = ba.solve(p, method="lagrangian")
    assert_feasible(p, r.bits)
    assert r.gap <= 1e-6
    cp = p.compiled()
    assert r.bound == pytest.approx(lp_relaxation(cp)[0] * cp.e_scale, rel=1e-12)


def test_irregular_rows_mixed_with_convex_ones():
    rng = np.random.default_rng(3)
    p0 = layer_problem(20_000, 3)
    err = p0.errors.copy()
    bad = rng.choice(len(err), 2000, replace=False)
    err[bad] = rng.random((2000, err.shape[1])) * err[bad].max(axis=1, keepdims=True)
    p = ba.Problem(errors=err, sizes=p0.sizes, bits=p0.bits, allowed={int(bad[0]): [8]},
                   constraints=p0.constraints)
    h = lower_hulls(p.compiled().errors, p.compiled().costs[0])
    assert 0 < len(h.irregular) <= 2001
    r = ba.solve(p, method="lagrangian")
    assert_feasible(p, r.bits)
    assert r.bound == pytest.approx(hlp_value(p.compiled()) * p.compiled().e_scale, rel=1e-9)
    assert r.gap < 1e-4


def test_no_constraints_and_single_option_groups():
    p = ba.Problem(errors=[[3.0, 1.0], [2.0, 2.0]], sizes=[1, 1], bits=(2, 4),
                   allowed={0: [4]}, constraints=[ba.AverageBits(3.0)])
    r = ba.solve(p, method="lagrangian")
    assert r.bits.tolist() == [4, 2] and r.status == "optimal"
    q = ba.Problem(errors=[[3.0], [2.0]], sizes=[1, 1], bits=(4,),
                   constraints=[ba.AverageBits(4.0)])
    assert ba.solve(q, method="lagrangian").bits.tolist() == [4, 4]


@pytest.mark.parametrize("scale", [1e-12, 1e12])
@pytest.mark.parametrize("kinds", [("avg",), ("avg", "bops", "mem")])
def test_error_scale_does_not_matter(scale, kinds):
    """FIT values are often tiny: answers and bounds must scale with the errors."""
    base = layer_problem(300, 10, kinds)
    scaled = ba.Problem(errors=base.errors * scale, sizes=base.sizes, bits=base.bits,
                        macs=base.macs, constraints=base.constraints)
    for method in ("lagrangian", "exact"):
        a, b = ba.solve(base, method=method), ba.solve(scaled, method=method)
        assert b.bound == pytest.approx(a.bound * scale, rel=1e-7)
        assert b.objective == pytest.approx(a.objective * scale, rel=1e-7)
        assert b.status == a.status
