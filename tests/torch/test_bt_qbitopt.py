"""QBitOpt inside a plain training loop: budget, levels, schedule, NaN, resume, options."""

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt

BITS = (2, 3, 4, 6, 8)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return bt.quantize_model(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16),
                                           nn.ReLU(), nn.Linear(16, 3)))


def _cnn(seed=0):
    torch.manual_seed(seed)
    return bt.quantize_model(nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.ReLU(), nn.Conv2d(8, 16, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 16, 4)))


def _batches(shape, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, *shape, generator=g), torch.randn(8, 3 if len(shape) == 1 else 4,
                                                              generator=g)) for _ in range(n)]


def _train(model, qb, batches, check=None, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for x, y in batches:
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        rec = qb.step()
        opt.step()
        opt.zero_grad()
        if check is not None:
            check(rec)
    return opt


def _within(qb):
    return all(v <= m * (1 + 1e-12) for v, m in qb.usage().values())


@pytest.mark.parametrize("constraints,needs_sample", [
    ([ba.AverageBits(3.0)], False),
    ([ba.MemoryBudget(600.0)], False),
    ([ba.BOPsBudget(2.0e5)], True),
    ([ba.AverageBits(4.5), ba.BOPsBudget(2.4e5)], True),
])
def test_budget_holds_from_step_zero_and_after_every_reallocation(constraints, needs_sample):
    m = _cnn()
    sample = torch.zeros(1, 2, 4, 4) if needs_sample else None
    qb = bt.QBitOpt(m, constraints, bits=BITS, every=3, sample_input=sample)
    assert _within(qb)  # before any step
    assert qb.initial is not None and qb.initial.step == 0
    seen = []

    def check(rec):
        assert _within(qb)
        if rec is not None:
            seen.append(rec)
            assert rec.bits == qb.bits
            assert rec.bound <= rec.objective * (1 + 1e-9)

    _train(m, qb, _batches((2, 4, 4), 9), check)
    assert [r.step for r in seen] == [3, 6, 9] and qb.history == seen


@pytest.mark.parametrize("on_change", ["recalibrate", "keep"])
def test_at_most_2_pow_b_levels_per_channel_after_reallocation(on_change):
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(3.5)], bits=BITS, every=2, on_change=on_change)
    changed = set()

    def check(rec):
        if rec is None:
            return
        for name, layer in bt.quantized_layers(m).items():
            b = qb.bits[name]
            changed.add(b)
            wq = layer.weight_quantizer(layer.weight).detach()
            assert max(len(torch.unique(row)) for row in wq) <= 2**b
            xq = layer.input_quantizer(torch.randn(64, layer.in_features))
            assert len(torch.unique(xq)) <= 2**8

    _train(m, qb, _batches((6,), 6), check)
    assert len(qb.history) == 3 and len(changed) > 1


def test_sensitive_layer_gets_more_bits():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return 30.0 * self.a(x) + 0.1 * self.b(x)

    torch.manual_seed(0)
    m = bt.quantize_model(Two())
    qb = bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=BITS, every=3)
    assert qb.bits == {"a": 4, "b": 4}
    for _ in range(3):
        m(torch.randn(16, 4)).pow(2).mean().backward()
        qb.step()
        m.zero_grad()
    assert qb.bits["a"] > qb.bits["b"]
    assert qb.usage()["average_bits"][0] <= 4.0


def test_current_bits_kept_when_they_fit_and_infeasible_budget_raises():
    m = bt.quantize_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), bits=4)
    qb = bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=BITS)
    assert qb.initial is None and qb.bits == {"0": 4, "1": 4}
    with pytest.raises(ba.InfeasibleError):
        bt.QBitOpt(m, [ba.AverageBits(1.5)], bits=BITS)


def test_schedule_warmup_every_and_freeze():
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=BITS, every=3, warmup=2, freeze_after=6)
    _train(m, qb, _batches((6,), 10))
    assert [r.step for r in qb.history] == [2, 5]
    assert qb.step_count == 10
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=BITS, every=2, freeze_after=0.5,
                    total_steps=10)
    _train(m, qb, _batches((6,), 10))
    assert [r.step for r in qb.history] == [2, 4]


def test_nan_statistics_skip_reallocation_keep_bits_and_warn():
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2)
    before = qb.bits
    x = torch.randn(4, 6)
    m(x).sum().backward()
    qb.step()
    m.zero_grad()
    m(x).sum().backward()
    m[2].weight.grad[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="non-finite statistics"):
        assert qb.step() is None
    m.zero_grad()
    assert qb.bits == before and qb.skipped == [2] and qb.history == []
    for _ in range(2):  # statistics were reset: the next reallocation works
        m(x).sum().backward()
        qb.step()
        m.zero_grad()
    assert [r.step for r in qb.history] == [4]
    m(x).sum().backward()
    m[0].weight.grad.fill_(float("inf"))
    qb.step()
    with pytest.warns(RuntimeWarning, match="non-finite"):
        qb.step()


def test_no_gradients_skip_with_warning():
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=1)
    with pytest.warns(RuntimeWarning, match="no gradient statistics"):
        qb.step()
    assert qb.skipped == [1]


def _resumable_run(batches, snapshot_at=None, resume=None):
    m = _cnn(seed=3)
    qb = bt.QBitOpt(m, [ba.AverageBits(3.5)], bits=BITS, every=4)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    start = 0
    if resume is not None:
        m.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        qb.load_state_dict(resume["qb"])
        start = qb.step_count
    snap = None
    for t in range(start, len(batches)):
        x, y = batches[t]
        nn.functional.mse_loss(m(x), y).backward()
        qb.step()
        opt.step()
        opt.zero_grad()
        if snapshot_at == t + 1:  # through torch.save / torch.load (weights_only)
            buf = io.BytesIO()
            torch.save({"model": m.state_dict(), "opt": opt.state_dict(),
                        "qb": qb.state_dict()}, buf)
            buf.seek(0)
            snap = torch.load(buf, weights_only=True)
    return qb, snap


def test_state_round_trip_resume_makes_the_same_decisions():
    batches = _batches((2, 4, 4), 14, seed=5)
    full, snap = _resumable_run(batches, snapshot_at=6)
    resumed, _ = _resumable_run(batches, resume=snap)
    assert [r.step for r in full.history] == [4, 8, 12]
    assert [r.bits for r in resumed.history] == [r.bits for r in full.history]
    for a, b in zip(resumed.history, full.history):
        assert a.objective == pytest.approx(b.objective, rel=1e-6)
    assert resumed.bits == full.bits and resumed.step_count == full.step_count
    # mid-window statistics are part of the state
    assert snap["qb"]["stats"]["count"] == 2


def test_load_state_dict_rejects_other_models():
    qb = bt.QBitOpt(_mlp(), [ba.AverageBits(3.0)], bits=BITS)
    other = bt.QBitOpt(_cnn(), [ba.AverageBits(3.0)], bits=BITS)
    with pytest.raises(ValueError, match="^state_dict: groups"):
        qb.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="^state_dict:"):
        qb.load_state_dict({"x": 1})


def test_exclude_keeps_layers_out_of_the_allocation():
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2, exclude=["0", "4"])
    assert list(qb.bits) == ["2"] and qb.bits["2"] == 3
    _train(m, qb, _batches((6,), 4))
    assert m[0].weight_quantizer.bits == 8 and m[4].weight_quantizer.bits == 8


def test_activation_groups_are_allocated():
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=BITS, every=2, activations=True,
                    sample_input=torch.zeros(1, 6))
    assert qb.names == ["0", "2", "4", "2.input_quantizer", "4.input_quantizer"]
    _train(m, qb, _batches((6,), 4))
    rec = qb.history[-1]
    assert set(rec.bits) == set(qb.names)
    assert rec.bits["2.input_quantizer"] == m[2].input_quantizer.bits == qb.act_bits["2"]
    assert m[0].input_quantizer.bits == 8  # network input: not allocated
    assert _within(qb)
    qb.remove()


def test_ema_hessian_and_other_solvers():
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2, ema=0.9)
    _train(m, qb, _batches((6,), 4))
    assert len(qb.history) == 2 and qb.state_dict()["stats"]["count"] == 4  # no reset
    m = _mlp()
    data = _batches((6,), 2, seed=9)
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2, sensitivity="hessian",
                    loss_fn=nn.functional.mse_loss, hessian_batches=data)
    _train(m, qb, _batches((6,), 4))
    assert len(qb.history) == 2 and _within(qb)
    assert qb.state_dict()["stats"] is None
    for method in ("fractional", "ilp"):
        m = _mlp()
        qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2, method=method)
        _train(m, qb, _batches((6,), 2))
        assert qb.history[-1].method == method and _within(qb)


@pytest.mark.parametrize("kwargs,arg", [
    ({"every": 0}, "every"), ({"every": 2.5}, "every"), ({"warmup": 0}, "warmup"),
    ({"freeze_after": -1}, "freeze_after"), ({"freeze_after": 1.5}, "freeze_after"),
    ({"freeze_after": 0.5}, "total_steps"), ({"method": "magic"}, "method"),
    ({"sensitivity": "grad"}, "sensitivity"), ({"sensitivity": "hessian"}, "loss_fn"),
    ({"sensitivity": "hessian", "loss_fn": nn.MSELoss()}, "hessian_batches"),
    ({"ema": 2.0}, "ema"), ({"exclude": ["zz"]}, "exclude"), ({"bits": (4, 2)}, "bits"),
    ({"noise": "pink"}, "noise"), ({"hessian_samples": 0}, "hessian_samples"),
])
def test_bad_arguments(kwargs, arg):
    args = {"bits": BITS, **kwargs}
    with pytest.raises(ValueError, match=f"^{arg}"):
        bt.QBitOpt(_mlp(), [ba.AverageBits(3.0)], **args)


def test_bad_model_and_constraints():
    with pytest.raises(ValueError, match="^model: has no quantized layers"):
        bt.QBitOpt(nn.Linear(2, 2), [ba.AverageBits(3.0)])
    with pytest.raises(ValueError, match="^constraints"):
        bt.QBitOpt(_mlp(), ["avg"])


def test_contract_types():
    m = _mlp()
    qb = bt.QBitOpt(m, constraints=[ba.AverageBits(4.0)], bits=(2, 4, 8), every=1,
                    method="greedy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m(torch.randn(4, 6)).sum().backward()
        rec = qb.step()
    assert isinstance(rec, bt.Reallocation)
    assert all(isinstance(v, int) for v in qb.bits.values())
    d = rec.to_dict()
    assert {"step", "bits", "objective", "bound", "seconds"} <= set(d)
    assert np.isfinite(d["objective"]) and "QBitOpt(" in repr(qb)


def test_fraction_one_never_reallocates_at_the_final_step():


    torch.manual_seed(0)
    m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    qb = bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=(2, 4, 8), every=5, freeze_after=1.0,
                    total_steps=10)
    for _ in range(10):
        m(torch.randn(8, 4)).pow(2).mean().backward()
        qb.step()
        m.zero_grad()
    assert [r.step for r in qb.history] == [5]
