"""Problem: immutability, input validation of allowed/ties, magnitudes that overflow."""

from __future__ import annotations

import numpy as np
import pytest

import bitalloc as ba


def small(**kw) -> ba.Problem:
    kw.setdefault("constraints", [ba.AverageBits(4.0)])
    return ba.Problem.from_sensitivities([1.0, 2.0], [10, 10], bits=(2, 4, 8),
                                         names=["a", "b"], **kw)


def test_problem_is_frozen():
    p = small(ties=[["a", "b"]], allowed={"a": [4, 8]})
    for name in ("errors", "sizes", "bits", "allowed"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(p, name)[0] = 0
    with pytest.raises(AttributeError, match="immutable"):
        p.constraints = ()
    assert p.ties == ((0, 1),) and isinstance(p.constraints, tuple)
    with pytest.raises(AttributeError):
        p.ties.append((0, 1))  # a tuple: no append


def test_mutating_after_solve_is_impossible_and_a_new_problem_solves_fresh():
    p = small()
    r1 = ba.solve(p, method="greedy")
    with pytest.raises(AttributeError, match="immutable"):
        p.constraints[0].limit = 3.0
    q = p.with_limit("average_bits", 3.0)
    r2 = ba.solve(q, method="greedy")
    assert r1.usage["average_bits"][1] == 4.0 and r2.usage["average_bits"] == (3.0, 3.0)
    assert ba.solve(p, method="greedy").usage == r1.usage  # the original is untouched


def test_caller_arrays_are_copied():
    err = np.array([[1.0, 0.5, 0.1]])
    p = ba.Problem(errors=err, sizes=[1], bits=(2, 4, 8), constraints=[ba.AverageBits(4.0)])
    err[0, 1] = 100.0
    assert p.errors[0, 1] == 0.5


@pytest.mark.parametrize("allowed, match", [
    ({"a": [4.7]}, r"^allowed\['a'\]: a bitwidth must be an integer, got 4\.7"),
    ({"a": "48"}, r"^allowed\['a'\]: must be a list of bitwidths, got '48'"),
    ({"a": [4], 0: [8]}, r"^allowed: group 'a' is given twice \(as 'a' and 0\)"),
    ({"a": None}, r"^allowed\['a'\]: must be a list of bitwidths, got None"),
    ({"a": [True]}, r"^allowed\['a'\]: a bitwidth must be an integer"),
    ({"a": [None]}, r"^allowed\['a'\]: a bitwidth must be an integer"),
    ({None: [4]}, r"^allowed: a group is a name or an integer index"),
])
def test_allowed_rejects(allowed, match):
    with pytest.raises(ValueError, match=match):
        small(allowed=allowed)


def test_allowed_accepts_integral_floats_and_a_single_int():
    p = small(allowed={"a": [4.0, 8], 1: 2})
    assert p.allowed.tolist() == [[False, True, True], [True, False, False]]


@pytest.mark.parametrize("kw, match", [
    ({"sizes": [1e308, 1e308]}, r"^sizes: the total overflows"),
    ({"errors": [[1e308, 1.0], [1e308, 1.0]]}, r"^errors: the total error overflows"),
    ({"macs": [1e307, 1e307]}, r"^macs: the total overflows"),
])
def test_totals_that_overflow_are_value_errors(kw, match):
    base = {"errors": [[1.0, 0.5], [2.0, 1.0]], "sizes": [1, 1], "bits": (2, 4)}
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        ba.Problem(**base, constraints=[ba.AverageBits(3.0)])


def test_cost_table_that_overflows_is_a_value_error_before_solving():
    big = [[1e308, 1e308], [1e308, 1e308]]
    p = ba.Problem(errors=[[1.0, 0.0], [1.0, 0.0]], sizes=[1, 1], bits=(2, 4),
                   constraints=[ba.LinearBudget(big, 1.0, name="energy")])
    for method in sorted(ba.SOLVERS):
        with pytest.raises(ValueError, match=r"^constraints\[0\]: the costs of 'energy' overflow"):
            ba.solve(p, method=method)


def test_with_limit_names_unknown_constraints():
    with pytest.raises(ValueError, match=r"^constraint: unknown constraint 'bops'"):
        small().with_limit("bops", 1.0)
