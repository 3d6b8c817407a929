"""The command line in a subprocess: output formats and exit codes 0 / 2 / 3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "resnet18_fit.json"
PROBLEM = {"bits": [2, 4, 8], "noise": "uniform",
           "groups": [{"name": "a", "size": 100, "sensitivity": 5.0},
                      {"name": "b", "size": 300, "errors": [0.5, 0.1, 0.001]}],
           "constraints": [{"type": "average_bits", "max": 4.0}]}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bitalloc", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def problem_file(tmp_path):
    def write(data) -> str:
        path = tmp_path / "p.json"
        path.write_text(json.dumps(data))
        return str(path)
    return write


def test_solve_json(problem_file):
    r = run("solve", problem_file(PROBLEM), "--method", "ilp", "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "optimal" and out["method"] == "ilp"
    assert out["bits"] == {"a": 4, "b": 4}
    assert out["usage"]["average_bits"] == {"value": 4.0, "max": 4.0}
    assert out["bound"] <= out["objective"]


def test_solve_table_and_out_file(problem_file, tmp_path):
    out = tmp_path / "res.txt"
    r = run("solve", problem_file(PROBLEM), "--method", "greedy", "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "group" in text and "average_bits: 4 of max 4" in text


def test_infeasible_exit_3(problem_file):
    data = json.loads(json.dumps(PROBLEM))
    data["constraints"][0]["max"] = 1.0
    r = run("solve", problem_file(data))
    assert r.returncode == 3
    assert "average_bits: max 1, smallest reachable 2" in r.stderr


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["groups"][0].update(size=-1), "groups[0].size"),
    (lambda d: d["groups"][1].update(errors=[1, 2]), "groups[1].errors"),
    (lambda d: d["constraints"][0].update(type="avg"), "constraints[0].type"),
])
def test_bad_input_exit_2(problem_file, mutate, field):
    data = json.loads(json.dumps(PROBLEM))
    mutate(data)
    r = run("solve", problem_file(data))
    assert r.returncode == 2
    assert field in r.stderr and r.stdout == ""


def test_bad_method_and_missing_file_exit_2(problem_file, tmp_path):
    r = run("solve", problem_file(PROBLEM), "--method", "magic")
    assert r.returncode == 2 and "method: unknown method 'magic'" in r.stderr
    r = run("solve", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "cannot read problem file" in r.stderr
    r = run("compare", problem_file(PROBLEM), "--methods", "greedy,magic")
    assert r.returncode == 2 and "--methods: unknown method 'magic'" in r.stderr


def test_compare_table_on_example():
    r = run("compare", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    for m in ("greedy", "fractional", "ilp"):
        assert m in r.stdout
    assert "NO" not in r.stdout.split("best objective")[0]


def test_compare_json(problem_file):
    r = run("compare", problem_file(PROBLEM), "--format", "json", "--methods", "greedy,ilp")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["method"] for row in rows] == ["greedy", "ilp"]
    assert all(row["feasible"] for row in rows)


def test_console_script_installed():
    exe = Path(sys.executable).with_name("bitalloc")
    assert exe.exists()
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "solve" in r.stdout
