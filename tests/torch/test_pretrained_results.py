"""``benchmarks.pretrained.carry_over``: diagnostics survive a rerun only while valid."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_carry_over_keeps_diagnostics_and_paired_only_while_valid():
    from benchmarks.pretrained import carry_over

    def run(trace, cos):
        return {"minilm": {"fit_trace": {"a": trace, "b": 2.0},
                           "results": {"3": {"uniform": {"metrics": {"cosine": cos}}}}}}

    prev = {**run(1.0, 0.85), "date": "d0", "diagnostics": {"x": 1},
            "paired": {"minilm": {"metric": "cosine", "3": {"means": {"uniform": 0.85}}},
                       "seconds": 1.0}}
    same = run(1.0 + 1e-4, 0.85)
    carry_over(prev, same)
    assert same["diagnostics"] == {"x": 1} and same["diagnostics_date"] == "d0"
    assert "paired" in same
    moved = run(1.1, 0.86)           # traces moved by 10 %, metric changed
    carry_over(prev, moved)
    assert "diagnostics" not in moved and "paired" not in moved
