"""Fill, repair and exchange moves (bitalloc.kernels.fill)."""

from __future__ import annotations

import numpy as np
from strategies import layer_problem

from bitalloc.kernels.fill import exchange, fill, repair
from bitalloc.solvers.lagrangian import lagrangian


def test_fill_repair_exchange_keep_feasibility():
    p = layer_problem(500, 9, ("avg", "bops"))
    cp = p.compiled()
    low = np.zeros(cp.n, dtype=np.int64)
    full = fill(cp, low, np.array([1.0, 1e-12]))
    assert cp.fits(full) and cp.objective(full) < cp.objective(low)
    top = np.full(cp.n, cp.errors.shape[1] - 1)
    fixed = repair(cp, top)
    assert fixed is not None and cp.fits(fixed)
    res = lagrangian(cp)
    better = exchange(cp, res.choice, res.lam)
    assert cp.fits(better) and cp.objective(better) <= res.objective
