"""The reduced-cost search (:mod:`bitalloc.kernels.rcsearch`) against trusted references.

A finished search either returns the optimum (brute force / HiGHS MILP with
``mip_rel_gap=0`` agree) or proves that nothing is below ``L + B``; its bound is
never above the optimum, in any units.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_feasible, brute_force, close
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix
from strategies import layer_problem, small_problems

import bitalloc as ba
from bitalloc.kernels.rcsearch import prove, rc_search
from bitalloc.solve import certified_choice
from bitalloc.solvers.lagrangian import lagrangian


def _milp_optimum(p: ba.Problem) -> float:
    """HiGHS MILP on the one-hot program in the problem's own (integer) units."""
    n, k = p.errors.shape
    rows, cols = np.nonzero(p.allowed)
    a_eq = csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n, len(rows)))
    cons = [LinearConstraint(a_eq, 1, 1)]
    for c in p.constraints:
        table = np.asarray(c.cost_table(p), dtype=np.float64)
        cons.append(LinearConstraint(table[rows, cols][None, :], -np.inf, c.limit))
    res = milp(p.errors[rows, cols], constraints=cons, integrality=np.ones(len(rows)),
               bounds=Bounds(0, 1), options={"mip_rel_gap": 0.0})
    assert res.status == 0
    return float(res.fun)


@settings(max_examples=120)
@given(small_problems())
def test_prove_matches_brute_force(p):
    opt, _ = brute_force(p)
    if opt is None or len(p.constraints) < 1:
        return
    cp = p.compiled()
    lag = lagrangian(cp)
    out = prove(cp, lag.lam, lag.choice, rtol=0.0)
    assert cp.fits(out.choice)  # within the compiled tolerance, like every kernel
    assert out.bound * cp.e_scale <= opt * (1 + 1e-12) + 1e-300  # never above the optimum
    choice, unchanged = certified_choice(p, cp, out.choice)  # what the driver returns
    assert_feasible(p, cp.expand(choice))
    if unchanged:  # exactly feasible: never below the optimum, and equal to it if closed
        obj = out.objective * cp.e_scale
        assert obj >= opt * (1 - 1e-12) - 1e-300
        if out.bound >= out.objective - 1e-9 * abs(out.objective):
            assert close(obj, opt), (obj, opt)


@pytest.mark.parametrize("seed", range(12))
def test_prove_matches_highs_milp(seed):
    kinds = [("avg", "bops"), ("avg", "bops", "mem"), ("bops", "mem")][seed % 3]
    p = layer_problem([40, 120, 300][seed % 3], seed, kinds, bits=(2, 3, 4, 5, 6, 7, 8))
    cp = p.compiled()
    lag = lagrangian(cp)
    out = prove(cp, lag.lam, lag.choice, rtol=0.0)
    opt = _milp_optimum(p)
    assert cp.fits(out.choice)
    assert_feasible(p, cp.expand(certified_choice(p, cp, out.choice)[0]))
    assert out.bound * cp.e_scale <= opt * (1 + 1e-12)
    assert out.objective * cp.e_scale == pytest.approx(opt, rel=1e-9)  # these close


@pytest.mark.parametrize("e_unit, c_unit", [(1e-9, 1e12), (1e12, 1e-9), (1e-7, 1.0)])
def test_bound_is_valid_in_unusual_units(e_unit, c_unit):
    rng = np.random.default_rng(7)
    n, bits = 60, (2, 3, 4, 6, 8)
    base = layer_problem(n, 3, ("avg", "bops"), bits=bits)
    errors = base.errors * e_unit / base.errors.max()
    cost2 = rng.integers(1, 50, (n, 1)) * np.array(bits)[None, :] * c_unit
    p = ba.Problem(errors=errors, sizes=base.sizes, bits=bits,
                   constraints=[ba.AverageBits(4.0),
                                ba.LinearBudget(cost2, float(cost2[:, 2].sum()), name="lat")])
    cp = p.compiled()
    lag = lagrangian(cp)
    out = prove(cp, lag.lam, lag.choice, rtol=0.0)
    opt = ba.solve(p, method="ilp_onehot")
    assert opt.status == "optimal"
    assert cp.fits(out.choice)
    assert_feasible(p, cp.expand(certified_choice(p, cp, out.choice)[0]))
    assert out.bound * cp.e_scale <= opt.objective * (1 + 1e-9)
    assert out.objective * cp.e_scale >= opt.objective * (1 - 1e-9)


@settings(max_examples=25)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_a_finished_round_is_a_bound_or_the_optimum(seed, share):
    p = layer_problem(30, seed, ("avg", "bops", "mem"), bits=(2, 3, 4, 5, 6, 7, 8))
    cp = p.compiled()
    lag = lagrangian(cp)
    opt = ba.solve(p, method="ilp_onehot").objective / cp.e_scale
    budget = max(share * 2.0 * (opt - lag.bound), 1e-300)
    out = rc_search(cp, lag.lam, budget)
    assert out.finished
    if out.choice is None:  # nothing below L + B: L + B is a bound
        assert lag.bound + budget <= opt * (1 + 1e-12)
    else:  # the best below L + B is the optimum
        assert cp.fits(out.choice)
        assert cp.objective(out.choice) == pytest.approx(opt, rel=1e-9)


def test_heuristic_rounds_never_claim_a_proof():
    p = layer_problem(200, 4, ("avg", "bops"), bits=(2, 3, 4, 5, 6, 7, 8))
    cp = p.compiled()
    lag = lagrangian(cp)
    gap = lag.objective - lag.bound
    assert not rc_search(cp, lag.lam, gap, beam=1).finished
    assert not rc_search(cp, lag.lam, gap, moves=1).finished
    assert not rc_search(cp, lag.lam, gap, max_states=1).finished


def test_prove_respects_its_time_limit_with_a_valid_bound():
    p = layer_problem(3000, 6, ("avg", "bops", "mem"), bits=(2, 3, 4, 5, 6, 7, 8))
    cp = p.compiled()
    lag = lagrangian(cp)
    out = prove(cp, lag.lam, lag.choice, time_limit=1e-6)
    assert out.bound <= out.objective
    assert cp.fits(out.choice) and out.objective <= lag.objective
