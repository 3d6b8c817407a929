"""torchao FqnToConfig from an allocation: quantize_ applies each layer's bits and group."""

import pytest
import torch
from torch import nn

from bitalloc_torch.export_torchao import fqn_to_config

tq = pytest.importorskip("torchao.quantization")


def _levels_per_group(w: torch.Tensor, g: int) -> int:
    groups = w.reshape(w.shape[0], -1, g)
    return max(len(torch.unique(groups[r, k])) for r in range(groups.shape[0])
               for k in range(groups.shape[1]))


def test_quantize_applies_each_format():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                      nn.Linear(16, 8))
    ref = [m[i].weight.detach().clone() for i in (0, 2, 4)]
    x = torch.randn(4, 64)
    y = m(x)
    cfg = fqn_to_config({"0": "int2_g32", "2": "Q8_0", "4": "F16"})
    assert isinstance(cfg, tq.FqnToConfig)
    tq.quantize_(m, cfg, filter_fn=None)
    with torch.no_grad():
        w0 = m[0].weight.dequantize()
        w2 = m[2].weight.dequantize()
    assert _levels_per_group(w0, 32) <= 4          # 2 bits, groups of 32
    assert _levels_per_group(w2, 32) <= 256
    assert (w2 - ref[1]).abs().max() < (w0 - ref[0]).abs().max()
    assert torch.equal(m[4].weight, ref[2])         # F16 -> left in float
    assert (m(x) - y).abs().max() < 0.5 * y.abs().max()


def test_format_without_int_equivalent():
    with pytest.raises(ValueError, match="MXFP4 has no integer"):
        fqn_to_config({"0": "MXFP4"})
