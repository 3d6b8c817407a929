"""Result: frozen, read-only bits, status restricted to its two values."""

from __future__ import annotations

import dataclasses

import pytest

import bitalloc as ba


def test_result_is_frozen_with_read_only_bits():
    p = ba.Problem.from_sensitivities([4.0, 1.0], [100, 100], bits=(2, 4),
                                      constraints=[ba.AverageBits(3.0)])
    r = ba.solve(p)
    with pytest.raises(ValueError, match="read-only"):
        r.bits[0] = 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = "feasible"
    assert r.to_dict()["bits"] == {"g0": 4, "g1": 2}


def test_status_must_be_optimal_or_feasible():
    with pytest.raises(ValueError, match=r"^status: must be 'optimal' or 'feasible'"):
        ba.Result(bits=[2], objective=1.0, bound=1.0, gap=0.0, status="done", method="x",
                  seconds=0.0, usage={})
