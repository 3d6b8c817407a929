"""The one-constraint LP from hulls (bitalloc.kernels.lp) against HiGHS."""

from __future__ import annotations

import numpy as np
import pytest
from strategies import hlp_value, layer_problem

from bitalloc.kernels import lp as lp_mod
from bitalloc.kernels.bounds import lp_relaxation
from bitalloc.kernels.lagrange import lagrangian_value
from bitalloc.kernels.lp import single_lp, weighted_select


@pytest.mark.parametrize("seed", range(6))
def test_selection_matches_full_sort(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = 300_000
    eff = np.where(rng.random(n) < 0.1, -1.0, np.round(rng.lognormal(0, 2, n), 2))  # ties
    w = rng.uniform(0.1, 2.0, n)
    budget = float(rng.uniform(0, w[eff >= 0].sum() * 1.1))
    above, extra, split, used = weighted_select(eff, w, budget)
    monkeypatch.setattr(lp_mod, "SORT_MAX", 10**9)
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
