"""QBitOpt on a transformer block prepared by torchao QAT (``quantize_`` + ``QATConfig``)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from bt_frameworks_common import block as make_block
from bt_frameworks_common import (
    fake_quant_rows,
    import_or_skip,
    token_batches,
    train_with_qbitopt,
)

import bitalloc as ba
import bitalloc_torch as bt

import_or_skip("torchao.quantization.qat", "torchao")
from torchao.quantization import FqnToConfig, IntxWeightOnlyConfig, quantize_  # noqa: E402
from torchao.quantization.granularity import PerGroup  # noqa: E402
from torchao.quantization.qat import (  # noqa: E402
    Float8FakeQuantizeConfig,
    IntxFakeQuantizeConfig,
    QATConfig,
    initialize_fake_quantizers,
)

from bitalloc_torch.frameworks import torchao_qat  # noqa: E402

GROUP = 16
BASE = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(GROUP))


def _prepared(seed=0, **qat):
    m = make_block(seed)
    quantize_(m, QATConfig(BASE, step="prepare") if not qat else QATConfig(**qat, step="prepare"))
    return m


def _levels(t):
    fq = t.module.weight_fake_quantizer
    return fake_quant_rows(fq(t.module.weight), GROUP)


def test_qbitopt_finds_and_reallocates_torchao_block():
    m = _prepared()
    names = [t.name for t in bt.find_targets(m)]
    assert names == ["q", "k", "v", "o", "fc1", "fc2", "head"]
    qb = train_with_qbitopt(m, token_batches(6), _levels)
    # each module got its own config object with its own dtype
    dtypes = {n: m.get_submodule(n).weight_fake_quantizer.config.dtype for n in names}
    assert {str(d) for d in dtypes.values()} == {f"torch.int{b}" for b in qb.bits.values()}

    # step="convert" with each layer at its own bits gives the fake-quant numbers
    ids = token_batches(1, seed=7)[0][0]
    m.eval()
    with torch.no_grad():
        y_fake = m(ids)
        torchao_qat.convert(m, BASE)
        y_conv = m(ids)
    assert type(m.q).__name__ == "Linear"  # swapped back and quantized
    assert torch.allclose(y_conv, y_fake, rtol=0, atol=1e-5), (y_conv - y_fake).abs().max()


def test_state_dict_round_trip_restores_bits():
    m = _prepared()
    qb = train_with_qbitopt(m, token_batches(4), _levels)
    m2 = _prepared(seed=3)
    qb2 = bt.QBitOpt(m2, [ba.AverageBits(4.0)], bits=(2, 3, 4, 6, 8), every=2)
    m2.load_state_dict(m.state_dict())
    qb2.load_state_dict(qb.state_dict())
    assert qb2.bits == qb.bits
    for t, t2 in zip(qb.groups.targets, qb2.groups.targets):
        assert torch.equal(_levels(t), _levels(t2))


def test_range_learning_scale_is_rescaled_and_activations_allocated():
    w_cfg = IntxFakeQuantizeConfig(torch.int4, group_size=GROUP, is_dynamic=False,
                                   range_learning=True)
    a_cfg = IntxFakeQuantizeConfig(torch.int8, "per_token", is_symmetric=False)
    m = _prepared(weight_config=w_cfg, activation_config=a_cfg)
    batches = token_batches(6)
    initialize_fake_quantizers(m, (batches[0][0],))
    fq = m.q.weight_fake_quantizer
    assert fq.config is m.k.weight_fake_quantizer.config  # one config object shared ...
    a = torchao_qat.TorchAOIntxAdapter(fq, m.q.weight)
    r, scale = a.quant_range().clone(), fq.scale
    a.set_bits(2)
    assert fq.scale is scale  # learned parameter rescaled in place (optimizers keep it)
    assert torch.allclose(a.quant_range(), r)
    assert m.k.weight_fake_quantizer.config.dtype == torch.int4  # ... never mutated
    assert a.min_bits == 2 and a.max_bits == 8
    with pytest.raises(ValueError, match="^bits:"):
        a.set_bits(9)
    a.set_bits(4)
    qb = train_with_qbitopt(m, batches, _levels, activations=True,
                            sample_input=batches[0][0], bits=(2, 4, 8), budget=5.0)
    acts = [n for n in qb.names if n.endswith(".input_quantizer")]
    assert len(acts) == 7 and qb.act_bits.keys() == qb.bits.keys()
    assert set(qb.history[-1].bits) == set(qb.names)


def test_float8_weight_quantizer_is_excluded_with_a_warning():
    m = make_block()
    int4 = QATConfig(weight_config=IntxFakeQuantizeConfig(torch.int4, group_size=GROUP),
                     step="prepare")
    fp8 = QATConfig(weight_config=Float8FakeQuantizeConfig(), step="prepare")
    quantize_(m, FqnToConfig({"q": int4, "k": int4, "fc1": fp8}), filter_fn=None)
    with pytest.warns(UserWarning, match="torchao quantizer 'fc1' cannot change"):
        names = [t.name for t in bt.find_targets(m)]
    assert names == ["q", "k"]


def test_dynamic_scale_follows_the_new_bits():
    m = _prepared()
    ids = token_batches(1)[0][0]
    m(ids)
    a = torchao_qat.TorchAOIntxAdapter(m.fc1.weight_fake_quantizer, m.fc1.weight)
    r = a.quant_range().clone()
    a.set_bits(6)
    assert torch.allclose(a.quant_range(), r)  # the cached scale is consistent at once
    m(ids)
    assert torch.allclose(a.quant_range(), r)  # and torchao recomputes the same range
    cfg = m.fc1.weight_fake_quantizer.config
    assert cfg.dtype == torch.int6 and dataclasses.replace(cfg).dtype == torch.int6


def test_convert_refuses_a_config_without_weight_dtype():
    m = _prepared()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="^base_config:"):
            torchao_qat.convert(m, object())
