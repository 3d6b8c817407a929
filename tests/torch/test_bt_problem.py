"""Problems from models: group names, sizes, MACs, act bits, activation groups."""

import pytest
import torch
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt


def _cnn():
    torch.manual_seed(0)
    return bt.quantize_model(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, stride=2), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10)), act_bits=6)


def test_layer_macs_linear_conv_depthwise():
    m = _cnn()
    macs = bt.layer_macs(m, torch.zeros(1, 3, 8, 8))
    assert macs == {"0": 8 * 4 * 4 * 3 * 9, "2": 8 * 4 * 4 * 9, "5": 10 * 128}
    c1 = bt.quantize_model(nn.Sequential(nn.Conv1d(2, 4, 3)))
    assert bt.layer_macs(c1, torch.zeros(2, 2, 10)) == {"0": 2 * 4 * 8 * 2 * 3}


def test_macs_pass_has_no_side_effects():
    m = _cnn()
    m.train()
    bt.layer_macs(m, torch.zeros(1, 3, 8, 8))
    assert m.training
    assert not any(bool(q.initialized) for q in m.modules() if isinstance(q, bt.LSQQuantizer))
    assert all(q.enabled for q in m.modules() if isinstance(q, bt.LSQQuantizer))


def test_problem_from_model_names_sizes_macs_act_bits():
    m = _cnn()
    sens = {"0": 1.0, "2": 0.5, "5": 0.1}
    p = bt.problem_from_model(m, sens, [ba.AverageBits(4.0), ba.BOPsBudget(1e6)],
                              bits=(2, 4, 8), sample_input=torch.zeros(1, 3, 8, 8))
    assert p.names == ("0", "2", "5")
    assert p.sizes.tolist() == [8 * 3 * 9, 8 * 9, 1280]
    assert p.act_bits.tolist() == [6, 6, 6]
    assert p.macs.tolist() == [3456, 1152, 1280]
    r = ba.solve(p)
    assert r.usage["bops"][0] <= 1e6 and r.usage["average_bits"][0] <= 4.0


def test_exclude_and_activation_groups():
    m = _cnn()
    sens = {"2": 1.0, "5": 1.0, "2.input_quantizer": 2.0, "5.input_quantizer": 1.0}
    p = bt.problem_from_model(m, sens, [ba.AverageBits(5.0)], exclude=["0"], activations=True,
                              sample_input=torch.zeros(2, 3, 8, 8))
    assert p.names == ("2", "5", "2.input_quantizer", "5.input_quantizer")
    assert p.sizes.tolist() == [72, 1280, 8 * 4 * 4, 128]  # activations: per sample
    # the first layer's input (the network input) is no group: it has no FIT statistics
    m2 = _cnn()
    g = bt.model_groups(m2, activations=True, sample_input=torch.zeros(1, 3, 8, 8))
    assert "0.input_quantizer" not in g.names and "2.input_quantizer" in g.names


def test_allowed_follows_quantizer_limits():
    m = _cnn()
    p = bt.problem_from_model(m, {"0": 1.0, "2": 1.0, "5": 1.0}, [ba.AverageBits(4.0)],
                              bits=(1, 2, 4, 8))
    assert not p.allowed[:, 0].any()  # signed weights need 2 bits
    with pytest.raises(ValueError, match="^bits: no candidate"):
        bt.problem_from_model(m, {"0": 1.0, "2": 1.0, "5": 1.0}, [ba.AverageBits(4.0)],
                              bits=(1,))


def test_errors():
    m = _cnn()
    sens = {"0": 1.0, "2": 1.0, "5": 1.0}
    with pytest.raises(ValueError, match="^sample_input: needed for BOPsBudget"):
        bt.problem_from_model(m, sens, [ba.BOPsBudget(1e6)])
    with pytest.raises(ValueError, match="^sample_input: needed for activations"):
        bt.problem_from_model(m, sens, [ba.AverageBits(4)], activations=True)
    with pytest.raises(ValueError, match="^constraints: BOPsBudget is bilinear"):
        bt.problem_from_model(m, sens, [ba.BOPsBudget(1e6)], activations=True,
                              sample_input=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"^sensitivity: missing groups \['5'\]"):
        bt.problem_from_model(m, {"0": 1.0, "2": 1.0}, [ba.AverageBits(4)])
    with pytest.raises(ValueError, match="^sensitivity:"):
        bt.problem_from_model(m, [1.0, 1.0, 1.0], [ba.AverageBits(4)])
    with pytest.raises(ValueError, match="^exclude: unknown module names"):
        bt.problem_from_model(m, sens, [ba.AverageBits(4)], exclude=["9"])
    with pytest.raises(ValueError, match="^exclude: excludes every"):
        bt.problem_from_model(m, sens, [ba.AverageBits(4)], exclude=lambda n, mod: True)
    with pytest.raises(ValueError, match="^model: has no quantized layers"):
        bt.problem_from_model(nn.Linear(2, 2), {}, [ba.AverageBits(4)])
    with pytest.raises(ValueError, match="^constraints:"):
        bt.problem_from_model(m, sens, 4.0)
    with pytest.raises(ValueError, match="^sensitivity: contains NaN"):
        bt.problem_from_model(m, {"0": float("nan"), "2": 1.0, "5": 1.0}, [ba.AverageBits(4)])
