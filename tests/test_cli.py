"""The command line: output formats, exit codes 0/1/2/3/4/130/141, pipes, stdin, failures."""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# --- stdin, write failures, compare rows, pipes, demo (issue 8) -------------------------

def run_env(*args: str, stdin: str | None = None, block: tuple[str, ...] = (),
            tmp_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run the CLI; each module in ``block`` fails to import (a stand-in package raising)."""
    env = dict(os.environ)
    if block:
        for mod in block:
            pkg = tmp_path / "blocked" / mod
            pkg.mkdir(parents=True, exist_ok=True)
            (pkg / "__init__.py").write_text(f"raise ImportError('{mod} blocked by the test')\n")
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "blocked"),
                                             env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "bitalloc", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, env=env)


def test_solve_reads_stdin():
    r = run_env("solve", "-", "--method", "ilp", "--format", "json", stdin=json.dumps(PROBLEM))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bits"] == {"a": 4, "b": 4}
    r = run_env("solve", "-", stdin='{"groups": [{"size": 1, "size": 2}]}')
    assert r.returncode == 2 and 'groups[0].size: duplicate key "size"' in r.stderr


def test_out_to_missing_folder_still_prints_the_result(problem_file, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "res.json"
    r = run("solve", problem_file(PROBLEM), "--method", "ilp", "--format", "json",
            "--out", str(out))
    assert r.returncode == 2
    assert json.loads(r.stdout)["bits"] == {"a": 4, "b": 4}  # the result is not lost
    assert f"--out {out}: cannot write (No such file or directory); the result is printed " \
           f"on stdout instead" in r.stderr


@pytest.mark.parametrize("name, reason", [
    ("missing/f.png", "No such file or directory"),
    ("f.notaformat", "Format 'notaformat' is not supported"),
])
def test_pareto_plot_failure_keeps_the_table(problem_file, tmp_path, name, reason):
    r = run("pareto", problem_file(PROBLEM), "--plot", str(tmp_path / name))
    assert r.returncode == 2
    assert "pareto frontier over 'average_bits'" in r.stdout
    assert f"--plot {tmp_path / name}: cannot write the plot ({reason}" in r.stderr
    assert "the frontier is printed above" in r.stderr and "Traceback" not in r.stderr


def test_pareto_plot_without_matplotlib_exit_4_after_the_table(problem_file, tmp_path):
    r = run_env("pareto", problem_file(PROBLEM), "--plot", str(tmp_path / "f.png"),
                block=("matplotlib",), tmp_path=tmp_path)
    assert r.returncode == 4
    assert "pareto frontier" in r.stdout and "bitalloc[bench]" in r.stderr


def test_compare_marks_a_method_without_its_dependency(problem_file, tmp_path):
    r = run_env("compare", problem_file(PROBLEM), "--methods", "greedy,ilp,lagrangian",
                block=("ortools",), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()[3:6]}
    assert lines["ilp"].startswith("ilp         error: missing dependency (")
    assert "optimal" in lines["greedy"] and "optimal" in lines["lagrangian"]
    assert "best objective" in r.stdout


def test_compare_every_method_infeasible_exit_3_with_the_table(problem_file):
    data = json.loads(json.dumps(PROBLEM))
    data["constraints"][0]["max"] = 1.0
    r = run("compare", problem_file(data), "--methods", "greedy,ilp", "--format", "json")
    assert r.returncode == 3
    rows = json.loads(r.stdout)
    assert [row["status"][:18] for row in rows] == ["error: infeasible "] * 2
    assert "every method failed; the first: error: infeasible (" in r.stderr


def test_closed_stdout_exits_141_quietly(problem_file):
    p = subprocess.Popen([sys.executable, "-m", "bitalloc", "compare", problem_file(PROBLEM),
                          "--methods", "greedy"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the first write
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert err == ""


def test_pipe_into_head_has_no_traceback(tmp_path):
    groups = [{"name": f"layer{i}", "size": 10 + i % 5, "sensitivity": 1.0 + i % 3}
              for i in range(20_000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"bits": [2, 4, 8], "groups": groups,
                                "constraints": [{"type": "average_bits", "max": 4}]}))
    r = subprocess.run(f"{shlex.quote(sys.executable)} -m bitalloc solve {path} "
                       f"--method lagrangian | head -1; echo rc=${{PIPESTATUS[0]}}",
                       shell=True, executable="/bin/bash", capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.splitlines()[0].startswith("group")
    assert r.stdout.splitlines()[-1] == "rc=141" and r.stderr == ""


def test_demo_without_torch_names_the_extra(tmp_path):
    r = run_env("demo", "--quiet", block=("torch",), tmp_path=tmp_path)
    assert r.returncode == 4
    assert "bitalloc demo needs the optional dependency" in r.stderr
    assert "pip install 'bitalloc[demo]'" in r.stderr and "Traceback" not in r.stderr


def test_core_never_imports_the_adapter_statically():
    """What import-linter's "bitalloc never imports bitalloc_torch" checks, read from the AST."""
    import ast

    root = Path(__file__).parents[1] / "bitalloc"
    found = []
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{f.name}: {m}" for m in mods if m.split(".")[0] == "bitalloc_torch"]
    assert found == []


@pytest.mark.parametrize("args, msg", [
    (("--time-limit", "-1"), "--time-limit: must be a positive number of seconds, got '-1'"),
    (("--time-limit", "nan"), "--time-limit: must be a positive number of seconds, got 'nan'"),
])
def test_bad_options_exit_2(problem_file, args, msg):
    r = run("solve", problem_file(PROBLEM), *args)
    assert r.returncode == 2 and msg in r.stderr


def test_pareto_bad_max_points_exit_2(problem_file):
    r = run("pareto", problem_file(PROBLEM), "--max-points", "0")
    assert r.returncode == 2 and "--max-points: must be a positive integer, got '0'" in r.stderr


# in-process: failures that cannot be provoked from the outside


def _main(monkeypatch, capsys, argv, stdin: str | None = None):
    from bitalloc.cli import main

    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compare_goes_on_after_a_solver_error(monkeypatch, capsys, problem_file):
    import bitalloc.cli.cmd_compare as cmd

    real = cmd.solve

    def flaky(problem, method, time_limit=None):
        if method == "lagrangian":
            raise RuntimeError("MILP returned a point outside the budget\nsecond line")
        return real(problem, method=method, time_limit=time_limit)

    monkeypatch.setattr(cmd, "solve", flaky)
    code, out, _ = _main(monkeypatch, capsys, ["compare", problem_file(PROBLEM), "--methods",
                                               "greedy,lagrangian,ilp", "--format", "json"])
    assert code == 0
    rows = json.loads(out)
    assert rows[1] == {"method": "lagrangian", "status": "error: RuntimeError: MILP returned a "
                       "point outside the budget", "error": "RuntimeError: MILP returned a point "
                       "outside the budget\nsecond line"}
    assert rows[0]["status"] == rows[2]["status"] == "optimal"


def test_short_reason_is_one_short_line():
    from bitalloc.cli.cmd_compare import short_reason

    assert short_reason(ValueError("x" * 300)) == "x" * 97 + "..."
    assert short_reason(KeyError()) == "KeyError: KeyError"


def test_internal_error_exit_1_without_traceback(monkeypatch, capsys, problem_file):
    import bitalloc.cli.cmd_solve as cmd

    monkeypatch.setattr(cmd, "solve", lambda *a, **k: 1 / 0)
    code, _, err = _main(monkeypatch, capsys, ["solve", problem_file(PROBLEM)])
    assert code == 1
    assert err == ("bitalloc: internal error (a bug; please report it): ZeroDivisionError: "
                   "division by zero (BITALLOC_DEBUG=1 shows the traceback)\n")
    monkeypatch.setenv("BITALLOC_DEBUG", "1")
    code, _, err = _main(monkeypatch, capsys, ["solve", problem_file(PROBLEM)])
    assert code == 1 and "Traceback" in err


def test_non_finite_result_is_never_written_as_json(monkeypatch, capsys, problem_file):
    import bitalloc.cli.cmd_solve as cmd

    real = cmd.solve
    monkeypatch.setattr(cmd, "solve", lambda *a, **k: replace(real(*a, **k), bound=-math.inf))
    code, out, err = _main(monkeypatch, capsys, ["solve", problem_file(PROBLEM), "--format",
                                                 "json"])
    assert code == 2 and out == ""
    assert err == ("bitalloc: cannot write the result as JSON: bound: -inf is not a finite "
                   "number; standard JSON cannot hold it\n")


def test_interrupt_exit_130(monkeypatch, capsys, problem_file):
    import bitalloc.cli.cmd_solve as cmd

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "solve", stop)
    code, _, err = _main(monkeypatch, capsys, ["solve", problem_file(PROBLEM)])
    assert code == 130 and err == "bitalloc: interrupted\n"


def test_stdin_in_process_and_missing_stdin(monkeypatch, capsys):
    code, out, _ = _main(monkeypatch, capsys, ["solve", "-", "--format", "json"],
                         stdin=json.dumps(PROBLEM))
    assert code == 0 and json.loads(out)["status"] == "optimal"
    monkeypatch.setattr(sys, "stdin", None)
    code, _, err = _main(monkeypatch, capsys, ["solve", "-"])
    assert code == 2
    assert "bad input: -: there is no standard input to read the problem from" in err


def test_stdin_unreadable(monkeypatch, capsys):
    stream = io.StringIO("{}")
    stream.close()
    monkeypatch.setattr(sys, "stdin", stream)
    code, _, err = _main(monkeypatch, capsys, ["solve", "-"])
    assert code == 2 and "-: cannot read the problem from standard input" in err


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) \
    | st.integers(min_value=10 ** 399, max_value=10 ** 400)
json_any = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
FIELDS = [("bits",), ("noise",), ("ties",), ("constraints",), ("groups",), ("groups", 0),
          ("groups", 0, "size"), ("groups", 0, "name"), ("groups", 1, "errors"),
          ("groups", 1, "errors", 0), ("groups", 0, "sensitivity"), ("groups", 0, "macs"),
          ("groups", 0, "act_bits"), ("groups", 0, "allowed_bits"), ("constraints", 0),
          ("constraints", 0, "type"), ("constraints", 0, "max"), ("constraints", 0, "name"),
          ("constraints", 0, "groups"), ("description",)]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FIELDS), json_any, st.booleans())
def test_fuzz_cli_exit_codes(monkeypatch, capsys, field, value, duplicate):
    """Any JSON value at any field (NaN and Infinity included, written as such): 0/2/3/4."""
    data = json.loads(json.dumps(PROBLEM))
    node = data
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    text = json.dumps(data)  # NaN / Infinity written as the non-standard constants
    if duplicate:
        text = text.replace('"size": 100', '"size": 100, "size": 100', 1)
    code, _, err = _main(monkeypatch, capsys, ["solve", "-", "--method", "greedy"], stdin=text)
    assert code in (0, 2, 3, 4), err
    assert "Traceback" not in err


@pytest.mark.parametrize("values", ["1,x", "nan", "3,inf", ","])
def test_pareto_bad_values_exit_2(monkeypatch, capsys, problem_file, values):
    code, out, err = _main(monkeypatch, capsys, ["pareto", problem_file(PROBLEM), "--values",
                                                 values])
    assert code == 2 and out == ""
    assert f"--values: expected comma-separated finite numbers, got {values!r}" in err


def test_a_module_with_add_parser_and_func_registers(monkeypatch, capsys):
    """The registry also takes ``add_parser(sub)`` modules whose ``func(args)`` prints."""
    import types

    import bitalloc.cli.app as app

    def add_parser(sub):
        p = sub.add_parser("hello")
        p.add_argument("--fail", action="store_true")
        p.set_defaults(func=lambda a: (_ for _ in ()).throw(ValueError("hello: bad"))
                       if a.fail else print("hi") or 0)

    monkeypatch.setattr(app, "COMMANDS", (*app.COMMANDS,
                                          types.SimpleNamespace(add_parser=add_parser)))
    assert _main(monkeypatch, capsys, ["hello"])[:2] == (0, "hi\n")
    assert _main(monkeypatch, capsys, ["hello", "--fail"]) == (2, "", "bitalloc: bad input: "
                                                                       "hello: bad\n")


@pytest.mark.parametrize("constraint", [
    {"type": "average_bits", "max": 1e308},
    {"type": "linear", "max": 1, "costs": [[1e308, 1e308, 1e308], [1, 2, 3]]},
])
def test_extreme_limits_are_not_internal_errors(monkeypatch, capsys, constraint):
    data = json.loads(json.dumps(PROBLEM))
    data["constraints"] = [constraint]
    code, _, err = _main(monkeypatch, capsys, ["solve", "-"], stdin=json.dumps(data))
    assert code in (0, 2, 3), err
