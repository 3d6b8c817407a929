"""QBitOpt on a MobileNetV2-style net quantized by Brevitas (``layerwise_quantize``)."""

from __future__ import annotations

import pytest
import torch
from bt_frameworks_common import (
    fake_quant_rows,
    image_batches,
    import_or_skip,
    mobilenet,
    train_with_qbitopt,
)

import bitalloc as ba
import bitalloc_torch as bt

import_or_skip("brevitas.nn", "Brevitas")
import brevitas.nn as qnn  # noqa: E402
from brevitas.graph.quantize import layerwise_quantize  # noqa: E402
from brevitas.quant import Int8WeightPerChannelFloat  # noqa: E402

from bitalloc_torch.frameworks import brevitas_qat  # noqa: E402


def _prepared(seed=0):
    return layerwise_quantize(mobilenet(seed))


def _levels(t):
    wq = t.module.quant_weight()
    per_tensor = wq.scale.numel() == 1
    rows = fake_quant_rows(wq.value)
    return rows.reshape(1, -1) if per_tensor else rows


def test_qbitopt_reallocates_brevitas_mobilenet_weights_and_inputs():
    m = _prepared()
    targets = bt.find_targets(m)
    assert len(targets) == 23 and targets[0].name == "features.0.0"
    assert all(isinstance(t.quantizer, brevitas_qat.BrevitasAdapter) for t in targets)
    batches = image_batches(6)
    qb = train_with_qbitopt(m, batches, _levels, activations=True, sample_input=batches[0][0],
                            bits=(2, 4, 8), budget=5.0)
    acts = [n for n in qb.names if n.endswith(".input_quantizer")]
    assert len(acts) == 22  # every layer input but the network input (no gradient)
    last = qb.history[-1].bits
    for t in qb.groups.act_targets:
        tq = t.module.input_quant.fused_activation_quant_proxy.tensor_quant
        assert int(tq.msb_clamp_bit_width_impl()) == last[f"{t.name}.input_quantizer"]


def _threshold(q):
    """Brevitas' float threshold: ``scale * int_threshold(bits)`` (what it learns/measures)."""
    tq = getattr(q.proxy, "fused_activation_quant_proxy", q.proxy).tensor_quant
    return q.proxy.scale() * tq.int_scaling_impl(tq.msb_clamp_bit_width_impl())


def test_bit_change_keeps_the_clipping_range():
    m = _prepared()
    m(image_batches(1)[0][0])
    for t in bt.find_targets(m)[:3]:
        for q in (t.quantizer, t.input_quantizer):
            before = _threshold(q)
            q.set_bits(3)
            assert q.bits == 3
            assert torch.allclose(_threshold(q), before, rtol=1e-5)


def test_state_dict_round_trip_restores_bits():
    m = _prepared()
    batches = image_batches(4)
    qb = train_with_qbitopt(m, batches, _levels)
    m2 = _prepared(seed=5)
    qb2 = bt.QBitOpt(m2, [ba.AverageBits(4.0)], bits=(2, 3, 4, 6, 8), every=2)
    m2.load_state_dict(m.state_dict())  # BitWidthConst is not in it ...
    qb2.load_state_dict(qb.state_dict())  # ... QBitOpt's state restores the bits
    assert qb2.bits == qb.bits
    for t, t2 in zip(qb.groups.targets, qb2.groups.targets):
        assert torch.equal(_levels(t), _levels(t2))


def test_stateful_const_bits_travel_with_the_model_and_learned_bits_are_excluded():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        qnn.QuantLinear(8, 16, bias=True, weight_quant=Int8WeightPerChannelFloat,
                        weight_bit_width_impl_type="stateful_const"),
        qnn.QuantLinear(16, 4, bias=True, weight_bit_width_impl_type="parameter"))
    with pytest.warns(UserWarning, match="Brevitas quantizer '1' cannot change"):
        (t,) = bt.find_targets(net)
    t.quantizer.set_bits(3)
    sd = net.state_dict()
    key = [k for k in sd if k.endswith("msb_clamp_bit_width_impl.bit_width")]
    assert key and float(sd[key[0]]) == 3.0
    assert max(len(torch.unique(r)) for r in _levels(t)) <= 8
    with pytest.raises(ValueError, match="^bits:"):
        t.quantizer.set_bits(17)
