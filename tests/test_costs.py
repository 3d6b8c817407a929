"""Lazy rank-one cost tables (bitalloc.costs) against the dense tables they stand for."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import rank_one_instances

import bitalloc as ba
from bitalloc.costs import (
    RankOneCost,
    SegmentCost,
    abs_row_max_sum,
    along,
    chosen,
    count_above,
    dense_rows,
    is_lazy,
    masked_sum,
    row_entries,
    row_min,
    sum_above,
)
from bitalloc.kernels.hull import lower_hulls, row_count
from bitalloc.kernels.lagrange import lagrangian_eval, lagrangian_value, priced, priced_min
from bitalloc.solvers import SOLVERS


@st.composite
def factors(draw):
    """Weights (some zero or tiny, any unit) and strictly increasing per-option factors."""
    m, k = draw(st.integers(1, 40)), draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    unit = 10.0 ** draw(st.floats(-9, 12))
    w = rng.lognormal(0, 2, m) * unit * (rng.random(m) > 0.1)
    f = np.sort(rng.choice(np.arange(1, 65), k, replace=False)).astype(float)
    f = f / draw(st.sampled_from([1.0, 8.0, 3.0, 1e5 + 0.5]))
    return w, f, rng


@st.composite
def hull_inputs(draw):
    """A rank-one cost and error tables: convex, measured (non-convex) or with disallowed."""
    w, f, rng = draw(factors())
    m, k = len(w), len(f)
    kind = draw(st.sampled_from(["convex", "measured", "masked"]))
    if kind == "convex":
        err = np.outer(rng.lognormal(0, 2, m), 4.0 ** -np.arange(k))
    else:
        err = rng.random((m, k)) * 10.0 ** draw(st.floats(-9, 12))
    if kind == "masked":
        allowed = rng.random((m, k)) < 0.7
        allowed[np.arange(m), rng.integers(0, k, m)] = True
        err = np.where(allowed, err, np.inf)
    return RankOneCost(w, f), err, rng


@settings(max_examples=200)
@given(factors())
def test_indexing_gives_the_dense_entries(fac):
    w, f, rng = fac
    c, dense = RankOneCost(w, f), np.outer(w, f)
    m, k = dense.shape
    r, j = rng.integers(0, m, 13), rng.integers(0, k, 13)
    keys = [(r, j), (r,), r, (slice(None), int(j[0])), (int(r[0]), slice(None)),
            (slice(1, None), slice(None, -1)), (r[:, None], j[None, :]), (int(r[0]), int(j[0])),
            (-1, -1), (r, slice(None)), (slice(None), j)]
    for key in keys:
        assert np.array_equal(c[key], dense[key]), key
    assert c.shape == dense.shape and c.ndim == 2 and len(c) == m
    assert np.array_equal(np.asarray(c), dense)
    assert np.array_equal(chosen(c, j[:1].repeat(m)), dense[np.arange(m), j[0]])
    assert np.array_equal(dense_rows(c, 0, m), dense)
    assert np.array_equal(row_min(c), dense.min(axis=1))
    assert np.array_equal(c.max(axis=1), dense.max(axis=1))
    assert abs_row_max_sum(c) == np.abs(dense).max(axis=1).sum()
    allowed = rng.random((m, k)) < 0.6
    allowed[:, 0] = True
    assert np.array_equal(row_min(c, allowed), np.where(allowed, dense, np.inf).min(axis=1))
    jj = rng.integers(0, k, m)
    assert np.array_equal(along(c, 0, m, jj), dense[np.arange(m), jj])
    assert np.array_equal(row_entries(dense, 0, m, jj), dense[np.arange(m), jj])


def test_numpy_operations_build_the_table_and_writes_are_refused():
    w, f = np.array([1.0, -2.0, 0.5]), np.array([2.0, 3.0, 8.0])
    c, dense = RankOneCost(w, f), np.outer(w, f)
    assert is_lazy(c) and not is_lazy(dense)
    for got, want in [(c * 2.0, dense * 2.0), (np.float64(3.0) * c, 3.0 * dense),
                      (c / 4.0, dense / 4.0), (np.ones((3, 3)) + c, 1.0 + dense),
                      (np.abs(c), np.abs(dense)), (-c, -dense), (c - c, dense - dense),
                      (np.where(dense > 0, c, np.inf), np.where(dense > 0, dense, np.inf)),
                      (np.diff(c, axis=1), np.diff(dense, axis=1)), (c.min(axis=1), dense.min(1)),
                      (c.sum(), dense.sum()), (c.T, dense.T), (c.copy(), dense)]:
        assert isinstance(got, (np.ndarray, np.floating)) and np.array_equal(got, want)
    agg = np.zeros((3, 3))
    agg += c
    assert np.array_equal(agg, dense)
    with pytest.raises(ValueError, match="read-only"):
        c[0, 0] = 1.0
    assert not c.w.flags.writeable and not c.f.flags.writeable
    mine = np.array([1.0, 2.0])
    RankOneCost(mine, f)
    assert mine.flags.writeable  # the caller's array is left alone (a read-only view is kept)


@settings(max_examples=200)
@given(hull_inputs())
def test_lazy_hull_segments_equal_the_dense_hull(inp):
    c, err, rng = inp
    dense = np.asarray(c)
    lazy_h, dense_h = lower_hulls(err, c), lower_hulls(err, dense)
    assert np.array_equal(lazy_h.eff, dense_h.eff)
    assert np.array_equal(lazy_h.count, dense_h.count)
    assert np.array_equal(lazy_h.irregular, dense_h.irregular)
    assert (lazy_h.points is None) == (dense_h.points is None)
    if lazy_h.points is not None:
        assert np.array_equal(lazy_h.points, dense_h.points)
    kk = err.shape[1] - 1
    if kk == 0:
        return
    seg, want = lazy_h.d_cost, dense_h.d_cost
    assert isinstance(seg, SegmentCost)
    assert np.array_equal(np.asarray(seg), want)
    m = err.shape[0]
    r, j = rng.integers(0, m, 17), rng.integers(0, kk, 17)
    assert np.array_equal(seg[r, j], want[r, j])
    assert seg[int(r[0]), int(j[0])] == want[r[0], j[0]]
    flat = rng.integers(0, m * kk, 17)
    assert np.array_equal(seg.reshape(-1)[flat], want.reshape(-1)[flat])
    jj = rng.integers(0, kk, m)
    assert np.array_equal(along(seg, 0, m, jj), want[np.arange(m), jj])
    mask = rng.random((m, kk)) < 0.5
    scale = np.abs(want).sum() + 1e-300
    assert abs(masked_sum(seg.reshape(-1), mask.reshape(-1)) - want[mask].sum()) <= 1e-12 * scale
    for t in [-1.0, 0.0, *rng.choice(lazy_h.eff.reshape(-1), 3).tolist()]:
        got = sum_above(seg.reshape(-1), lazy_h.eff.reshape(-1), t)
        assert abs(got - want[lazy_h.eff > t].sum()) <= 1e-12 * scale
        assert sum_above(want.reshape(-1), dense_h.eff.reshape(-1), t) == pytest.approx(
            want[dense_h.eff > t].sum(), rel=1e-12, abs=1e-300)
        assert np.array_equal(count_above(lazy_h.eff, t), row_count(lazy_h.eff > t))


def _dense(cp):
    """The same compiled problem with every cost as a plain ``(M, K)`` table."""
    return dataclasses.replace(cp, costs=tuple(np.array(c) for c in cp.costs))


@settings(max_examples=150)
@given(rank_one_instances())
def test_rank_one_and_dense_compiled_forms_give_the_same_answers(problem):
    cp = problem.compiled()
    assert all(isinstance(c, RankOneCost) for c in cp.costs)
    dense = _dense(cp)
    assert np.array_equal(cp.min_costs(), dense.min_costs())
    choice = np.zeros(cp.n, dtype=np.int64)
    assert np.array_equal(cp.usage(choice), dense.usage(choice))
    for method in ("lagrangian", "greedy"):
        try:
            a = SOLVERS[method](cp, None)
        except ba.InfeasibleError:
            with pytest.raises(ba.InfeasibleError):
                SOLVERS[method](dense, None)
            continue
        b = SOLVERS[method](dense, None)
        assert np.array_equal(a.choice, b.choice), method
        assert a.bound == b.bound, method


@pytest.mark.parametrize("unit", [1e-9, 1.0, 1e12])
def test_large_rank_one_problem_matches_the_dense_path(unit):
    """Above the sampled-selection threshold (2**18 segments): the same allocation."""
    rng = np.random.default_rng(1)
    n, bits = 60_000, (2, 3, 4, 5, 6, 7, 8)
    sizes = np.rint(rng.uniform(1e3, 2e5, n)) * unit
    weights = [f"g{i}" for i in range(0, n, 3)]
    p = ba.Problem.from_sensitivities(rng.lognormal(0, 1.5, n) * sizes, sizes, bits=bits,
                                      noise="exp",
                                      constraints=[ba.AverageBits(4.2),
                                                   ba.AverageBits(3.5, name="w",
                                                                  groups=weights)])
    for cons in ([p.constraints[0]], list(p.constraints)):
        q = ba.Problem(errors=p.errors, sizes=p.sizes, bits=bits, constraints=cons)
        cp = q.compiled()
        a, b = SOLVERS["lagrangian"](cp, None), SOLVERS["lagrangian"](_dense(cp), None)
        assert cp.objective(a.choice) == pytest.approx(cp.objective(b.choice), rel=1e-12)
        assert a.bound == pytest.approx(b.bound, rel=1e-12)
        assert cp.fits(a.choice) and cp.objective(a.choice) >= a.bound


@settings(max_examples=100)
@given(rank_one_instances(), st.floats(0, 3))
def test_priced_tables_and_minima_match_the_dense_arithmetic(problem, scale):
    cp = problem.compiled()
    lam = scale * np.arange(1, len(cp.costs) + 1) / len(cp.costs)
    want = cp.errors.copy()
    for lc, c in zip(lam, cp.costs):
        want = want + lc * np.asarray(c)
    if not cp.all_allowed:
        want[~cp.allowed] = np.inf
    got = priced(cp, lam)
    assert np.array_equal(got, want)
    low, arg = priced_min(cp, lam)
    assert np.array_equal(arg, np.argmin(want, axis=1)) and np.array_equal(low, want.min(axis=1))
    value, choice, _ = lagrangian_eval(cp, lam)
    assert lagrangian_value(cp, lam) == value and np.array_equal(choice, arg)


@pytest.mark.parametrize("cls", [ba.AverageBits, ba.MemoryBudget, ba.BOPsBudget])
@pytest.mark.parametrize("groups", [None, [0, 2, 5]])
def test_factors_multiply_to_the_cost_table_exactly(cls, groups):
    rng = np.random.default_rng(5)
    p = ba.Problem(errors=rng.random((7, 3)), sizes=rng.integers(1, 10**6, 7) * 0.37,
                   macs=rng.integers(0, 10**9, 7) * 1.1, act_bits=rng.choice([4, 8, 6], 7),
                   bits=(2, 5, 8), constraints=[])
    c = cls(1.0, groups=groups)
    w, f = c.factors(p)
    assert np.array_equal(np.outer(w, f), c.cost_table(p))
    if groups is not None:
        assert (w[[1, 3, 4, 6]] == 0).all()
    if cls is ba.MemoryBudget and groups is None:
        assert w is p.sizes  # a power-of-two divisor: the sizes themselves, no copy


def test_blocks_of_rows_and_irregular_rows_across_block_edges():
    """More rows than one block (CHUNK, VEC_CHUNK), with disallowed options and
    non-convex rows spread over every block: lazy and dense hulls and fills agree."""
    rng = np.random.default_rng(9)
    n, bits = 140_003, (2, 3, 4, 6, 8)
    sizes = rng.integers(1, 1000, n).astype(float)
    err = np.outer(rng.lognormal(0, 1, n), 4.0 ** -np.arange(5))
    odd = rng.random(n) < 0.01
    err[odd] = rng.random((int(odd.sum()), 5))
    allowed = {int(i): [2, 4, 8] for i in rng.choice(n, 500, replace=False)}
    p = ba.Problem(errors=err, sizes=sizes, bits=bits, allowed=allowed,
                   constraints=[ba.MemoryBudget(float(sizes.sum() * 4.3 / 8))])
    cp = p.compiled()
    assert isinstance(cp.costs[0], RankOneCost)
    a, b = lower_hulls(cp.errors, cp.costs[0]), lower_hulls(cp.errors, np.asarray(cp.costs[0]))
    assert len(a.irregular) > 500 and np.array_equal(a.eff, b.eff)
    assert np.array_equal(np.asarray(a.d_cost), b.d_cost)
    x, y = SOLVERS["lagrangian"](cp, None), SOLVERS["lagrangian"](_dense(cp), None)
    assert cp.fits(x.choice) and cp.objective(x.choice) >= x.bound
    assert cp.objective(x.choice) == pytest.approx(cp.objective(y.choice), rel=1e-12)
    assert x.bound == pytest.approx(y.bound, rel=1e-12)
