"""quantize_model, calibrate, param_groups."""

import copy

import pytest
import torch
from torch import nn

import bitalloc_torch as bt


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),   # depthwise
        nn.Identity(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


def test_wraps_linear_conv_and_depthwise_in_place():
    m = _net()
    w0 = m[0].weight
    out = bt.quantize_model(m, bits=6, act_bits=7)
    assert out is m
    layers = bt.quantized_layers(m)
    assert list(layers) == ["0", "2", "6"]
    for layer in layers.values():
        assert layer.weight_quantizer.bits == 6 and layer.input_quantizer.bits == 7
    assert m[0].weight is w0 and isinstance(m[0], nn.Conv2d)
    assert isinstance(m[2], bt.QuantConv2d) and isinstance(m[6], bt.QuantLinear)
    assert m[0].weight_quantizer.channels == 8
    y = m(torch.randn(2, 3, 4, 4))
    assert y.shape == (2, 10)
    assert bt.quantize_model(m) is m and m[0].weight_quantizer.bits == 6  # idempotent


def test_conv1d_and_root_layer_and_deepcopy():
    c = bt.quantize_model(nn.Conv1d(2, 3, 3), bits=4)
    assert isinstance(c, bt.QuantConv1d)
    assert c(torch.randn(1, 2, 9)).shape == (1, 3, 7)
    assert [t.name for t in bt.find_targets(c)] == ["<root>"]
    c2 = copy.deepcopy(c)
    assert c2.weight_quantizer.bits == 4 and c2.weight is not c.weight


def test_fake_quantized_forward_matches_manual():
    torch.manual_seed(1)
    m = bt.quantize_model(nn.Linear(5, 3), bits=4, act_bits=8)
    x = torch.randn(7, 5)
    y = m(x)
    expect = torch.nn.functional.linear(m.input_quantizer(x), m.weight_quantizer(m.weight), m.bias)
    assert torch.allclose(y, expect)
    assert max(len(torch.unique(r)) for r in m.weight_quantizer(m.weight)) <= 16


def test_skip_by_name_and_predicate():
    m = bt.quantize_model(_net(), skip=["0", "6"])
    assert list(bt.quantized_layers(m)) == ["2"]
    assert not hasattr(m[0], "weight_quantizer")
    m = bt.quantize_model(_net(), skip=lambda name, mod: isinstance(mod, nn.Linear))
    assert list(bt.quantized_layers(m)) == ["0", "2"]
    with pytest.raises(ValueError, match="^skip: unknown module names"):
        bt.quantize_model(_net(), skip=["nope"])


def test_per_tensor_and_weight_only():
    m = bt.quantize_model(nn.Linear(4, 4), per_channel=False, act_bits=None)
    assert m.weight_quantizer.channels is None
    assert m.input_quantizer.enabled is False
    x = torch.randn(2, 4)
    assert torch.allclose(m(x), nn.functional.linear(x, m.weight_quantizer(m.weight), m.bias))


def test_multihead_attention_out_proj_is_left_alone():
    mha = nn.MultiheadAttention(8, 2)
    with pytest.warns(RuntimeWarning, match="out_proj"):
        bt.quantize_model(mha)
    assert bt.quantized_layers(mha) == {}


@pytest.mark.parametrize("kwargs,arg", [
    ({"bits": 1}, "bits"), ({"act_bits": 0}, "act_bits"), ({"act_mode": "signed"}, "act_mode"),
    ({"init": "x"}, "init"), ({"skip": 3}, "skip"),
])
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"^{arg}:"):
        bt.quantize_model(nn.Linear(2, 2), **kwargs)


def test_param_groups_split_and_existing_optimizer_keeps_working():
    m = _net()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    bt.quantize_model(m)
    weights, qparams = bt.param_groups(m)
    assert len(weights) == len(list(_net().parameters()))
    # one step per weight quantizer, step + offset per (asymmetric) input quantizer
    assert len(qparams) == 3 * 3
    assert not {id(p) for p in weights} & {id(p) for p in qparams}
    before = m[6].weight.detach().clone()
    m(torch.randn(2, 3, 4, 4)).sum().backward()
    opt.step()
    assert not torch.equal(before, m[6].weight)


def test_calibrate_initialises_from_batches_and_restores_mode():
    m = bt.quantize_model(_net(), init="minmax")
    m.train()
    batches = [torch.randn(4, 3, 4, 4) * (i + 1) for i in range(3)]
    bt.calibrate(m, batches)
    assert m.training
    iq = m[0].input_quantizer
    assert bool(iq.initialized)
    lo = min(b.min() for b in batches)
    hi = max(b.max() for b in batches)
    assert torch.allclose(iq.offset.detach(), lo)
    assert torch.allclose(iq.quant_range(), hi - lo, rtol=1e-5)
    # pairs and dicts are accepted; mse gives a range no larger than the observed one
    bt.calibrate(m, [(b, None) for b in batches], method="mse")
    assert iq.quant_range() <= hi - lo + 1e-5


def test_calibrate_bad_input():
    m = bt.quantize_model(_net())
    with pytest.raises(ValueError, match="^batches:"):
        bt.calibrate(m, [])
    with pytest.raises(ValueError, match="^batches:"):
        bt.calibrate(m, [3])
    with pytest.raises(ValueError, match="^method:"):
        bt.calibrate(m, [torch.randn(1, 3, 4, 4)], method="max")


def test_apply_bits_by_name_keeps_range():
    m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
                          init="minmax")
    m(torch.randn(16, 4))
    r0 = m[0].weight_quantizer.quant_range().clone()
    bt.apply_bits(m, {"0": 3, "2": 5})
    assert m[0].weight_quantizer.bits == 3 and m[2].weight_quantizer.bits == 5
    assert torch.allclose(m[0].weight_quantizer.quant_range(), r0, rtol=1e-5)
    with pytest.raises(ValueError, match=r"^bits: 'nope' is not a quantized layer"):
        bt.apply_bits(m, {"nope": 4})
