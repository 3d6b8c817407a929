"""Per-group lower convex hulls (bitalloc.kernels.hull)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import tables

from bitalloc.kernels.hull import lower_hulls, monotone_chain


@settings(max_examples=300)
@given(tables(), st.lists(st.floats(0, 10), min_size=1, max_size=4))
def test_hull_minimises_every_priced_table(tab, lams):
    err, cost = tab
    h = lower_hulls(err, cost)
    m = len(err)
    rows = np.arange(m)
    pts = np.stack([h.options(np.minimum(np.full(m, j), h.count - 1)) for j in
                    range(err.shape[1])], axis=1)
    e, c = err[rows[:, None], pts], cost[rows[:, None], pts]
    real = np.arange(err.shape[1])[None, :] < h.count[:, None]
    # strictly increasing cost, strictly decreasing error, non-increasing eff along the hull
    assert (np.where(real[:, 1:], np.diff(c, axis=1), 1) > 0).all()
    assert (np.where(real[:, 1:], np.diff(e, axis=1), -1) < 0).all()
    assert (np.diff(h.eff, axis=1) <= 1e-12 * (1 + np.abs(h.eff[:, 1:]))).all() or \
        err.shape[1] <= 2
    eff = np.concatenate([h.eff.reshape(-1), lams])
    for lam in eff[eff >= 0]:
        full = np.min(err + lam * cost, axis=1)
        on_hull = np.min(np.where(real, e + lam * c, np.inf), axis=1)
        assert np.allclose(on_hull, full, rtol=1e-12, atol=1e-12)


@settings(max_examples=200)
@given(tables())
def test_fast_path_agrees_with_monotone_chain(tab):
    err, cost = tab
    cost = np.sort(cost, axis=1) + np.arange(cost.shape[1]) * 1e-3  # strictly increasing
    err = np.where(np.isfinite(err), err, 5.0)
    h = lower_hulls(err, cost)
    pts, cnt = monotone_chain(err, cost)
    assert (h.count == cnt).all()
    for j in range(err.shape[1]):
        pos = np.minimum(np.full(len(err), j), cnt - 1)
        assert (h.options(pos) == np.take_along_axis(pts, pos[:, None], 1)[:, 0]).all()
