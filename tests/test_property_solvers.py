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
from hypothesis import strategies as st
from reference import assert_feasible, brute_force, close

import bitalloc as ba

METHODS = sorted(ba.SOLVERS)
MAX_COMBOS = 60_000


@st.composite
def instances(draw) -> ba.Problem:
    k = draw(st.integers(2, 5))
    n_max = min(8, int(np.log(MAX_COMBOS) / np.log(k)))
    n = draw(st.sampled_from(sorted({1, 2, 3, 4, 5, 6, 7, 8, n_max - 1, n_max} & set(
        range(1, n_max + 1)))))
    bits = sorted(draw(st.lists(st.integers(1, 8), min_size=k, max_size=k, unique=True)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 1000, n).astype(float)
    macs = rng.integers(0, 10**6, n).astype(float)
    act_bits = rng.choice([4, 8, 16], n).astype(float)
    if draw(st.booleans()):
        sens = rng.lognormal(0, 2, n) * (rng.random(n) > 0.1)  # some zero sensitivities
        errors = np.outer(sens, ba.phi(bits, draw(st.sampled_from(["uniform", "exp"]))))
    else:  # measured tables: arbitrary, not necessarily monotone in bits
        errors = rng.random((n, k)) * rng.choice([0.0, 1.0, 10.0], (n, 1))
    allowed = {}
    for i in range(n):
        if rng.random() < 0.2:
            allowed[i] = sorted(rng.choice(bits, rng.integers(1, k + 1), replace=False).tolist())
    ties = []
    if n >= 2 and rng.random() < 0.4:
        for _ in range(rng.integers(1, 3)):
            ties.append(rng.choice(n, rng.integers(2, min(n, 3) + 1), replace=False).tolist())
    kinds = draw(st.lists(st.sampled_from(["avg", "mem", "bops", "lin"]), min_size=1,
                          max_size=3, unique=True))
    if len(kinds) > 1 and "lin" in kinds and rng.random() < 0.5:
        kinds.remove("lin")  # random linear tables make joint infeasibility common
    base = ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, act_bits=act_bits,
                      allowed=allowed)
    cons = [_constraint(kind, base, rng, draw) for kind in kinds]
    return ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, act_bits=act_bits,
                      allowed=allowed, ties=ties, names=[f"layer{i}" for i in range(n)],
                      constraints=cons)


def _constraint(kind: str, base: ba.Problem, rng, draw) -> ba.Constraint:
    """A constraint whose limit lies from below its minimum to above its maximum."""
    frac = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.7, 1.0, 1.2, -0.2]))
    if kind == "lin":
        costs = rng.normal(1.0, 1.0, base.errors.shape) * rng.choice([1.0, 100.0])
        probe = ba.LinearBudget(costs, 1.0, name="latency")
    else:
        probe = {"avg": ba.AverageBits(1.0), "mem": ba.MemoryBudget(1.0),
                 "bops": ba.BOPsBudget(1.0)}[kind]
    table = np.where(base.allowed, probe.cost_table(base), np.nan)
    lo, hi = np.nanmin(table, axis=1).sum(), np.nanmax(table, axis=1).sum()
    limit = lo + frac * (hi - lo) + abs(rng.normal(0, 0.01)) * (hi - lo)
    if kind == "lin":
        return ba.LinearBudget(costs, limit, name="latency")
    limit = max(limit, 1e-3)
    return {"avg": ba.AverageBits, "mem": ba.MemoryBudget, "bops": ba.BOPsBudget}[kind](limit)


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
