"""fold_batchnorm: outputs kept, Sequential and torch.fx pairs, what is left alone."""

import warnings

import pytest
import torch
from torch import nn

import bitalloc_torch as bt
from bitalloc_torch.demo.models import TinyMobileNetV2


def _randomize_bn(model):
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


def test_mobilenetv2_eval_outputs_equal_and_no_bn_left():
    torch.manual_seed(0)
    m = TinyMobileNetV2()
    _randomize_bn(m)
    m.eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        y = m(x)
    n_bn = sum(isinstance(k, nn.BatchNorm2d) for k in m.modules())
    assert bt.fold_batchnorm(m) is m
    assert n_bn > 10 and not any(isinstance(k, nn.BatchNorm2d) for k in m.modules())
    with torch.no_grad():
        assert (m(x) - y).abs().max() <= 1e-5 * max(1.0, y.abs().max())
    # names are kept: the quantized layers are the same convolutions
    assert "features.0.0" in bt.quantized_layers(bt.quantize_model(m))


class _Attr(nn.Module):
    """Conv -> BN through attributes (found by torch.fx), a Linear -> BN1d (left alone)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 4)
        self.bn1 = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn1(self.fc(self.bn(self.conv(x)).mean((2, 3))))


def test_fx_pairs_folded_and_bn_after_linear_left_alone():
    torch.manual_seed(0)
    m = _Attr()
    _randomize_bn(m)
    m.bn1.running_mean.uniform_(-1, 1)
    m.eval()
    x = torch.randn(4, 3, 8, 8)
    y = m(x)
    bt.fold_batchnorm(m)
    assert isinstance(m.bn, nn.Identity) and isinstance(m.bn1, nn.BatchNorm1d)
    assert torch.allclose(m(x), y, atol=1e-5)


class _Branch(nn.Module):
    """The conv output also feeds the residual: folding BN would change it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_nothing_to_fold_warns_and_returns_unchanged():
    for m in (nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), _Branch(),
              nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU(), nn.BatchNorm2d(2))):
        before = {k: v.clone() for k, v in m.state_dict().items()}
        with pytest.warns(UserWarning, match="nothing|no BatchNorm"):
            assert bt.fold_batchnorm(m) is m
        after = m.state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_conv_without_bias_gains_one_and_double_precision_kept():
    m = nn.Sequential(nn.Conv1d(2, 3, 3, bias=False), nn.BatchNorm1d(3)).double().eval()
    m[1].running_mean.fill_(0.3)
    x = torch.randn(2, 2, 9, dtype=torch.float64)
    y = m(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bt.fold_batchnorm(m)
    assert m[0].bias is not None and m[0].bias.dtype == torch.float64
    assert torch.allclose(m(x), y, atol=1e-12)
