"""The Lagrangian method and its parts against trusted references.

Hulls against their defining property (the hull minimises ``E + lam C`` for every
``lam``), the one-constraint LP and the several-constraint dual against HiGHS on
the one-hot LP, the integer answers against brute force and CP-SAT, and the
large-scale paths (sampled selection, vectorised fill) against their small-scale
equivalents.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_feasible, brute_force, close
from scipy.optimize import linprog

import bitalloc as ba
from bitalloc.kernels import lp as lp_mod
from bitalloc.kernels.bounds import lp_relaxation
from bitalloc.kernels.dual import maximize_dual
from bitalloc.kernels.fill import exchange, fill, repair
from bitalloc.kernels.hull import lower_hulls, monotone_chain
from bitalloc.kernels.lagrange import lagrangian_value, one_hot_matrices
from bitalloc.kernels.lp import single_lp, weighted_select
from bitalloc.solvers.lagrangian import lagrangian


def layer_problem(n: int, seed: int, kinds=("avg",), bits=(2, 3, 4, 6, 8)) -> ba.Problem:
    rng = np.random.default_rng(seed)
    sizes = np.rint(rng.uniform(1e3, 2e5, n))
    macs = sizes * rng.integers(10, 3000, n)
    trace = rng.lognormal(0.0, 1.5, n)
    cons = {"avg": ba.AverageBits(4.0), "bops": ba.BOPsBudget(float(4.0 * 8 * macs.sum())),
            "mem": ba.MemoryBudget(float(4.2 * sizes.sum() / 8))}
    return ba.Problem.from_sensitivities(trace * sizes, sizes, bits=bits, noise="exp", macs=macs,
                                         constraints=[cons[k] for k in kinds])


def hlp_value(cp) -> float:
    """The one-hot LP relaxation's optimum from HiGHS (the reference)."""
    _, _, c, a_eq, a_ub = one_hot_matrices(cp)
    res = linprog(c, A_ub=a_ub, b_ub=cp.limits + cp.tol, A_eq=a_eq, b_eq=np.ones(cp.n),
                  bounds=(0, 1), method="highs")
    assert res.status == 0
    return float(res.fun)


@st.composite
def tables(draw):
    """Random (errors, costs) tables with disallowed options, ties in cost, collinear points."""
    m, k = draw(st.integers(1, 30)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "convex", "integers"]))
    if kind == "convex":
        cost = np.cumsum(rng.uniform(0.1, 2, (m, k)), axis=1)
        err = np.cumsum(rng.uniform(0, 1, (m, k))[:, ::-1], axis=1)[:, ::-1] ** 2
    elif kind == "integers":  # many exact ties and collinear points
        cost = rng.integers(0, 4, (m, k)).astype(float)
        err = rng.integers(0, 4, (m, k)).astype(float)
    else:
        cost = rng.normal(0, 1, (m, k))
        err = rng.random((m, k))
    allowed = rng.random((m, k)) < 0.8
    allowed[np.arange(m), rng.integers(0, k, m)] = True
    return np.where(allowed, err, np.inf), cost


@settings(max_examples=300)
@given(tables(), st.lists(st.floats(0, 10), min_size=1, max_size=4))
def test_hull_minimises_every_priced_table(tab, lams):
    err, cost = tab
    h = lower_hulls(err, cost)
    m = len(err)
    rows = np.arange(m)
    pts = np.stack([h.options(np.minimum(np.full(m, j), h.count - 1)) for j in
                    range(err.shape[1])], axis=1)
    e, c = err[rows[:, None], pts], cost[rows[:, None], pts]
    real = np.arange(err.shape[1])[None, :] < h.count[:, None]
    # strictly increasing cost, strictly decreasing error, non-increasing eff along the hull
    assert (np.where(real[:, 1:], np.diff(c, axis=1), 1) > 0).all()
    assert (np.where(real[:, 1:], np.diff(e, axis=1), -1) < 0).all()
    assert (np.diff(h.eff, axis=1) <= 1e-12 * (1 + np.abs(h.eff[:, 1:]))).all() or \
        err.shape[1] <= 2
    eff = np.concatenate([h.eff.reshape(-1), lams])
    for lam in eff[eff >= 0]:
        full = np.min(err + lam * cost, axis=1)
        on_hull = np.min(np.where(real, e + lam * c, np.inf), axis=1)
        assert np.allclose(on_hull, full, rtol=1e-12, atol=1e-12)


@settings(max_examples=200)
@given(tables())
def test_fast_path_agrees_with_monotone_chain(tab):
    err, cost = tab
    cost = np.sort(cost, axis=1) + np.arange(cost.shape[1]) * 1e-3  # strictly increasing
    err = np.where(np.isfinite(err), err, 5.0)
    h = lower_hulls(err, cost)
    pts, cnt = monotone_chain(err, cost)
    assert (h.count == cnt).all()
    for j in range(err.shape[1]):
        pos = np.minimum(np.full(len(err), j), cnt - 1)
        assert (h.options(pos) == np.take_along_axis(pts, pos[:, None], 1)[:, 0]).all()


@pytest.mark.parametrize("seed", range(6))
def test_selection_matches_full_sort(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = 300_000
    eff = np.where(rng.random(n) < 0.1, -1.0, np.round(rng.lognormal(0, 2, n), 2))  # ties
    w = rng.uniform(0.1, 2.0, n)
    budget = float(rng.uniform(0, w[eff >= 0].sum() * 1.1))
    above, extra, split, used = weighted_select(eff, w, budget)
    monkeypatch.setattr(lp_mod, "_SORT_MAX", 10**9)
    a2, e2, s2, u2 = weighted_select(eff, w, budget)
    taken = np.zeros(n, bool)
    taken[eff > above] = True
    taken[extra] = True
    ref = np.zeros(n, bool)
    ref[e2] = True
    assert (taken == ref).all() and split == s2 and used == pytest.approx(u2, rel=1e-12)


@pytest.mark.parametrize("seed, kinds", [(0, ("avg",)), (1, ("mem",)), (2, ("bops",))])
def test_single_lp_equals_highs(seed, kinds):
    p = layer_problem(400, seed, kinds)
    cp = p.compiled()
    lp = single_lp(cp)
    assert lagrangian_value(cp, [lp.lam]) == pytest.approx(hlp_value(cp), rel=1e-9)
    bound, lam, x = lp_relaxation(cp)  # the fast path behind greedy/fractional bounds
    assert bound == pytest.approx(hlp_value(cp), rel=1e-9)
    assert np.allclose(x.sum(axis=1), 1) and ((x > 0) & (x < 1)).any(axis=1).sum() <= 1
    assert (cp.usage(x.argmax(axis=1)) <= cp.limits * 1.01).all()


@pytest.mark.parametrize("seed, kinds", [(3, ("avg", "bops")), (4, ("avg", "bops", "mem")),
                                         (5, ("bops", "mem"))])
def test_dual_reaches_the_lp_value(seed, kinds):
    p = layer_problem(600, seed, kinds, bits=(2, 3, 4, 5, 6, 7, 8))
    cp = p.compiled()
    d = maximize_dual(cp)
    assert d.converged
    assert d.bound == pytest.approx(hlp_value(cp), rel=1e-9)
    assert d.bound <= hlp_value(cp) * (1 + 1e-12)


@st.composite
def small_problems(draw):
    n, k = draw(st.integers(1, 6)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bits = sorted(rng.choice(np.arange(2, 9), k, replace=False).tolist())
    sizes = rng.integers(1, 50, n).astype(float)
    macs = rng.integers(1, 100, n).astype(float)
    if draw(st.booleans()):
        errors = np.outer(rng.lognormal(0, 2, n), ba.phi(bits, "exp"))
    else:
        errors = rng.random((n, k))
    allowed = {i: sorted(rng.choice(bits, rng.integers(1, k + 1), replace=False).tolist())
               for i in range(n) if rng.random() < 0.2}
    ties = [[0, n - 1]] if n > 2 and rng.random() < 0.3 else None
    frac = draw(st.sampled_from([0.2, 0.5, 0.8]))
    cons = [ba.AverageBits(bits[0] + frac * (bits[-1] - bits[0]))]
    if draw(st.booleans()):
        cons.append(ba.BOPsBudget(float(macs.sum() * 8 * (bits[0] + 0.6 * (bits[-1] - bits[0])))))
    return ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, allowed=allowed,
                      ties=ties, constraints=cons)


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


def test_fill_repair_exchange_keep_feasibility():
    p = layer_problem(500, 9, ("avg", "bops"))
    cp = p.compiled()
    low = np.zeros(cp.n, dtype=np.int64)
    full = fill(cp, low, np.array([1.0, 1e-12]))
    assert cp.fits(full) and cp.objective(full) < cp.objective(low)
    top = np.full(cp.n, cp.errors.shape[1] - 1)
    fixed = repair(cp, top)
    assert fixed is not None and cp.fits(fixed)
    res = lagrangian(cp)
    better = exchange(cp, res.choice, res.lam)
    assert cp.fits(better) and cp.objective(better) <= res.objective


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
