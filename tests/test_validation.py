"""Every ValueError message of the core is triggered here, and names its argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bitalloc as ba

E = [[0.9, 0.4, 0.1], [0.5, 0.2, 0.05]]
GOOD = dict(errors=E, sizes=[10, 20], bits=(2, 4, 8))


def make(**changes):
    kw = {**GOOD, **changes}
    return ba.Problem(**kw)


@pytest.mark.parametrize("changes, match", [
    (dict(errors=[[0.9, math.nan, 0.1], [0.5, 0.2, 0.05]]),
     r"^errors: contains NaN at index \(0, 1\)"),
    (dict(errors=[[0.9, 0.4, math.inf], [0.5, 0.2, 0.05]]), r"^errors: contains inf"),
    (dict(errors=[[0.9, -0.4, 0.1], [0.5, 0.2, 0.05]]), r"^errors: must be >= 0, got -0.4"),
    (dict(errors=[0.9, 0.4, 0.1]), r"^errors: must be 2-D"),
    (dict(errors=np.zeros((0, 3))), r"^errors: must not be empty"),
    (dict(errors=[["a", "b", "c"]] * 2), r"^errors: must be numeric"),
    (dict(errors=[[0.9, 0.4], [0.5, 0.2]]), r"^errors: has 2 columns but there are 3 bits"),
    (dict(sizes=[10, 0]), r"^sizes: must be > 0, got 0.0 at index 1"),
    (dict(sizes=[10, -3]), r"^sizes: must be > 0"),
    (dict(sizes=[10]), r"^sizes: has 1 entries but there are 2 groups"),
    (dict(sizes=[10, math.nan]), r"^sizes: contains NaN"),
    (dict(bits=()), r"^bits: must not be empty"),
    (dict(bits=(4, 2, 8)), r"^bits: must be sorted ascending"),
    (dict(bits=(2, 2, 8)), r"^bits: contains duplicates"),
    (dict(bits=(2, 4.5, 8)), r"^bits: must be integers"),
    (dict(bits=(0, 4, 8)), r"^bits: must be between 1 and 64"),
    (dict(bits="248"), r"^bits: must be a sequence of integers"),
    (dict(names=["a"]), r"^names: has 1 entries but there are 2 groups"),
    (dict(names=["a", "a"]), r"^names: duplicate group name 'a'"),
    (dict(names="ab"), r"^names: must be a sequence of strings"),
    (dict(names=["a", ""]), r"^names: every name must be a non-empty string"),
    (dict(macs=[1, -1]), r"^macs: must be >= 0"),
    (dict(act_bits=[8, 0]), r"^act_bits: must be > 0"),
    (dict(allowed={"zz": [8]}), r"^allowed: unknown group 'zz'"),
    (dict(allowed={5: [8]}), r"^allowed: group index 5 out of range for 2 groups"),
    (dict(allowed={1.5: [8]}), r"^allowed: a group is a name or an integer index"),
    (dict(allowed={0: [3]}), r"^allowed\[0\]: bitwidths \[3\] are not among bits \[2, 4, 8\]"),
    (dict(allowed={0: []}), r"^allowed\[0\]: must list at least one bitwidth"),
    (dict(allowed=[8, 8]), r"^allowed: must map a group"),
    (dict(ties=[["g0", "nope"]]), r"^ties\[0\]: unknown group 'nope'"),
    (dict(ties="g0"), r"^ties: must be a list of lists"),
    (dict(ties=[0, 1]), r"^ties\[0\]: must be a list of groups"),
    (dict(constraints=["avg"]), r"^constraints\[0\]: not a constraint object"),
    (dict(constraints=[ba.AverageBits(4), ba.AverageBits(5)]),
     r"^constraints\[1\]: duplicate constraint name 'average_bits'"),
    (dict(constraints=[ba.BOPsBudget(1e9)]), r"^constraints\[0\]: BOPsBudget needs macs="),
    (dict(constraints=[ba.LinearBudget([[1, 2, 3]], 5)]),
     r"^constraints\[0\]\.costs: LinearBudget 'linear' has shape \(1, 3\), expected"),
])
def test_problem_rejects(changes, match):
    with pytest.raises(ValueError, match=match):
        make(**changes)


@pytest.mark.parametrize("sens, match", [
    ([1.0, math.nan], r"^sensitivity: contains NaN at index 1"),
    ([1.0, math.inf], r"^sensitivity: contains inf"),
    ([1.0, -2.0], r"^sensitivity: must be >= 0"),
    ([], r"^sensitivity: must not be empty"),
])
def test_sensitivity_rejects(sens, match):
    with pytest.raises(ValueError, match=match):
        ba.Problem.from_sensitivities(sens, [1, 1][: max(len(sens), 1)], bits=(2, 4))


def test_unknown_noise():
    with pytest.raises(ValueError, match=r"^noise: unknown noise model 'gauss'"):
        ba.Problem.from_sensitivities([1.0], [1], noise="gauss")


@pytest.mark.parametrize("factory, match", [
    (lambda: ba.AverageBits(0), r"^AverageBits\.max: must be positive"),
    (lambda: ba.AverageBits(math.nan), r"^AverageBits\.max: must be finite"),
    (lambda: ba.AverageBits("four"), r"^AverageBits\.max: must be a number"),
    (lambda: ba.MemoryBudget(-1), r"^MemoryBudget\.max_bytes: must be positive"),
    (lambda: ba.BOPsBudget(math.inf), r"^BOPsBudget\.max_bops: must be finite"),
    (lambda: ba.LinearBudget([[1, 2]], math.nan), r"^LinearBudget\.max: must be finite"),
    (lambda: ba.LinearBudget([1, 2], 3), r"^LinearBudget\.costs: must be a non-empty 2-D"),
    (lambda: ba.LinearBudget([[1, math.inf]], 3), r"^LinearBudget\.costs: must be finite"),
    (lambda: ba.LinearBudget([[1, 2]], 3, name=""), r"^LinearBudget\.name: must be a non-empty"),
])
def test_constraint_rejects(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_solve_rejects_bad_arguments():
    p = make(constraints=[ba.AverageBits(4)])
    with pytest.raises(ValueError, match=r"^method: unknown method 'simplex'; expected one of"):
        ba.solve(p, method="simplex")
    with pytest.raises(ValueError, match=r"^time_limit: must be positive and finite"):
        ba.solve(p, time_limit=0)
    with pytest.raises(ValueError, match=r"^time_limit: must be a number of seconds"):
        ba.solve(p, time_limit="soon")
    with pytest.raises(ValueError, match=r"^problem: expected a bitalloc.Problem"):
        ba.solve({"errors": E})


def test_bit_index_rejects():
    p = make()
    with pytest.raises(ValueError, match=r"^bits: expected 2 bitwidths"):
        p.objective([2])
    with pytest.raises(ValueError, match=r"^bits: values not among candidates"):
        p.objective([2, 3])


def test_infeasible_single_constraint_names_reachable_minimum():
    p = ba.Problem.from_sensitivities([1.0, 2.0], [10, 30], bits=(2, 4),
                                      allowed={1: [4]}, constraints=[ba.AverageBits(3.0)])
    for method in ba.SOLVERS:
        with pytest.raises(ba.InfeasibleError) as info:
            ba.solve(p, method=method)
        msg = str(info.value)
        assert msg.startswith("average_bits: max 3, smallest reachable 3.5"), msg
        assert info.value.constraint == "average_bits"
        assert info.value.limit == 3.0 and info.value.reachable == pytest.approx(3.5)
        assert isinstance(info.value, ValueError)


def test_tied_groups_without_common_bits():
    p = make(allowed={0: [2], 1: [8]}, ties=[[0, 1]], constraints=[ba.AverageBits(8)])
    with pytest.raises(ba.InfeasibleError, match=r"^allowed: tied groups \['g0', 'g1'\] have no"):
        ba.solve(p)


def _jointly_infeasible() -> ba.Problem:
    # each budget alone is reachable, but "latency" favours low bits for g0 and high
    # bits for g1 while "power" favours the opposite
    lat = ba.LinearBudget([[0, 10, 10], [10, 10, 0]], 5, name="latency")
    pw = ba.LinearBudget([[10, 10, 0], [0, 10, 10]], 5, name="power")
    return make(constraints=[lat, pw])


@pytest.mark.parametrize("method", sorted(ba.SOLVERS))
def test_jointly_infeasible_is_proven(method):
    with pytest.raises(ba.InfeasibleError) as info:
        ba.solve(_jointly_infeasible(), method=method)
    msg = str(info.value)
    assert msg.startswith("latency, power: each constraint is reachable on its own"), msg
    assert "proven by" in msg and "latency max 5" in msg


def test_jointly_infeasible_integer_only_is_proven_by_exact_search():
    # the LP relaxation is feasible (mixing options) but no integer point is
    lat = ba.LinearBudget([[0, 10]], 5, name="latency")
    pw = ba.LinearBudget([[10, 0]], 5, name="power")
    p = ba.Problem(errors=[[1, 0]], sizes=[1], bits=(2, 4), constraints=[lat, pw])
    cases = [("greedy", "exact MILP"), ("ilp", "exact MILP"), ("ilp_onehot", "CP-SAT")]
    for method, proof in cases:
        with pytest.raises(ba.InfeasibleError, match=proof):
            ba.solve(p, method=method)


def test_missing_extra_is_named(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith(("cvxpy", "ortools")):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    p = make(constraints=[ba.AverageBits(4)])
    with pytest.raises(ba.MissingDependencyError, match=r"pip install 'bitalloc\[convex\]'"):
        ba.solve(p, method="fractional")
    with pytest.raises(ba.MissingDependencyError, match=r"pip install 'bitalloc\[ilp\]'"):
        ba.solve(p, method="ilp")


def test_default_names_behave_like_the_tuple():
    from bitalloc.validate import DefaultNames

    names = DefaultNames(12)
    ref = tuple(f"g{i}" for i in range(12))
    assert names == ref and ref == names and list(names) == list(ref) and len(names) == 12
    assert names[3] == "g3" and names[-1] == "g11" and names[2:5] == ref[2:5]
    assert "g11" in names and "g12" not in names and "g01" not in names and 7 not in names
    assert names.index("g5") == 5 and names.count("g5") == 1 and hash(names) == hash(ref)
    assert names + ("x",) == ref + ("x",) and repr(DefaultNames(2)) == "('g0', 'g1')"
    with pytest.raises(IndexError):
        names[12]
    with pytest.raises(ValueError):
        names.index("a")
    with pytest.raises(AttributeError):
        names._n = 3
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(names)) == names and copy.deepcopy(names) == ref
    p = ba.Problem(errors=np.ones((12, 2)), sizes=np.ones(12), bits=(2, 4),
                   allowed={"g3": [4]}, ties=[["g0", "g11"]],
                   constraints=[ba.AverageBits(3.0, groups=["g1", "g2"])])
    r = ba.solve(p, method="greedy")
    assert r.names == ref and r.bits_by_name["g3"] == 4
    assert r.to_dict()["bits"].keys() == set(ref)
