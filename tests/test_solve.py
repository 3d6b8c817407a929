"""Every solver against exhaustive search on random small instances (hypothesis).

Checks, per instance and per registered method: InfeasibleError exactly when brute
force finds nothing; otherwise the answer is feasible (allowed, ties, every budget),
never better than the optimum, its bound never above the optimum, and the exact
solver ("ilp") hits the optimum.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from reference import assert_feasible, brute_force, close
from strategies import instances, rank_one_instances, scaled_instances

import bitalloc as ba

METHODS = sorted(ba.SOLVERS)


def _check(problem: ba.Problem, method: str, opt: float | None) -> None:
    if opt is None:
        with pytest.raises(ba.InfeasibleError):
            ba.solve(problem, method=method)
        return
    res = ba.solve(problem, method=method)
    assert_feasible(problem, res.bits)
    assert close(res.objective, problem.objective(res.bits))
    assert res.objective >= opt - 1e-9 * abs(opt) - 1e-12, (method, res.objective, opt)
    assert res.bound <= opt + 1e-9 * abs(opt) + 1e-12, (method, res.bound, opt)
    if res.status == "optimal":
        assert close(res.objective, opt), (method, res.objective, opt)
    if method in ("ilp", "ilp_onehot"):
        assert close(res.objective, opt), (res.objective, opt)
        assert res.status == "optimal"
    assert set(res.usage) == {c.name for c in problem.constraints}


@settings(max_examples=1000)
@given(instances())
def test_every_method_against_brute_force(problem: ba.Problem) -> None:
    opt, _ = brute_force(problem)
    for method in METHODS:
        _check(problem, method, opt)


def test_instance_generator_covers_feasible_and_infeasible() -> None:
    """Guard against a generator that only makes one kind of instance."""
    seen = {"feasible": 0, "infeasible": 0}

    @settings(max_examples=120, derandomize=True, database=None)
    @given(instances())
    def run(problem):
        seen["feasible" if brute_force(problem)[0] is not None else "infeasible"] += 1

    run()
    assert seen["feasible"] >= 30 and seen["infeasible"] >= 10, seen


def _check_relative(problem: ba.Problem, method: str, opt: float | None) -> None:
    """As :func:`_check`, with purely relative tolerances (any magnitude of the data)."""
    if opt is None:
        with pytest.raises(ba.InfeasibleError):
            ba.solve(problem, method=method)
        return
    res = ba.solve(problem, method=method)
    assert_feasible(problem, res.bits)
    assert res.objective >= opt * (1 - 1e-9), (method, res.objective, opt)
    assert res.bound <= opt * (1 + 1e-9), (method, res.bound, opt)
    if res.status == "optimal":
        assert res.objective <= opt * (1 + 1e-9), (method, res.objective, opt)


@settings(max_examples=300)
@given(scaled_instances())
def test_every_method_in_any_units(problem: ba.Problem) -> None:
    """LinearBudget costs and errors scaled log-uniformly between 1e-9 and 1e12."""
    opt, _ = brute_force(problem)
    for method in METHODS:
        _check_relative(problem, method, opt)


@settings(max_examples=300)
@given(rank_one_instances())
def test_every_method_on_rank_one_budgets_in_any_units(problem: ba.Problem) -> None:
    """The lazy rank-one path (no cost tables): scoped budgets, sizes, MACs and errors
    each in units between 1e-9 and 1e12."""
    opt, _ = brute_force(problem)
    for method in METHODS:
        _check_relative(problem, method, opt)


@pytest.mark.parametrize("unit", [1e-7, 1e15])
@pytest.mark.parametrize("method", ["auto", "greedy", "lagrangian", "exact", "fractional"])
def test_linear_budget_in_natural_units_with_average_bits(unit, method):
    rng = np.random.default_rng(0)
    n, bits = 30, (2, 3, 4, 6, 8)
    sizes = rng.integers(100, 10_000, n)
    latency = np.outer(sizes, bits) * unit * rng.uniform(0.5, 1.5, (n, 1))
    p = ba.Problem.from_sensitivities(
        rng.lognormal(0, 1, n), sizes, bits=bits,
        constraints=[ba.AverageBits(4.5), ba.LinearBudget(latency, float(latency[:, 2].sum()),
                                                          name="latency")])
    opt = ba.solve(p, method="ilp")
    r = ba.solve(p, method=method)
    assert_feasible(p, r.bits)
    assert r.objective <= opt.objective * 1.01 and r.bound <= opt.objective * (1 + 1e-9)
    if method in ("auto", "exact"):
        assert r.status == "optimal" and r.objective == pytest.approx(opt.objective, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("errors", [[[3e-301, 2e-301, 1e-301]], [[1e300, 1e299, 1e298]],
                                    [[1e-320, 5e-321, 0.0]]])
def test_extreme_error_magnitudes_solve(method, errors):
    p = ba.Problem(errors=errors, sizes=[7], bits=(2, 4, 8), constraints=[ba.AverageBits(5.0)])
    r = ba.solve(p, method=method, time_limit=10)
    assert r.bits.tolist() == [4] and r.objective == errors[0][1]
    assert np.isfinite(r.bound) and r.bound <= errors[0][1] * (1 + 1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_huge_sizes_and_errors_near_overflow(method):
    p = ba.Problem(errors=[[1e300, 1e299, 1e298], [1e300, 1e299, 1e298]], sizes=[1e300, 1e290],
                   bits=(2, 4, 8), constraints=[ba.AverageBits(5.0)])
    r = ba.solve(p, method=method, time_limit=10)
    assert_feasible(p, r.bits)
    assert r.bits.tolist() == [4, 8] and np.isfinite(r.objective) and np.isfinite(r.bound)
