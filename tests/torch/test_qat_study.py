"""benchmarks/qat.py (the Fashion-MNIST QAT study): arms, report, and a --quick smoke run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from benchmarks import qat  # noqa: E402
from bitalloc_torch.demo.data import DataUnavailable, fashion_mnist  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _fashion_missing() -> str | None:
    try:
        fashion_mnist()
    except DataUnavailable as e:
        return str(e)
    return None


def test_arms_cover_the_issue():
    arms = qat.arms_for([2.5, 3.0, 4.0], ablation_budget=3.0)
    labels = [(a.kind, a.budget, a.bits, a.fraction) for a in arms]
    # one run per uniform bitwidth (2-bit fits 2.5, 3-bit breaks it and is reused at 3)
    assert [x for x in labels if x[0] == "uniform"] == [
        ("uniform", 2.0, 2, 1.0), ("uniform", 3.0, 3, 1.0), ("uniform", 4.0, 4, 1.0)]
    for b in (2.5, 3.0, 4.0):
        assert ("pta", b, None, 1.0) in labels and ("qbitopt", b, None, 1.0) in labels
    assert ("qbitopt", 3.0, None, 0.25) in labels and ("qbitopt", 3.0, None, 0.5) in labels


def _fake_state():
    def run(net, seed, kind, budget, bits=None, fraction=1.0, acc=80.0, avg=None):
        from bitalloc_torch.demo.train import Arm

        a = Arm(kind, budget=budget, bits=bits, fraction=fraction)
        return {"net": net, "seed": seed, "arm": a.to_dict(), "acc": acc + seed,
                "avg_bits": avg if avg is not None else (bits or budget or 32),
                "avg_bits_all": 3.1, "bops": 1e8, "budget_ok": True, "seconds": 1.0}

    runs = []
    for s in range(3):
        runs += [run("mobilenetv2", s, "uniform", 2.0, 2, acc=70),
                 run("mobilenetv2", s, "uniform", 3.0, 3, acc=80),
                 run("mobilenetv2", s, "pta", 2.5, acc=75),
                 run("mobilenetv2", s, "qbitopt", 2.5, acc=76),
                 run("mobilenetv2", s, "pta", 3.0, acc=80.5),
                 run("mobilenetv2", s, "qbitopt", 3.0, acc=81.5)]
    runs.append(run("mobilenetv2", 0, "float", None, acc=90))
    return {"config": {"steps": {"mobilenetv2": 10}}, "float": {}, "runs": runs}


def test_report_groups_uniform_arms_and_checks_targets(tmp_path):
    state = _fake_state()
    table = qat.table_text(state)
    assert "| mobilenetv2 | 2.5 | uniform 3-bit (over budget) |" in table
    assert "| mobilenetv2 | 2.5 | uniform 2-bit | 71.00 ± 1.00 (3)" in table
    assert "| mobilenetv2 | 3 | uniform 3-bit |" in table
    t = "\n".join(qat.targets(state))
    assert "QBitOpt ≥ uniform + 1 point: MET (+1.50)" in t
    assert "within-budget uniform 2-bit arm: MET" in t
    # paired differences are exact when the seed effect is shared
    assert any("QBitOpt − uniform 3-bit = +1.50 ± 0.00" in c for c in qat.comparisons(state))
    (tmp_path / "qat.json").write_text(json.dumps(state))
    assert qat.main(["--report", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "qat.md").read_text()
    assert "## Analysis" in md and (tmp_path / "qat.png").stat().st_size > 1000
    # a hand-written analysis survives a rebuild
    md = md.replace("(to be written from the runs)", "KEEP ME")
    (tmp_path / "qat.md").write_text(md)
    qat.main(["--report", "--out", str(tmp_path)])
    assert "KEEP ME" in (tmp_path / "qat.md").read_text()
    # the per-tensor variant has its own files
    state["config"]["per_channel"] = False
    (tmp_path / "qat.pertensor.json").write_text(json.dumps(state))
    assert qat.main(["--report", "--per-tensor", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "qat.pertensor.md").read_text()
    assert "**per-tensor**" in md and "qat.pertensor.png" in md
    assert (tmp_path / "qat.pertensor.png").exists()


def test_missing_dataset_skips_with_message(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FASHION_MNIST_DIR": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, "-m", "benchmarks.qat", "--quick", "--out",
                          str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SKIP" in out.stdout and "dataset-fashion-mnist" in out.stdout


def test_quick_run(tmp_path):
    missing = _fashion_missing()
    if missing:
        pytest.skip(missing)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.qat", "--quick", "--out",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    state = json.loads((tmp_path / "qat.json").read_text())
    runs = state["runs"]
    assert {r["net"] for r in runs} == {"mobilenetv2", "plaincnn"}
    assert all(r["budget_ok"] for r in runs if r["arm"]["kind"] != "float")
    assert all(r["avg_bits"] <= 3.0 + 1e-9 for r in runs if r["arm"]["kind"] != "float")
    md = (tmp_path / "qat.md").read_text()
    assert "Quick smoke configuration" in md and "| mobilenetv2 | 3 | QBitOpt (100% realloc)" in md
    assert (tmp_path / "qat.png").exists()
