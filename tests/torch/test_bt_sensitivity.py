"""FIT and Hutchinson sensitivities against hand computations."""

import numpy as np
import pytest
import torch
from torch import nn

import bitalloc_torch as bt
from bitalloc_torch.sensitivity import FITAccumulator


def _tiny():
    torch.manual_seed(0)
    m = bt.quantize_model(nn.Linear(3, 2, bias=False), bits=8, act_bits=8, init="minmax")
    m.input_quantizer.enabled = False
    return m


def test_fit_equals_hand_computation_on_linear_model():
    """loss = mean_n 0.5 * ||W_q x_n - t_n||**2; dL/dW = mean_n (W_q x_n - t_n) x_n^T."""
    m = _tiny()
    rng = np.random.default_rng(0)
    batches = [(torch.tensor(rng.normal(size=(5, 3)), dtype=torch.float32),
                torch.tensor(rng.normal(size=(5, 2)), dtype=torch.float32)) for _ in range(3)]
    m(batches[0][0])  # initialise the step (min-max: nothing is clipped)

    def loss_fn(out, t):
        return 0.5 * (out - t).pow(2).sum(dim=1).mean()

    s = bt.fit_sensitivity(m, loss_fn, batches)
    wq = m.weight_quantizer(m.weight).detach().double().numpy()
    ef = []
    for x, t in batches:
        x, t = x.double().numpy(), t.double().numpy()
        grad = (x @ wq.T - t).T @ x / len(x)
        ef.append((grad**2).sum())
    step = m.weight_quantizer.step.detach().double().numpy()
    ranges = np.abs(step) * 255.0
    expect = np.mean(ef) * np.mean(ranges**2)
    assert s.keys() == {"<root>"}
    assert s["<root>"] == pytest.approx(expect, rel=1e-5)
    assert m.weight.grad is None  # post-training FIT leaves .grad alone


def test_accumulator_reads_grad_running_mean_and_ema():
    m = _tiny()
    x = torch.randn(4, 3)
    vals = []
    acc = FITAccumulator(bt.find_targets(m))
    ema = FITAccumulator(bt.find_targets(m), ema=0.5)
    for k in range(3):
        m.zero_grad()
        (m(x) * (k + 1)).sum().backward()
        vals.append(m.weight.grad.double().pow(2).sum().item())
        acc.accumulate()
        ema.accumulate()
    assert acc.count == 3
    assert acc.fisher().item() == pytest.approx(np.mean(vals), rel=1e-6)
    e = 0.0
    for v in vals:
        e = 0.5 * e + 0.5 * v
    assert ema.fisher().item() == pytest.approx(e / (1 - 0.5**3), rel=1e-6)
    acc.reset()
    assert acc.count == 0 and acc.fisher().item() == 0.0


def test_missing_gradients_count_as_zero():
    m = bt.quantize_model(nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)}))
    acc = FITAccumulator(bt.find_targets(m))
    m["a"](torch.randn(3, 2)).sum().backward()
    acc.accumulate()
    f = acc.fisher()
    assert f[0] > 0 and f[1] == 0


def test_activation_fit_matches_input_gradients():
    torch.manual_seed(0)
    m = bt.quantize_model(nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)), init="minmax")
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    m(x)
    s = bt.fit_sensitivity(m, nn.MSELoss(), [(x, y)], activations=True)
    # the network input needs no gradient: no statistic for "0.input_quantizer"
    assert set(s) == {"0", "2", "2.input_quantizer"}
    h = torch.tanh(m[0](x)).detach().requires_grad_(True)
    nn.MSELoss()(m[2](h), y).backward()
    r2 = m[2].input_quantizer.quant_range().double() ** 2
    expect = h.grad.double().pow(2).sum() * r2
    assert s["2.input_quantizer"] == pytest.approx(expect.item(), rel=1e-5)


def test_hutchinson_on_quadratic_model_is_the_exact_trace():
    """loss = 0.5*||W x||**2: H = I_out (x) x x^T. With x = (c, 0, 0) H is diagonal, so
    every Rademacher probe gives the trace exactly: Tr = out * c**2."""
    m = bt.quantize_model(nn.Linear(3, 2, bias=False), init="minmax")
    m.input_quantizer.enabled = False
    x = torch.tensor([[1.5, 0.0, 0.0]])
    m(x)

    def loss(out, t):
        return 0.5 * out.pow(2).sum()

    tr = bt.hutchinson_trace(m, loss, [(x, None)], samples=3, seed=1)
    assert tr.shape == (1,)
    assert tr.item() == pytest.approx(2 * 1.5**2, rel=1e-6)
    # a general x: unbiased, so the mean of many probes is close to 2 * ||x||**2
    x = torch.tensor([[1.0, -2.0, 0.5]])
    many = bt.hutchinson_trace(m, loss, [(x, None)] * 50, samples=8)
    assert many.item() == pytest.approx(2 * x.pow(2).sum().item(), rel=0.15)
    s = bt.hutchinson_sensitivity(m, loss, [(x, None)])
    r2 = m.weight_quantizer.quant_range().double().pow(2).mean().item()
    assert list(s) == ["<root>"] and s["<root>"] >= 0
    assert s["<root>"] == pytest.approx(max(bt.hutchinson_trace(m, loss, [(x, None)]).item(), 0)
                                        * r2, rel=1e-6)


def test_bad_arguments():
    m = _tiny()
    with pytest.raises(ValueError, match="^batches:"):
        bt.fit_sensitivity(m, nn.MSELoss(), [])
    with pytest.raises(ValueError, match="^batches:"):
        bt.fit_sensitivity(m, nn.MSELoss(), [torch.randn(2, 3)])
    with pytest.raises(ValueError, match="^model:"):
        bt.fit_sensitivity(nn.Linear(2, 2), nn.MSELoss(), [(torch.randn(1, 2), None)])
    with pytest.raises(ValueError, match="^samples:"):
        bt.hutchinson_trace(m, nn.MSELoss(), [], samples=0)
    with pytest.raises(ValueError, match="^ema:"):
        FITAccumulator(bt.find_targets(m), ema=1.5)
    with pytest.raises(ValueError, match="^targets:"):
        FITAccumulator([])


def test_accumulate_with_higher_order_gradients_builds_no_graph():
    m = _tiny()
    x = torch.randn(4, 3)
    (g,) = torch.autograd.grad(m(x).pow(2).sum(), [m.weight], create_graph=True)
    assert g.requires_grad
    acc = FITAccumulator(bt.find_targets(m))
    acc.accumulate([g])
    assert not acc.fisher().requires_grad
    assert acc.fisher().item() == pytest.approx(g.detach().double().pow(2).sum().item(), rel=1e-6)
