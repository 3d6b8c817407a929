"""``exact`` (reduced-cost fixing + CP-SAT core) and the ``auto`` rule.

The exact method must reach the same optimum as brute force and as the plain
CP-SAT model, fixing must never remove an optimal allocation, and ``auto`` must
follow its documented rule (Lagrangian when the gap is closed or the core is too
big, CP-SAT on the core otherwise) while always returning a valid bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_feasible, brute_force, close
from strategies import layer_problem, small_problems

import bitalloc as ba
from bitalloc.numeric import rel_gap
from bitalloc.solvers import auto as auto_mod
from bitalloc.solvers import exact as exact_mod
from bitalloc.solvers.exact import reduced_options
from bitalloc.solvers.lagrangian import lagrangian


@settings(max_examples=150)
@given(small_problems())
def test_exact_against_brute_force(p):
    opt, _ = brute_force(p)
    if opt is None:
        with pytest.raises(ba.InfeasibleError):
            ba.solve(p, method="exact")
        return
    r = ba.solve(p, method="exact")
    assert_feasible(p, r.bits)
    assert close(r.objective, opt), (r.objective, opt)
    assert r.status == "optimal" and r.bound <= opt + 1e-9 * abs(opt) + 1e-12


@pytest.mark.parametrize("seed, kinds, n", [(0, ("avg",), 3000), (1, ("avg", "bops"), 600),
                                            (2, ("avg", "bops", "mem"), 600),
                                            (3, ("bops",), 2000)])
def test_exact_matches_plain_ilp(seed, kinds, n):
    p = layer_problem(n, seed, kinds)
    e = ba.solve(p, method="exact")
    assert e.status == "optimal" and e.method == "exact"
    assert_feasible(p, e.bits)
    if n <= 600:
        i = ba.solve(p, method="ilp_onehot")
        assert i.status == "optimal"
        assert e.objective == pytest.approx(i.objective, rel=1e-9)
    assert e.gap <= 1e-9


@pytest.mark.parametrize("seed, kinds", [(4, ("avg",)), (5, ("avg", "bops"))])
def test_fixing_keeps_the_optimum(seed, kinds):
    p = layer_problem(400, seed, kinds)
    cp = p.compiled()
    lag = lagrangian(cp)
    core = reduced_options(cp, lag)
    opt = ba.solve(p, method="ilp_onehot")
    k = p.bit_index(opt.bits)  # no ties: merged groups are the groups
    assert core.keep[np.arange(cp.n), k].all()
    assert core.keep[np.arange(cp.n), lag.choice].all()
    assert 0 < core.groups < cp.n  # it did fix something, and left something open


def test_exact_time_limit_keeps_a_valid_bound():
    p = layer_problem(3000, 6, ("avg", "bops", "mem"))
    r = ba.solve(p, method="exact", time_limit=0.05)
    assert_feasible(p, r.bits)
    opt = ba.solve(p, method="exact")
    assert r.bound <= opt.objective * (1 + 1e-12) and opt.objective <= r.objective


def test_auto_small_is_exact_and_large_is_fast():
    small = ba.solve(layer_problem(1000, 8, ("avg", "bops")))
    assert small.status == "optimal" and small.method == "exact"
    big = ba.solve(layer_problem(300_000, 8, bits=(2, 3, 4, 5, 6, 7, 8)))
    assert big.method in ("lagrangian", "exact") and big.gap <= 1e-6


def test_auto_returns_lagrangian_when_the_core_is_too_big(monkeypatch):
    # a search that proves nothing, and a core too big for CP-SAT: the Lagrangian answer
    monkeypatch.setattr(auto_mod, "AUTO_CORE_MAX_OPTIONS", 0)
    r = ba.solve(layer_problem(500, 9, ("avg",)))
    assert r.method == "lagrangian" and r.status == "feasible" and 0 < r.gap < 1e-2


@pytest.mark.parametrize("method", ["auto", "exact"])
def test_a_large_core_is_searched_before_cpsat(monkeypatch, method):
    # several budgets: the reduced-cost search proves this one, CP-SAT is never built
    monkeypatch.setattr(auto_mod, "AUTO_CORE_MAX_OPTIONS", 0)
    monkeypatch.setattr(exact_mod, "SEARCH_MIN_OPTIONS", 0)
    monkeypatch.setattr(exact_mod, "close_core", None)
    monkeypatch.setattr(exact_mod, "cpsat", None)
    p = layer_problem(500, 9, ("avg", "bops"))
    # a generous limit: under load the search's time prediction must not stop it early
    r = ba.solve(p, method=method, time_limit=600)
    assert r.method == "exact" and r.status == "optimal" and r.gap <= 1e-9
    assert r.objective == pytest.approx(ba.solve(p, method="ilp_onehot").objective, rel=1e-9)


def test_auto_stops_a_stalled_core_with_the_better_answer(monkeypatch):
    # every slice counts as stalled: auto stops after the first one that answered
    monkeypatch.setattr(exact_mod, "STALL_SLICES", 1)
    monkeypatch.setattr(exact_mod, "STALL_CLOSE", 2.0)
    monkeypatch.setattr(exact_mod, "STALL_SHRINK", -1.0)
    p = layer_problem(3000, 6, ("avg", "bops", "mem"), bits=(2, 3, 4, 5, 6, 7, 8))
    cp = p.compiled()
    lag = lagrangian(cp)
    r = ba.solve(p, time_limit=600)
    assert_feasible(p, r.bits)
    opt = ba.solve(p, method="exact")
    assert opt.status == "optimal"
    assert r.gap <= rel_gap(lag.objective, lag.bound) * (1 + 1e-9)  # never worse than lagrangian
    assert opt.objective <= r.objective * (1 + 1e-12) and r.bound <= opt.objective * (1 + 1e-12)


def test_auto_proves_twenty_thousand_groups_with_three_budgets():
    # the decision, not the speed: with a generous limit the measured core is closed
    p = layer_problem(20_000, 1, ("avg", "bops", "mem"), bits=(2, 3, 4, 5, 6, 7, 8))
    r = ba.solve(p, time_limit=300)
    assert r.status == "optimal" and r.method == "exact" and r.gap <= 1e-9
    assert_feasible(p, r.bits)


def test_auto_without_ortools_uses_lagrangian(monkeypatch):
    monkeypatch.setattr(auto_mod, "have_module", lambda name: False)
    r = ba.solve(layer_problem(500, 9, ("avg", "bops")))
    assert r.method == "lagrangian"


def test_exact_names_the_missing_extra(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("ortools"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ba.MissingDependencyError, match=r"bitalloc\[ilp\]"):
        ba.solve(layer_problem(20, 1), method="exact")


@settings(max_examples=40)
@given(st.integers(0, 10_000))
def test_auto_time_limit_answers_are_feasible_with_valid_bounds(seed):
    p = layer_problem(200, seed, ("avg", "bops", "mem"))
    r = ba.solve(p, time_limit=0.5)
    assert_feasible(p, r.bits)
    assert r.bound <= ba.solve(p, method="exact").objective * (1 + 1e-12)
    assert r.status == "feasible" or r.gap <= 1e-9


@pytest.mark.parametrize("method", ["auto", "exact"])
def test_a_small_core_gets_a_cpsat_slice_before_the_search(monkeypatch, method):
    # a core of at most SEARCH_MIN_OPTIONS options: CP-SAT first (it proves this one),
    # the search only if that slice did not
    calls = []
    for name, tag in (("prove_multi", "search"), ("close_core", "cpsat")):
        real = getattr(exact_mod, name)
        monkeypatch.setattr(exact_mod, name,
                            lambda *a, _r=real, _t=tag, **k: calls.append(_t) or _r(*a, **k))
    p = layer_problem(300, 4, ("avg", "bops"))
    cp = p.compiled()
    core = reduced_options(cp, lagrangian(cp, None))
    assert 0 < core.options <= exact_mod.SEARCH_MIN_OPTIONS
    r = ba.solve(p, method=method)
    assert calls[0] == "cpsat"
    assert r.status == "optimal"
    assert r.objective == pytest.approx(ba.solve(p, method="ilp_onehot").objective, rel=1e-9)
