"""``import bitalloc`` stays light: numpy and scipy only."""

import subprocess
import sys


def test_import_bitalloc_does_not_import_heavy_dependencies():
    code = ("import sys, bitalloc, bitalloc.cli, bitalloc.io; "
            "print(sorted(m for m in ('torch', 'cvxpy', 'ortools', 'pulp', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.strip()
    assert out == "[]"
