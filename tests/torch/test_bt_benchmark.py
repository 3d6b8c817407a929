"""The QAT-overhead benchmark stays runnable (a tiny --quick run; no timing assertions)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_qat_overhead_quick_run():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.qat_overhead", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "P4, in-run overhead" in out.stdout and "| qbitopt |" in out.stdout
