"""Every solver against exhaustive search on random small instances (hypothesis).

Checks, per instance and per registered method: InfeasibleError exactly when brute
force finds nothing; otherwise the answer is feasible (allowed, ties, every budget),
never better than the optimum, its bound never above the optimum, and the exact
solver ("ilp") hits the optimum.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from reference import assert_feasible, brute_force, close
from strategies import instances

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
    assert res.bound <= res.objective
    assert res.status in ("optimal", "feasible")
    if res.status == "optimal":
        assert close(res.objective, opt), (method, res.objective, opt)
    if method == "ilp":
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
