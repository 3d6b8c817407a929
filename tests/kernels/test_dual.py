"""The multi-constraint dual search (bitalloc.kernels.dual)."""

from __future__ import annotations

import pytest
from strategies import hlp_value, layer_problem

from bitalloc.kernels.dual import maximize_dual


@pytest.mark.parametrize("seed, kinds", [(3, ("avg", "bops")), (4, ("avg", "bops", "mem")),
                                         (5, ("bops", "mem"))])
def test_dual_reaches_the_lp_value(seed, kinds):
    p = layer_problem(600, seed, kinds, bits=(2, 3, 4, 5, 6, 7, 8))
    cp = p.compiled()
    d = maximize_dual(cp)
    assert d.converged
    assert d.bound == pytest.approx(hlp_value(cp), rel=1e-9)
    assert d.bound <= hlp_value(cp) * (1 + 1e-12)
