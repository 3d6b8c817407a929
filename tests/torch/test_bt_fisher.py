"""Per-sample empirical Fisher (fit_sensitivity(per_sample=True), QBitOpt "fit_per_sample")
against a hand-computed reference."""

import pytest
import torch
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt


def _model():
    torch.manual_seed(0)
    return bt.quantize_model(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)),
                             act_bits=None)


def test_per_sample_and_mini_batch_match_references():
    m = _model()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g))
               for _ in range(2)]
    loss = nn.MSELoss()
    m(batches[0][0])  # initialise the ranges
    ps = bt.fit_sensitivity(m, loss, batches, per_sample=True)
    mb = bt.fit_sensitivity(m, loss, batches)
    for name, layer in bt.quantized_layers(m).items():
        r2 = layer.weight_quantizer.quant_range().double().square().mean()
        per, mean = [], []
        for x, y in batches:
            grads = [torch.autograd.grad(loss(m(x[i:i + 1]), y[i:i + 1]), layer.weight)[0]
                     for i in range(len(x))]
            per += [gr.double().pow(2).sum() for gr in grads]
            mean.append(torch.autograd.grad(loss(m(x), y), layer.weight)[0].double()
                        .pow(2).sum())
        assert ps[name] == pytest.approx(float(sum(per) / len(per) * r2), rel=1e-5)
        assert mb[name] == pytest.approx(float(sum(mean) / len(mean) * r2), rel=1e-5)


def test_qbitopt_fit_per_sample_reallocates_within_budget():
    m = _model()
    g = torch.Generator().manual_seed(2)
    data = [(torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g))]
    with pytest.raises(ValueError, match="loss_fn"):
        bt.QBitOpt(m, [ba.AverageBits(3.0)], sensitivity="fit_per_sample")
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=(2, 4, 8), every=2,
                    sensitivity="fit_per_sample", loss_fn=nn.MSELoss(), hessian_batches=data)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    for _ in range(2):
        nn.MSELoss()(m(data[0][0]), data[0][1]).backward()
        qb.step()
        opt.step()
        opt.zero_grad()
    assert [r.step for r in qb.history] == [2] and m.training
    assert qb.usage()["average_bits"][0] <= 3.0 * (1 + 1e-12)
