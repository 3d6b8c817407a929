"""benchmarks/qat.py and qat_report.py (the Fashion-MNIST QAT study): blocks, run order,
paired intervals, the report, a --quick smoke run."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from benchmarks import qat, qat_report  # noqa: E402
from bitalloc_torch.demo.data import DataUnavailable, fashion_mnist  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CFG = dict(steps=200, every=20, batch=128, long_steps=1000, long_every=50, long_batch=64)


def _fashion_missing():
    try:
        fashion_mnist()
    except DataUnavailable as e:
        return str(e)
    return None


def test_blocks_cover_the_issue_and_targets_run_first():
    spec = qat.blocks(CFG)
    assert list(spec) == ["w3", "w3a4", "long", "w2.5"]
    assert spec["w3a4"]["budget"] == (3.0, 4.0) and spec["w3"]["budget"] == (3.0, None)
    assert spec["long"]["steps"] >= 1000 and 50 <= spec["long"]["every"] <= 100
    long_arms = {(a.kind, a.fraction) for a in spec["long"]["arms"]}
    assert long_arms == {("uniform", 1.0), ("pta", 1.0), ("qbitopt", 0.25), ("qbitopt", 0.5),
                         ("qbitopt", 1.0)}
    assert any(a.over for a in spec["w2.5"]["arms"])
    tasks = [(b, s, a.to_dict()) for b in qat.BLOCKS for s in range(2) for a in spec[b]["arms"]]
    tasks.sort(key=lambda t: (qat.tier(t[0], t[2]), t[1], qat.BLOCKS.index(t[0])))
    first = [(b, a["kind"]) for b, _, a in tasks[:4]]
    assert first == [("w3", "uniform"), ("w3", "qbitopt"), ("w3a4", "uniform"),
                     ("w3a4", "qbitopt")]
    assert tasks[-1][0] == "w2.5"


def test_paired_interval_is_a_t_interval():
    a = {0: 1.0, 1: 2.0, 2: 3.0}
    b = {0: 0.0, 1: 0.0, 2: 0.0, 3: 9.0}
    m, hw, n = qat_report.paired(a, b)
    assert (m, n) == (2.0, 3) and hw == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert math.isinf(qat_report.paired({0: 1.0}, {0: 0.0})[1])


def _run(block, seed, label, kind, acc, fraction=1.0, on_change="recalibrate", over=False):
    return {"block": block, "seed": seed, "label": label, "acc": acc + seed * 0.1,
            "arm": {"kind": kind, "fraction": fraction, "on_change": on_change, "over": over},
            "use": {"weights": 3.0, "acts": 4.0} if block == "w3a4" else {"weights": 3.0},
            "budget_ok": None if over else True, "seconds": 1.0, "ranges": [], "history": []}


def test_report_targets_and_analysis_survives(tmp_path):
    runs = []
    for s in range(5):
        runs += [_run("w3", s, "uniform W3", "uniform", 88.0),
                 _run("w3", s, "QBitOpt 100%", "qbitopt", 89.0 + 0.01 * s),
                 _run("w3a4", s, "uniform W3/A4", "uniform", 87.0),
                 _run("w3a4", s, "QBitOpt 100%", "qbitopt", 87.5),
                 _run("long", s, "post-training alloc", "pta", 89.0),
                 _run("long", s, "QBitOpt 100%", "qbitopt", 89.1)]
    state = {"config": {"steps": 200}, "runs": runs}
    t = "\n".join(qat_report.targets(qat_report.by_block(state)))
    assert "QBitOpt − uniform ≥ +0.5 with the 95 % interval above 0: **MET**" in t
    assert "W3/A4, QBitOpt − uniform ≥ +1 point: **NOT MET** (+0.50" in t
    assert "QBitOpt 100% − post-training: +0.10 ± 0.00 (n=5): **reallocating wins**" in t
    (tmp_path / "qat.json").write_text(json.dumps(state))
    assert qat.main(["--report", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "qat.md").read_text()
    assert "## Weight-only, 2.5 average bits" in md and "Not run." in md
    md = md.replace("(to be written from the runs)", "KEEP ME")
    (tmp_path / "qat.md").write_text(md)
    qat.main(["--report", "--out", str(tmp_path)])
    assert "KEEP ME" in (tmp_path / "qat.md").read_text()
    assert (tmp_path / "qat.png").stat().st_size > 1000


def test_missing_dataset_skips_with_message(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FASHION_MNIST_DIR": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, "-m", "benchmarks.qat", "--quick", "--out",
                          str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SKIP" in out.stdout and "dataset-fashion-mnist" in out.stdout


@pytest.mark.slow
def test_quick_run_resumes(tmp_path):
    missing = _fashion_missing()
    if missing:
        pytest.skip(missing)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "benchmarks.qat", "--quick", "--jobs", "1", "--blocks", "w3",
           "--out", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    state = json.loads((tmp_path / "qat.json").read_text())
    assert {r["label"] for r in state["runs"]} == {
        "uniform W3", "post-training alloc", "QBitOpt 100%", "QBitOpt 50%",
        "QBitOpt 100%, keep range"}
    assert all(r["budget_ok"] and r["use"]["weights"] <= 3.0 + 1e-9 for r in state["runs"])
    assert state["range_mse"]["median"] >= 1.0
    md = (tmp_path / "qat.md").read_text()
    assert "Quick smoke configuration" in md and "| QBitOpt 100% | 1 |" in md
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert "0 runs to do (5 already" in again.stdout
