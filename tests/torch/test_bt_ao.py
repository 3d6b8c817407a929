"""QBitOpt driving a torch.ao.quantization QAT model (prepare_qat FakeQuantize modules)."""

import warnings

import pytest
import torch
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt

aoq = pytest.importorskip("torch.ao.quantization")


def _prepared(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(aoq.QuantStub(), nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                      nn.Linear(16, 3), aoq.DeQuantStub())
    m.qconfig = aoq.get_default_qat_qconfig("fbgemm")
    m.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notices
        aoq.prepare_qat(m, inplace=True)
    return m


def test_adapter_changes_quant_range_consistently():
    m = _prepared()
    m(torch.randn(8, 6))
    fq = m[1].weight_fake_quant
    a = bt.AOFakeQuantizeAdapter(fq)
    assert a.bits == 8 and a.max_bits == 8 and a.min_bits == 2
    r = a.quant_range().clone()
    a.set_bits(3)
    assert (fq.quant_min, fq.quant_max) == (-4, 3)
    obs = fq.activation_post_process
    assert (obs.quant_min, obs.quant_max) == (-4, 3)
    assert torch.allclose(a.quant_range(), r)
    assert torch.equal(fq.zero_point, torch.zeros_like(fq.zero_point))
    with pytest.raises(ValueError, match="^bits:"):
        a.set_bits(9)
    # unsigned activations with an affine zero point keep their lower clipping bound
    act = bt.AOFakeQuantizeAdapter(m[1].activation_post_process)
    fa = act.fake_quant
    lower = (fa.quant_min - fa.zero_point.float()) * fa.scale
    assert act.bits == 7  # reduce_range: [0, 127]
    act.set_bits(4)
    assert (fa.quant_min, fa.quant_max) == (0, 15)
    new_lower = (fa.quant_min - fa.zero_point.float()) * fa.scale
    assert torch.allclose(new_lower, lower, atol=fa.scale.item())
    with pytest.raises(ValueError, match="^fake_quant:"):
        bt.AOFakeQuantizeAdapter(nn.ReLU())


def test_qbitopt_drives_prepare_qat_model():
    m = _prepared()
    names = [t.name for t in bt.find_targets(m)]
    assert names == ["1", "3", "5"]
    # 3.5 is between two candidates: the optimum mixes bitwidths
    qb = bt.QBitOpt(m, [ba.AverageBits(3.5)], bits=(2, 3, 4, 6, 8), every=2)
    assert qb.usage()["average_bits"][0] <= 3.5
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x, y = torch.randn(8, 6, generator=g), torch.randn(8, 3, generator=g)
        nn.functional.mse_loss(m(x), y).backward()
        rec = qb.step()
        opt.step()
        opt.zero_grad()
        if rec is None:
            continue
        assert qb.usage()["average_bits"][0] <= 3.5
        for name, b in qb.bits.items():
            layer = m[int(name)]
            fq = layer.weight_fake_quant
            assert fq.quant_max - fq.quant_min + 1 == 2**b
            wq = fq(layer.weight).detach()
            assert max(len(torch.unique(row)) for row in wq) <= 2**b
    assert [r.step for r in qb.history] == [2, 4, 6]
    assert any(len(set(r.bits.values())) > 1 for r in qb.history)  # mixed precision happened
    # the ao model's checkpoint has no integer range: QBitOpt's state restores it
    sd_model, sd_qb = m.state_dict(), qb.state_dict()
    m2 = _prepared()
    qb2 = bt.QBitOpt(m2, [ba.AverageBits(4.0)], bits=(2, 3, 4, 6, 8), every=2)
    m2.load_state_dict(sd_model)
    qb2.load_state_dict(sd_qb)
    assert qb2.bits == qb.bits
    for name in qb.bits:
        fq, fq2 = m[int(name)].weight_fake_quant, m2[int(name)].weight_fake_quant
        assert torch.equal(fq2.scale, fq.scale)


def test_param_groups_on_ao_model():
    m = _prepared()
    weights, qparams = bt.param_groups(m)
    assert len(weights) == 6 and qparams == []  # the default fake quant has buffers only
