"""Constraints: scoping with groups=, unique names, immutability, exact grading."""

from __future__ import annotations

import numpy as np
import pytest
from reference import assert_feasible, brute_force, close

import bitalloc as ba


def two_budget_problem(**kw) -> ba.Problem:
    sens = [4.0, 1.0, 0.5, 3.0, 0.2]
    names = ["w0", "w1", "w2", "a0", "a1"]
    cons = kw.pop("constraints", [ba.AverageBits(3.0, name="weights", groups=["w0", "w1", "w2"]),
                                  ba.AverageBits(4.0, name="acts", groups=[3, 4])])
    return ba.Problem.from_sensitivities(sens, [100, 200, 300, 50, 50], bits=(2, 4, 8),
                                         names=names, constraints=cons, **kw)


@pytest.mark.parametrize("method", sorted(ba.SOLVERS))
def test_scoped_averages_are_separate_budgets(method):
    p = two_budget_problem()
    r = ba.solve(p, method=method)
    assert_feasible(p, r.bits)
    opt, _ = brute_force(p)
    assert close(r.objective, opt) or r.status == "feasible"
    w = (r.bits[:3] * p.sizes[:3]).sum() / p.sizes[:3].sum()
    a = (r.bits[3:] * p.sizes[3:]).sum() / p.sizes[3:].sum()
    assert r.usage["weights"] == (pytest.approx(w), 3.0)
    assert r.usage["acts"] == (pytest.approx(a), 4.0)


def test_scope_changes_the_answer():
    scoped = ba.solve(two_budget_problem(), method="ilp")
    one = ba.solve(two_budget_problem(constraints=[ba.AverageBits(3.5)]), method="ilp")
    assert scoped.bits.tolist() != one.bits.tolist()


def test_every_constraint_type_takes_groups():
    costs = np.arange(15, dtype=float).reshape(5, 3)
    cons = [ba.MemoryBudget(200, groups=["w0"]), ba.BOPsBudget(1e4, groups=[3]),
            ba.LinearBudget(costs, 25.0, name="lat", groups=["a0", "a1"])]
    p = two_budget_problem(constraints=cons, macs=[10, 10, 10, 10, 10])
    r = ba.solve(p, method="ilp")
    assert_feasible(p, r.bits)
    assert r.usage["memory"][0] == 100 * r.bits[0] / 8
    assert r.usage["bops"][0] == 10 * 8 * r.bits[3]
    k = np.searchsorted(p.bits, r.bits)
    assert r.usage["lat"][0] == costs[3, k[3]] + costs[4, k[4]]


def test_unknown_scoped_groups_are_named():
    with pytest.raises(ValueError, match=r"^weights\.groups: unknown groups \['nope', 9\]"):
        two_budget_problem(constraints=[ba.AverageBits(3.0, name="weights",
                                                       groups=["w0", "nope", 9])])


def test_group_given_twice_in_scope():
    with pytest.raises(ValueError, match=r"^acts\.groups: group 'a0' is given more than once"):
        two_budget_problem(constraints=[ba.AverageBits(3.0, name="acts", groups=["a0", 3])])


@pytest.mark.parametrize("groups, match", [
    ("w0", r"^AverageBits\.groups: must be a list"),
    ([], r"^AverageBits\.groups: must name at least one group"),
    ([1.5], r"^AverageBits\.groups: a group is a name or an integer index"),
    ([True], r"^AverageBits\.groups: a group is a name or an integer index"),
])
def test_bad_groups_argument(groups, match):
    with pytest.raises(ValueError, match=match):
        ba.AverageBits(3.0, groups=groups)


def test_scoped_budget_out_of_reach_names_the_constraint():
    p = two_budget_problem(constraints=[ba.AverageBits(1.5, name="acts", groups=["a0", "a1"]),
                                        ba.AverageBits(8.0)])
    with pytest.raises(ba.InfeasibleError, match=r"^acts: max 1\.5, smallest reachable 2") as e:
        ba.solve(p)
    assert e.value.constraint == "acts" and e.value.reachable == 2.0


def test_second_average_needs_a_name():
    with pytest.raises(ValueError, match=r"^constraints\[1\]: duplicate constraint name "
                                         r"'average_bits'.*give name="):
        two_budget_problem(constraints=[ba.AverageBits(3.0, groups=[0]),
                                        ba.AverageBits(4.0, groups=[1])])


def test_constraints_are_immutable():
    c = ba.AverageBits(4.0)
    with pytest.raises(AttributeError, match="immutable"):
        c.limit = 3.0
    d = c.with_limit(3.0)
    assert (c.limit, d.limit, d.name) == (4.0, 3.0, "average_bits")


def test_repr_shows_name_and_scope():
    assert repr(ba.AverageBits(4.0, name="acts", groups=[3, "x"])) == \
        "AverageBits(4.0, name='acts', groups=[3, 'x'])"
    assert repr(ba.MemoryBudget(8.0)) == "MemoryBudget(8.0)"


def test_value_is_exact_and_violation_grades():
    p = ba.Problem(errors=[[1.0, 0.0], [1.0, 0.0]], sizes=[3e11 - 1, 1], bits=(2, 8),
                   constraints=[ba.AverageBits(2.0 + 6 / 3e11)])
    c = p.constraints[0]
    assert c.value(p, [2, 8]) == pytest.approx(2.0 + 6 / 3e11, rel=1e-15)
    assert c.violation(p, [2, 2]) == 0.0
    assert c.min_reachable(p) == 2.0
