"""Hull greedy and the split-move alternative (bitalloc.kernels.moves)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import assert_feasible

import bitalloc as ba
from bitalloc.kernels.moves import hull_greedy, split_alternatives
from bitalloc.numeric import TOL


def paper_greedy(p: ba.Problem) -> np.ndarray:
    """QBitOpt's greedy, one move at a time (the reference): from the lowest bits, take the
    improving move with the best error decrease per unit of the (single) budget that fits
    (within TOL, as in the kernels)."""
    limit = p.constraints[0].limit * (1 + TOL)
    table = p.constraints[0].cost_table(p)
    k = np.zeros(p.n_groups, dtype=int)
    rows = np.arange(p.n_groups)
    used = table[rows, k].sum()
    while True:
        best, move = -1.0, None
        for i in range(p.n_groups):
            for j in range(len(p.bits)):
                de = p.errors[i, k[i]] - p.errors[i, j]
                dc = table[i, j] - table[i, k[i]]
                if de > 0 and dc > 0 and used + dc <= limit and de / dc > best:
                    best, move = de / dc, (i, j, dc)
        if move is None:
            return k
        k[move[0]] = move[1]
        used += move[2]


@settings(max_examples=150)
@given(st.integers(1, 12), st.integers(0, 2**32 - 1), st.floats(0.05, 0.95))
def test_hull_greedy_is_the_papers_greedy(n, seed, frac):
    rng = np.random.default_rng(seed)
    bits = (2, 3, 4, 6, 8)
    p = ba.Problem.from_sensitivities(rng.lognormal(0, 2, n), rng.integers(1, 1000, n),
                                      bits=bits, constraints=[ba.AverageBits(2 + 6 * frac)])
    cp = p.compiled()
    got = cp.expand(hull_greedy(cp))
    want = p.bits[paper_greedy(p)]
    # kernels meet budgets within TOL (the driver's certify step makes them exact: a limit
    # like 2 + 6 * 0.95 = 7.699999999999999 against an exact 7.7 is one of those cases)
    c = p.constraints[0]
    assert c.value(p, got) <= c.limit * (1 + TOL)
    assert p.objective(got) == p.objective(want)
    assert_feasible(p, ba.solve(p, method="greedy").bits)


def test_split_alternative_fixes_the_blocked_large_move():
    p = ba.Problem.from_sensitivities([1, 1, 2], [1, 1, 1998], bits=(2, 4, 8),
                                      constraints=[ba.AverageBits(4)])
    cp = p.compiled()
    plain = hull_greedy(cp)
    assert cp.expand(plain).tolist() == [8, 8, 2]  # what a plain greedy does: 12.5x
    assert cp.expand(split_alternatives(cp, plain)).tolist() == [4, 4, 4]


def test_split_alternative_is_skipped_when_the_bound_is_met():
    p = ba.Problem.from_sensitivities([1, 1, 2], [1, 1, 1998], bits=(2, 4, 8),
                                      constraints=[ba.AverageBits(4)])
    cp = p.compiled()
    plain = hull_greedy(cp)
    assert split_alternatives(cp, plain, bound=cp.objective(plain)).tolist() == plain.tolist()


def test_hull_greedy_reports_an_infeasible_start():
    lat = ba.LinearBudget([[0, 10]], 5, name="latency")
    pw = ba.LinearBudget([[10, 0]], 50, name="power")
    p = ba.Problem(errors=[[1, 0]], sizes=[1], bits=(2, 4), constraints=[lat, pw])
    assert hull_greedy(p.compiled()) is not None
    p2 = ba.Problem(errors=[[1, 0]], sizes=[1], bits=(2, 4),
                    constraints=[lat, ba.LinearBudget([[10, 0]], 5, name="power")])
    assert hull_greedy(p2.compiled()) is None
