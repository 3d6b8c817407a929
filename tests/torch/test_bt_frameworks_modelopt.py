"""QBitOpt on models fake-quantized by NVIDIA ModelOpt (``mtq.quantize``)."""

from __future__ import annotations

import copy

import pytest
import torch
from bt_frameworks_common import (
    block,
    fake_quant_rows,
    image_batches,
    import_or_skip,
    mobilenet,
    token_batches,
    train_with_qbitopt,
)

import bitalloc as ba
import bitalloc_torch as bt

mtq = import_or_skip("modelopt.torch.quantization", "ModelOpt")

from bitalloc_torch.frameworks import modelopt_qat  # noqa: E402


def _prepared(make, batches, seed=0, cfg=None):
    model = make(seed)
    cfg = copy.deepcopy(cfg or mtq.INT8_DEFAULT_CFG)

    def forward_loop(m):
        for x, _ in batches[:2]:
            m(x)

    return mtq.quantize(model, cfg, forward_loop=forward_loop)


def _levels(t):
    return fake_quant_rows(t.module.weight_quantizer(t.module.weight))


def test_qbitopt_reallocates_modelopt_mobilenet_weights_and_inputs():
    batches = image_batches(6)
    m = _prepared(mobilenet, batches)
    targets = bt.find_targets(m)
    assert len(targets) == 23 and all(t.input_quantizer is not None for t in targets)
    qb = train_with_qbitopt(m, batches, _levels, activations=True, sample_input=batches[0][0],
                            bits=(2, 4, 8), budget=5.0)
    assert len(qb.act_bits) == 23 and len(qb.groups.act_targets) == 22  # input: no gradient
    last = qb.history[-1].bits
    for t in qb.groups.act_targets:
        assert t.module.input_quantizer.num_bits == last[f"{t.name}.input_quantizer"]


def test_transformer_block_and_state_dict_round_trip():
    batches = token_batches(4)
    m = _prepared(block, batches)
    names = [t.name for t in bt.find_targets(m)]
    assert names == ["q", "k", "v", "o", "fc1", "fc2", "head"]
    qb = train_with_qbitopt(m, batches, _levels)
    m2 = _prepared(block, batches, seed=4)
    qb2 = bt.QBitOpt(m2, [ba.AverageBits(4.0)], bits=(2, 3, 4, 6, 8), every=2)
    m2.load_state_dict(m.state_dict())  # weights and amax; num_bits is not in it
    qb2.load_state_dict(qb.state_dict())
    assert qb2.bits == qb.bits
    for t, t2 in zip(qb.groups.targets, qb2.groups.targets):
        assert torch.equal(_levels(t), _levels(t2))


def test_bit_change_keeps_amax_and_fp8_is_excluded():
    batches = token_batches(2)
    m = _prepared(block, batches)
    a = bt.find_targets(m)[0].quantizer
    r = a.quant_range().clone()
    a.set_bits(3)
    assert torch.allclose(a.quant_range(), r) and a.quantizer.num_bits == 3
    with pytest.raises(ValueError, match="^bits:"):
        a.set_bits(12)
    m8 = _prepared(block, batches, cfg=mtq.FP8_DEFAULT_CFG)
    with pytest.warns(UserWarning, match="ModelOpt quantizer 'q' cannot change"):
        assert bt.find_targets(m8) == []
    assert isinstance(a, modelopt_qat.ModelOptQuantizerAdapter)
