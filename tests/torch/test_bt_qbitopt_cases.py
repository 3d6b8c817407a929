"""QBitOpt edge cases (issue 8) and its issue-9 options: separate weight/activation budgets,
ranges that follow a bit change, the default method, the one batch convention."""

import pathlib
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt

BITS = (2, 3, 4, 6, 8)


def _mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return bt.quantize_model(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16),
                                           nn.ReLU(), nn.Linear(16, 3))).to(dtype)


def _train(model, qb, steps, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    recs = []
    for _ in range(steps):
        x = torch.randn(8, 6, generator=g).to(dtype)
        loss = model(x).pow(2).mean()
        loss.backward()
        rec = qb.step()
        if rec is not None:
            recs.append(rec)
        opt.step()
        opt.zero_grad()
    return recs


def test_default_method_is_auto():
    qb = bt.QBitOpt(_mlp(), [ba.AverageBits(4.0)], bits=BITS)
    assert qb.method == "auto"


def test_double_model_steps_and_reallocates():
    m = _mlp(dtype=torch.float64)
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2, activations=True,
                    sample_input=torch.zeros(1, 6, dtype=torch.float64),
                    act_constraints=[ba.AverageBits(4.0, name="act_bits")])
    recs = _train(m, qb, 4, torch.float64)
    assert [r.step for r in recs] == [2, 4]
    assert all(v <= lim * (1 + 1e-12) for v, lim in qb.usage().values())


def test_state_dict_with_bits_over_budget_is_refused():
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2)
    _train(m, qb, 2)
    sd = qb.state_dict()
    sd["bits"] = {n: 8 for n in sd["bits"]}
    before = qb.bits
    with pytest.raises(ValueError, match="state_dict: bits .* within the budget"):
        qb.load_state_dict(sd)
    sd["bits"] = {n: 5 for n in sd["bits"]}  # 5 is not a candidate
    with pytest.raises(ValueError, match="state_dict"):
        qb.load_state_dict(sd)
    assert qb.bits == before


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.b.weight = self.a.weight  # one parameter, two layers
        self.c = nn.Linear(8, 2)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def test_shared_parameter_is_one_group_counted_once_and_one_bitwidth():
    torch.manual_seed(0)
    m = bt.quantize_model(_Tied())
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2)
    assert qb.names == ["a", "c"]
    assert qb.groups.sizes.tolist() == [64.0, 16.0]
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(4):
        m(torch.randn(4, 8, generator=g)).pow(2).mean().backward()
        qb.step()
        opt.step()
        opt.zero_grad()
        assert m.a.weight_quantizer.bits == m.b.weight_quantizer.bits == qb.bits["b"]
    assert qb.usage()["average_bits"][0] <= 3.0 * (1 + 1e-12)


def test_frozen_layer_is_left_out_with_a_warning_not_pushed_to_the_lowest_bits():
    m = _mlp()
    m[2].weight.requires_grad_(False)
    with pytest.warns(RuntimeWarning, match="requires_grad=False.*'2'"):
        qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2)
    assert "2" not in qb.names and m[2].weight_quantizer.bits == 8
    _train(m, qb, 4)
    assert m[2].weight_quantizer.bits == 8


def test_act_constraints_need_activations_and_unique_names():
    m = _mlp()
    with pytest.raises(ValueError, match="act_constraints: needs activations=True"):
        bt.QBitOpt(m, [ba.AverageBits(3.0)], act_constraints=[ba.AverageBits(4.0, name="a")])
    with pytest.raises(ValueError, match="act_constraints: constraint names must be unique"):
        bt.QBitOpt(m, [ba.AverageBits(3.0)], activations=True, sample_input=torch.zeros(1, 6),
                   act_constraints=[ba.AverageBits(4.0)])
    with pytest.raises(ValueError, match="on_change"):
        bt.QBitOpt(m, [ba.AverageBits(3.0)], on_change="rescale")


def _avg(qb, names):
    sizes = dict(zip(qb.names, qb.groups.sizes))
    cur = dict(zip(qb.names, qb.groups.current_bits()))
    return sum(sizes[n] * cur[n] for n in names) / sum(sizes[n] for n in names)


@pytest.mark.parametrize("batch", [1, 64])
def test_separate_weight_and_activation_budgets_hold_and_sizes_are_per_sample(batch):
    m = _mlp()
    qb = bt.QBitOpt(m, [ba.AverageBits(3.0)], bits=BITS, every=2, activations=True,
                    sample_input=torch.zeros(batch, 6),
                    act_constraints=[ba.AverageBits(4.0, name="act_bits")])
    w, a = qb.groups.weight_names, qb.groups.act_names
    assert a == ["2.input_quantizer", "4.input_quantizer"]
    assert qb.groups.sizes[len(w):].tolist() == [16.0, 16.0]  # per sample, any batch
    for _ in range(3):
        _train(m, qb, 2)
        assert _avg(qb, w) <= 3.0 + 1e-12 and _avg(qb, a) <= 4.0 + 1e-12
        use = qb.usage()
        assert set(use) == {"average_bits", "act_bits"}
        assert use["average_bits"][0] == pytest.approx(_avg(qb, w))
        assert use["act_bits"][0] == pytest.approx(_avg(qb, a))


def test_unreachable_activation_budget_is_infeasible_naming_it():
    with pytest.raises(ba.InfeasibleError, match="act_bits"):
        bt.QBitOpt(_mlp(), [ba.AverageBits(3.0)], bits=BITS, activations=True,
                   sample_input=torch.zeros(1, 6),
                   act_constraints=[ba.AverageBits(1.5, name="act_bits")])


def test_recalibrate_on_change_gives_the_fresh_range_keep_keeps_it():
    for mode in ("recalibrate", "keep"):
        m = _mlp()
        qb = bt.QBitOpt(m, [ba.AverageBits(3.5)], bits=BITS, every=2, on_change=mode)
        layers = bt.quantized_layers(m)
        g = torch.Generator().manual_seed(1)
        opt = torch.optim.SGD(m.parameters(), lr=0.05)
        checked = 0
        for _ in range(4):
            m(torch.randn(8, 6, generator=g)).pow(2).mean().backward()
            before = {n: (layers[n].weight_quantizer.bits,
                          layers[n].weight_quantizer.quant_range().clone()) for n in qb.names}
            rec = qb.step()
            for n in qb.names if rec is not None else []:
                q = layers[n].weight_quantizer
                if q.bits == before[n][0]:
                    continue
                checked += 1
                if mode == "recalibrate":
                    fresh = bt.LSQQuantizer(q.bits, mode="signed", channels=q.channels)
                    fresh.initialize_from(layers[n].weight.detach())
                    assert torch.allclose(q.step, fresh.step)
                else:
                    assert torch.allclose(q.quant_range(), before[n][1], rtol=1e-5)
                assert rec.ranges[n] == pytest.approx(float(q.quant_range().mean()))
            opt.step()
            opt.zero_grad()
        assert checked > 0


def test_activation_range_is_reestimated_from_the_next_batch():
    q = bt.LSQQuantizer(4, mode="asymmetric")
    q(torch.randn(100))
    q.reset_range()
    x = torch.randn(100) * 10
    q(x)
    fresh = bt.LSQQuantizer(4, mode="asymmetric")
    fresh.initialize_from(x)
    assert torch.allclose(q.step, fresh.step) and bool(q.initialized)


def test_one_batch_convention_tuple_first_item_is_the_input():
    torch.manual_seed(0)
    m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    x = torch.randn(3, 4)
    assert bt.layer_macs(m, (x, torch.zeros(3))) == bt.layer_macs(m, x) == {"0": 96, "2": 48}
    g = bt.model_groups(m, activations=True, sample_input=(x, torch.zeros(3)))
    assert g.sizes.tolist() == [32.0, 16.0, 8.0]
    with pytest.raises(ValueError, match="sample_input"):
        bt.layer_macs(m, ())


def test_adapter_imports_no_private_names_across_modules():
    root = pathlib.Path(bt.__file__).parent
    bad = []
    for f in root.rglob("*.py"):
        for line in f.read_text().splitlines():
            if re.match(r"\s*from \.+[\w.]* import .*\b_[a-z]", line):
                bad.append(f"{f.name}: {line.strip()}")
    assert not bad, bad


def test_scoped_constraint_usage_equals_subset_average():
    m = _mlp()
    g = bt.model_groups(m, activations=True, sample_input=torch.zeros(2, 6))
    p = g.problem(np.ones(len(g.names)), BITS, [ba.AverageBits(3.0)], "uniform",
                  [ba.AverageBits(4.0, name="act_bits")])
    bits = np.array([2, 3, 4, 8, 2])
    c_w, c_a = p.constraints
    sizes = g.sizes
    n_w = len(g.weight_names)
    want_w = (sizes[:n_w] * bits[:n_w]).sum() / sizes[:n_w].sum()
    want_a = (sizes[n_w:] * bits[n_w:]).sum() / sizes[n_w:].sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert c_w.value(p, bits) == pytest.approx(want_w)
        assert c_a.value(p, bits) == pytest.approx(want_a)


def test_fit_range_tensor_uses_max_minus_min_of_weights_and_activations():
    torch.manual_seed(0)
    m = bt.quantize_model(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    targets = bt.find_targets(m)
    acc = bt.FITAccumulator(targets, targets[1:], ranges="tensor")
    x = torch.randn(5, 3)
    h = torch.relu(m[0](x)).detach()
    m(x).pow(2).sum().backward()
    acc.accumulate()
    s = acc.sensitivity()
    f = acc.fisher()
    for i, t in enumerate(targets):
        w = t.weight.detach()
        assert s[i] == pytest.approx(float(f[i] * (w.max() - w.min()) ** 2))
    # the activation's range: max - min of the (float) input that layer 2 saw
    assert s[2] == pytest.approx(float(f[2] * (h.max() - h.min()) ** 2), rel=1e-4)
    acc.remove()
    with pytest.raises(ValueError, match="ranges"):
        bt.FITAccumulator(targets, ranges="clip")
    with pytest.raises(ValueError, match="fit_range"):
        bt.QBitOpt(m, [ba.AverageBits(4.0)], fit_range="clip")
