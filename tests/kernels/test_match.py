"""``join_pairs`` finds exactly the pairs a brute-force double loop finds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bitalloc.kernels.match import join_pairs


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.sampled_from([1e-12, 1.0, 1e9]),
       st.booleans())
def test_join_matches_brute_force(seed, nc, unit, zero_price):
    rng = np.random.default_rng(seed)
    na, nb = rng.integers(0, 40), rng.integers(0, 40)
    lam = rng.uniform(0.1, 2.0, nc) / unit
    if zero_price:
        lam[0] = 0.0
    slack = rng.uniform(0, 1, nc) * unit
    a = (rng.uniform(0, 0.3, na), rng.uniform(-1, 1, (na, nc)) * unit)
    b = (rng.uniform(0, 0.3, nb), rng.uniform(-1, 1, (nb, nc)) * unit)
    thr = 1.0
    ia, ib, val = join_pairs(slack, lam, a, b, thr)
    want = set()
    for i in range(na):
        for j in range(nb):
            sf = slack - a[1][i] - b[1][j]
            v = a[0][i] + b[0][j] + sf @ lam
            if (sf >= 0).all() and v < thr:
                want.add((i, j))
    assert set(zip(ia.tolist(), ib.tolist())) == want
    assert (np.diff(val) >= 0).all()


def test_join_gives_up_beyond_its_limit():
    a = (np.zeros(50), np.zeros((50, 2)))
    assert join_pairs(np.ones(2), np.ones(2), a, a, 10.0, limit=100) is None
