"""benchmarks/qat_frameworks.py: the study's 3-bit arms with Brevitas quantizers (smoke)."""

from __future__ import annotations

import torch
from bt_frameworks_common import import_or_skip, mobilenet

from bitalloc_torch.demo.train import Data

import_or_skip("brevitas.nn", "Brevitas")
from benchmarks.qat_frameworks import run_arm  # noqa: E402


def test_uniform_and_qbitopt_arms_keep_the_budget():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 28, 28, generator=g), torch.randint(0, 10, (96,), generator=g)
    data = Data(x[:64], y[:64], x[64:], y[64:], x[64:], y[64:])
    uni = run_arm(mobilenet(), data, "uniform", seed=0, steps=4, every=2, batch=16)
    assert uni["reallocations"] == 0 and uni["avg_bits"] == 3.0
    qb = run_arm(mobilenet(), data, "qbitopt", seed=0, steps=4, every=2, batch=16)
    assert qb["reallocations"] == 1  # step 2; frozen after step 3
    assert qb["budget_ok"] and qb["max_avg_bits_seen"] <= 3.0
    first, *_, last = qb["bits"]
    assert qb["bits"][first] == qb["bits"][last] == 8
