"""Bias correction of ``benchmarks.pretrained_ptq.WeightPTQ`` on toy conv / linear nets.

After correction, the per-channel mean output of every layer on the estimation data
equals the float model's (``"network"``), or the float-weight layer's on the same input
(``"layer"``); before it, it does not (so the test can fail).
"""

import copy
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bitalloc_torch as bt  # noqa: E402
from benchmarks.pretrained_ptq import WeightPTQ, channel_mean  # noqa: E402


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),       # depthwise, with bias
        nn.Conv2d(8, 6, 1, groups=2, bias=False), nn.ReLU(),      # grouped
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))


def _means(model: nn.Module, x: torch.Tensor, names) -> dict:
    out, hs = {}, []
    mods = dict(model.named_modules())
    for n in names:
        def hook(mod, args, y, n=n):
            out[n] = channel_mean(y, isinstance(mod, nn.Linear))
        hs.append(mods[n].register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return out


def _quantized(bits: int = 3):
    ref = _net().eval()
    model = bt.quantize_model(copy.deepcopy(ref), bits=8, act_bits=None, init="mse")
    ptq = WeightPTQ(model, (bits, 8))
    ptq.apply(ptq.uniform(bits, {}))
    return ref, model, ptq


def _gap(a: dict, b: dict) -> float:
    return max(float((a[n] - b[n]).abs().max() / (b[n].abs().max() + 1e-12)) for n in a)


def test_network_bias_correction_matches_float_means_layer_by_layer():
    ref, model, ptq = _quantized()
    x = torch.randn(16, 3, 10, 10, generator=torch.Generator().manual_seed(1)) + 0.5
    want = _means(ref, x, ptq.names)
    with torch.no_grad():
        before_out = model(x)
    before = _means(model, x, ptq.names)
    assert _gap(before, want) > 1e-2  # 3-bit weights shift the means
    size = ptq.bias_correct(lambda: model(x), "network")
    assert set(size) == set(ptq.names) and all(v > 0 for v in size.values())
    assert model[0].bias is not None and model[4].bias is not None   # biases added
    after = _means(model, x, ptq.names)  # a plain forward, no hooks: the biases hold it
    assert _gap(after, want) < 1e-5
    ptq.apply(ptq.uniform(3, {}))  # apply undoes the correction
    assert model[0].bias is None and torch.equal(model[2].bias, ref[2].bias)
    with torch.no_grad():
        assert torch.equal(model(x), before_out)


def test_layer_bias_correction_removes_each_layers_own_weight_error_mean():
    _, model, ptq = _quantized()
    x = torch.randn(16, 3, 10, 10, generator=torch.Generator().manual_seed(2)) + 0.5
    ptq.bias_correct(lambda: model(x), "layer")
    # each layer: mean of its quantized output == mean of the float-weight layer on the
    # same (quantized-model) input
    inputs, outs, hs = {}, {}, []
    for n, m in ptq.layers.items():
        def hook(mod, args, y, n=n):
            inputs[n], outs[n] = args[0], y
        hs.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
        for h in hs:
            h.remove()
        for n, m in ptq.layers.items():
            linear = isinstance(m, nn.Linear)
            b0 = ptq.bias0[n]
            y = (nn.functional.linear(inputs[n], m.weight, b0) if linear
                 else m._conv_forward(inputs[n], m.weight, b0))
            got, want = channel_mean(outs[n], linear), channel_mean(y, linear)
            assert float((got - want).abs().max()) < 1e-5 * (float(want.abs().max()) + 1)
            # and the correction was needed
            yq = (nn.functional.linear(inputs[n], m.weight_quantizer(m.weight), b0) if linear
                  else m._conv_forward(inputs[n], m.weight_quantizer(m.weight), b0))
            assert float((channel_mean(yq, linear) - want).abs().max()) > 1e-4


@pytest.mark.parametrize("mode", ["network", "layer"])
def test_linear_token_mask_excludes_padding(mode):
    torch.manual_seed(3)
    ref = nn.Linear(6, 4).eval()
    model = bt.quantize_model(copy.deepcopy(ref), bits=8, act_bits=None, init="mse")
    ptq = WeightPTQ(model, (2, 8))
    ptq.apply(ptq.uniform(2, {}))
    x = torch.randn(3, 5, 6) + 1.0
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    x[mask == 0] = 50.0   # padding: large values that must not enter the means
    ptq.bias_correct(lambda: model(x), mode, mask=mask)
    with torch.no_grad():
        got = channel_mean(model(x), True, mask)
        want = channel_mean(ref(x), True, mask)
    assert float((got - want).abs().max()) < 1e-5


def test_bad_mode():
    _, model, ptq = _quantized()
    with pytest.raises(ValueError, match="mode"):
        ptq.bias_correct(lambda: model(torch.zeros(1, 3, 4, 4)), "both")
