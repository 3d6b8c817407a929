"""``method="greedy"``: never pathologically bad, large instances close to the bound."""

from __future__ import annotations

import pytest
from reference import assert_feasible
from strategies import layer_problem

import bitalloc as ba


@pytest.mark.parametrize("method", ["greedy", "lagrangian", "fractional", "auto"])
def test_blocked_large_group_is_within_1_5x(method):
    p = ba.Problem.from_sensitivities([1, 1, 2], [1, 1, 1998], bits=(2, 4, 8),
                                      constraints=[ba.AverageBits(4)])
    opt = ba.solve(p, method="ilp")
    r = ba.solve(p, method=method)
    assert opt.bits.tolist() == [4, 4, 4]
    assert r.objective <= 1.5 * opt.objective, r.bits


@pytest.mark.parametrize("kinds", [("avg",), ("avg", "bops"), ("avg", "bops", "mem")])
def test_greedy_on_layers_is_feasible_and_close(kinds):
    # the paper's greedy ranks moves by the budgets' normalised costs summed: exact-ish
    # with one budget, a few percent off with several binding ones (measured: 2.1 %
    # with avg+bops here, where the earlier heap greedy was 4.5 % off)
    p = layer_problem(2000, 11, kinds)
    r = ba.solve(p, method="greedy")
    assert_feasible(p, r.bits)
    opt = ba.solve(p, method="exact")
    assert opt.objective <= r.objective <= opt.objective * (1.0001 if len(kinds) == 1 else 1.05)


def test_greedy_at_scale_is_near_the_bound():
    p = layer_problem(200_000, 5, bits=(2, 3, 4, 5, 6, 7, 8))
    r = ba.solve(p, method="greedy")
    assert_feasible(p, r.bits)
    assert r.gap < 1e-6
