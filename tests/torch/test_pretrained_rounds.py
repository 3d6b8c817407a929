"""Re-estimation rounds of ``benchmarks.pretrained_rounds`` on a toy classifier."""

import copy
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bitalloc_torch as bt  # noqa: E402
from benchmarks.pretrained_arms import BITS, delta_problem  # noqa: E402
from benchmarks.pretrained_ptq import WeightPTQ, error_tables  # noqa: E402
from benchmarks.pretrained_rounds import effnet_fit, reestimate, traces  # noqa: E402


def _setup():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                        nn.Linear(32, 5)).eval()
    model = bt.quantize_model(copy.deepcopy(ref), bits=8, act_bits=None, init="mse")
    ptq = WeightPTQ(model, BITS)
    x = torch.randn(24, 8, generator=torch.Generator().manual_seed(1))
    return ref, model, ptq, x


def test_traces_divide_by_the_range_at_the_applied_bits():
    _, model, ptq, x = _setup()
    alloc = {"0": 3, "2": 5, "4": 8}
    ptq.apply(alloc)
    with torch.no_grad():
        logits = model(x)
    s = effnet_fit(model, x, logits, seed=0)
    tr = traces(s, ptq, alloc)
    for n, layer in ptq.layers.items():
        r2 = float(layer.weight_quantizer.quant_range().double().square().mean())
        assert tr[n] == pytest.approx(s[n] / r2, rel=1e-6)
        assert tr[n] > 0


def test_reestimate_rounds_resolve_the_same_budget_at_the_quantized_point():
    ref, model, ptq, x = _setup()
    names = ptq.names
    with torch.no_grad():
        t = ref(x).log_softmax(1)
    ptq.apply(ptq.uniform(8, {}))
    trace0 = traces(effnet_fit(model, x, t, seed=0), ptq, ptq.uniform(8, {}))

    def problem_for(tr):
        return delta_problem(error_tables(tr, ptq, names)["FIT-δ"], names, ptq.sizes, 3.0)

    def fit_here():
        with torch.no_grad():
            logits = model(x)
        return effnet_fit(model, x, logits, seed=0)

    def evaluate():
        with torch.no_grad():
            lp = model(x).log_softmax(1)
        return {"kl": float((t.exp() * (t - lp)).sum(1).mean())}

    import bitalloc as ba
    start = ba.solve(problem_for(trace0), method="ilp").bits_by_name
    steps = reestimate(ptq, start, {}, fit_here, problem_for, evaluate, rounds=2,
                       log=lambda *a: None)
    assert [s["round"] for s in steps] == [1, 2]
    prev = start
    for s in steps:
        assert s["solver"]["status"] == "optimal" and s["average_bits"] <= 3.0 + 1e-9
        assert s["changed"] == sorted(n for n in names if s["bits"][n] != prev[n])
        assert s["metrics"]["kl"] >= 0
        prev = s["bits"]
    # the last round's allocation is what is applied afterwards
    assert {n: m.weight_quantizer.bits for n, m in ptq.layers.items()} == steps[-1]["bits"]
    # round 1's traces were measured at the start allocation, not at 8 bits
    assert steps[0]["fit_trace"] != pytest.approx(trace0, rel=1e-3)

