"""LSQ fake quantizers: levels, range-keeping bit changes, STE, initialisation, errors."""

import pytest
import torch

from bitalloc_torch import LSQQuantizer

torch.manual_seed(0)


def _distinct_per_row(t: torch.Tensor) -> list[int]:
    return [len(torch.unique(r)) for r in t.reshape(t.shape[0], -1)]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("channels", [None, 6])
def test_signed_weight_levels(bits, channels):
    w = torch.randn(6, 5, 3, 3)
    q = LSQQuantizer(bits, mode="signed", channels=channels)
    wq = q(w)
    assert max(_distinct_per_row(wq)) <= 2**bits
    step = q.step.detach().reshape(-1, 1, 1, 1) if channels else q.step.detach()
    ints = wq / step
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    assert ints.min() >= -(2 ** (bits - 1)) - 1e-4 and ints.max() <= 2 ** (bits - 1) - 1 + 1e-4


@pytest.mark.parametrize("mode", ["unsigned", "asymmetric"])
def test_activation_modes(mode):
    x = torch.randn(32, 10) + (2.0 if mode == "unsigned" else 0.0)
    q = LSQQuantizer(3, mode=mode, init="minmax")
    y = q(x)
    assert len(torch.unique(y)) <= 8
    if mode == "unsigned":
        assert (y >= 0).all()
    else:  # the asymmetric grid covers negative values
        assert y.min() < 0


def test_bits_change_keeps_range_and_rescales_step():
    q = LSQQuantizer(8, mode="signed", channels=4)
    q(torch.randn(4, 20))
    r8, s8 = q.quant_range().clone(), q.step.detach().clone()
    q.bits = 3
    assert q.bits == 3
    assert torch.allclose(q.quant_range(), r8)
    assert torch.allclose(q.step.detach(), s8 * 255 / 7)
    q.set_bits(8, keep_range=False)
    assert torch.allclose(q.step.detach(), s8 * 255 / 7)  # untouched


def test_bits_before_initialisation_just_sets_the_grid():
    q = LSQQuantizer(8, mode="signed")
    q.bits = 4
    assert torch.equal(q.step.detach(), torch.tensor(1.0))
    q(torch.randn(50))
    assert q.bits == 4 and bool(q.initialized)


def test_straight_through_gradients():
    x = torch.linspace(-3, 3, 61, requires_grad=True)
    q = LSQQuantizer(4, mode="signed", init="minmax")
    q(x.detach())  # initialise on the full range
    with torch.no_grad():
        q.step.mul_(0.5)  # now |x| > ~1.5 clips
    y = q(x)
    y.sum().backward()
    lo, hi = q.q_min * q.step.item(), q.q_max * q.step.item()
    inside = (x.detach() >= lo) & (x.detach() <= hi)
    assert torch.equal(x.grad, inside.float())
    assert q.step.grad is not None and torch.isfinite(q.step.grad).all()


def test_step_gradient_is_scaled():
    x = torch.randn(100)
    q1 = LSQQuantizer(4, mode="signed", init="minmax")
    q1(x)
    q1(x).sum().backward()
    # d/ds of sum(round(clamp(x/s))*s) with STE, times g = 1/sqrt(numel*q_max)
    s = q1.step.detach()
    v = x / s
    inner = torch.clamp(v, q1.q_min, q1.q_max)
    raw = torch.where((v >= q1.q_min) & (v <= q1.q_max), inner.round() - v, inner).sum()
    g = 1.0 / (100 * q1.q_max) ** 0.5
    assert torch.allclose(q1.step.grad, raw * g, rtol=1e-4, atol=1e-6)


def test_mse_init_clips_no_worse_than_minmax():
    x = torch.randn(4, 2000)
    x[:, 0] = 40.0  # an outlier per channel
    err = {}
    for init in ("mse", "minmax"):
        q = LSQQuantizer(3, mode="signed", channels=4, init=init)
        err[init] = (q(x) - x).pow(2).sum().item()
    assert err["mse"] < err["minmax"]


def test_disabled_is_identity_and_extra_state_round_trip():
    q = LSQQuantizer(5, mode="asymmetric")
    x = torch.randn(10)
    q(x)
    q.enabled = False
    assert torch.equal(q(x), x)
    q2 = LSQQuantizer(8, mode="asymmetric")
    q2.load_state_dict(q.state_dict())
    assert q2.bits == 5 and bool(q2.initialized)
    assert torch.equal(q2.step, q.step) and torch.equal(q2.offset, q.offset)
    with pytest.raises(ValueError, match="state_dict"):
        LSQQuantizer(8, mode="unsigned").load_state_dict(q.state_dict())


@pytest.mark.parametrize("kwargs,arg", [
    ({"bits": 0}, "bits"), ({"bits": 17}, "bits"), ({"bits": 1, "mode": "signed"}, "bits"),
    ({"bits": 4.0}, "bits"), ({"bits": True}, "bits"), ({"bits": "4"}, "bits"),
    ({"mode": "sym"}, "mode"), ({"init": "max"}, "init"), ({"channels": 0}, "channels"),
])
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"^{arg}:"):
        LSQQuantizer(**kwargs)


def test_bad_bits_assignment_and_channel_mismatch():
    q = LSQQuantizer(8, mode="unsigned", channels=3)
    with pytest.raises(ValueError, match="^bits:"):
        q.bits = 20
    assert q.bits == 8
    with pytest.raises(ValueError, match="^x:"):
        q(torch.randn(4, 2))
