"""Layers that subclass Conv/Linear, dict batches, and clipped Hutchinson estimates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bitalloc_torch as bt


class PaddedConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(nn.functional.pad(x, (1, 1, 1, 1)))


def test_subclassed_layers_left_float_with_a_warning():
    m = nn.Sequential(PaddedConv(1, 2, 3), nn.Flatten(), nn.LazyLinear(3))
    m(torch.zeros(1, 1, 4, 4))
    with pytest.warns(RuntimeWarning,
                      match=r"1 layer\(s\) subclass Linear/Conv, are not wrapped .*PaddedConv"):
        bt.quantize_model(m)
    assert not hasattr(m[0], "weight_quantizer") and hasattr(m[2], "weight_quantizer")


class DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, features, scale=1.0):
        return self.lin(features) * scale


def test_dict_batches_are_keyword_arguments_everywhere():
    m = bt.quantize_model(DictModel(), init="minmax")
    batch = ({"features": torch.randn(8, 4), "scale": 2.0}, torch.randn(8, 2))
    s = bt.fit_sensitivity(m, nn.MSELoss(), [batch])
    h = bt.hutchinson_sensitivity(m, nn.MSELoss(), [batch], samples=2)
    assert set(s) == set(h) == {"lin"} and s["lin"] > 0


def test_negative_hutchinson_estimates_warn():
    m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)),
                          init="minmax")
    data = [(torch.randn(16, 4), torch.randn(16, 1))]

    def concave(out, y):  # negative curvature everywhere: every estimate is < 0
        return -(out - y).pow(2).mean()

    with pytest.warns(RuntimeWarning, match=r"negative trace estimate\(s\) clipped to 0"):
        s = bt.hutchinson_sensitivity(m, concave, data, samples=4)
    assert min(s.values()) >= 0
