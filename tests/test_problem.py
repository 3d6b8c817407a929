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


def test_one_copy_of_the_table_and_no_table_for_defaults():
    errors = np.random.default_rng(0).random((50, 3))
    p = ba.Problem(errors=errors, sizes=np.ones(50), bits=(2, 4, 8),
                   constraints=[ba.AverageBits(4.0)])
    assert not np.shares_memory(p.errors, errors) and p.errors.flags.c_contiguous
    assert p.error_total == pytest.approx(errors.sum(), rel=1e-15)
    assert p.all_allowed and p.allowed.shape == (50, 3) and p.allowed.all()
    assert p.act_bits.shape == (50,) and (p.act_bits == 8).all()
    for a in (p.allowed, p.act_bits):
        assert not a.flags.writeable
    assert p.names == tuple(f"g{i}" for i in range(50)) and p.names[49] == "g49"
    cp = p.compiled()  # in range: the compiled errors are the problem's table itself
    assert cp.e_scale == 1.0 and cp.errors is p.errors and cp.all_allowed
    q = ba.Problem(errors=errors, sizes=np.ones(50), bits=(2, 4, 8),
                   allowed={0: [2]}, constraints=[ba.AverageBits(4.0)])
    assert not q.all_allowed and not q.compiled().all_allowed


@pytest.mark.parametrize("unit", [1e-300, 1e-9, 1.0, 1e12, 1e300])
def test_errors_in_any_unit_solve_alike(unit):
    rng = np.random.default_rng(3)
    errors = np.outer(rng.lognormal(0, 1, 40), ba.phi((2, 4, 8)))
    base = ba.Problem(errors=errors, sizes=rng.integers(1, 9, 40), bits=(2, 4, 8),
                      constraints=[ba.AverageBits(4.5)])
    p = ba.Problem(errors=errors * unit, sizes=base.sizes, bits=(2, 4, 8),
                   constraints=[ba.AverageBits(4.5)])
    cp = p.compiled()
    assert (cp.e_scale == 1.0) == (1e-77 < unit < 1e77)  # 2**-256 .. 2**256
    for method in ("lagrangian", "greedy", "auto"):
        a, b = ba.solve(base, method=method), ba.solve(p, method=method)
        assert a.bits.tolist() == b.bits.tolist(), method
        assert b.objective == pytest.approx(a.objective * unit, rel=1e-12)


def test_a_table_whose_sum_overflows_but_row_maxima_do_not_is_accepted():
    errors = [[1e308, 1e308], [1e307, 0.0]]  # the sum of all entries is inf
    p = ba.Problem(errors=errors, sizes=[1, 1], bits=(2, 4), constraints=[ba.AverageBits(3.0)])
    assert p.error_total == np.inf
    r = ba.solve(p, method="lagrangian")
    assert r.bits.tolist() in ([2, 4], [4, 2]) and np.isfinite(r.objective)
