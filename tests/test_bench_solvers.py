"""Smoke test of ``python -m benchmarks.solvers`` (a cut-down ``--quick`` run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pulp")
pytest.importorskip("matplotlib")

from benchmarks import solvers as bench  # noqa: E402


def test_quick_run_writes_table_json_and_plot(tmp_path: Path):
    out = tmp_path / "res"
    code = bench.main(["--quick", "--sizes", "10,200", "--methods",
                       "lagrangian,exact,auto,greedy,pulp_cbc", "--reps", "2",
                       "--no-targets", "--out", str(out)])
    assert code == 0
    md = (out / "solvers.md").read_text()
    data = json.loads((out / "solvers.json").read_text())
    assert (out / "solvers.png").stat().st_size > 1000
    assert "| case | constraints | N | method |" in md
    rows = data["rows"]
    assert {r["method"] for r in rows} == {"lagrangian", "exact", "auto", "greedy", "pulp_cbc"}
    assert {r["n"] for r in rows} == {10, 200}
    assert all(r["feasible"] for r in rows)
    by = {(r["constraints"], r["n"], r["method"]): r for r in rows}
    for (kinds, n, m), r in by.items():
        if m == "exact":  # the exact answer matches what CBC calls optimal
            assert r["objective"] <= by[(kinds, n, "pulp_cbc")]["objective"] * (1 + 1e-9)
            assert r["status"].startswith("optimal")
        if r["bound"] is not None:
            assert r["bound"] <= r["objective"] * (1 + 1e-12)


def test_layers_family_matches_the_issue():
    p = bench.layers(1000, 0)
    assert p.bits.tolist() == [2, 3, 4, 6, 8]
    assert np.array_equal(p.sizes, np.round(p.sizes)) and p.sizes.min() >= 1e3
    ratio = p.errors[:, 1:] / p.errors[:, :-1]
    assert np.allclose(ratio, 4.0 ** -np.diff(p.bits))


def test_targets_are_graded_from_rows():
    rows = [{"case": "layers", "constraints": "avg", "n": 5000, "method": m, "seconds": s,
             "objective": 1.0, "status": st, "gap": 0.0}
            for m, s, st in (("pulp_cbc", 6.0, "says optimal"), ("auto", 0.1, "optimal(exact)"),
                             ("exact", 0.3, "optimal(exact)"))]
    t = bench.targets(rows, None)
    assert t["P1:auto"]["pass"] and not t["P1:exact"]["pass"]  # 6.0 / 0.3 < 30


def test_p2_only_updates_the_p2_line_and_keeps_the_rows(tmp_path: Path):
    out = tmp_path / "res"
    assert bench.main(["--quick", "--sizes", "10", "--methods", "lagrangian", "--reps", "1",
                       "--no-targets", "--out", str(out)]) == 0
    rows = json.loads((out / "solvers.json").read_text())["rows"]
    assert bench.main(["--p2-only", "--p2-n", "3000", "--reps", "1", "--out", str(out)]) == 0
    data = json.loads((out / "solvers.json").read_text())
    assert data["rows"] == rows
    p2 = data["targets"]["P2"]
    assert p2["n"] == 3000 and 0 <= p2["gap"] < 1e-3 and 0 < p2["peak_ratio"]
    assert isinstance(p2["pass"], bool)
    for key in ("construct_ratio", "cold_ratio", "auto_cold_ratio", "solver_ratio"):
        assert p2[key] > 0, key
    md = (out / "solvers.md").read_text()
    assert "rerun alone (`--p2-only`" in md and "**P2**" in md
    assert "construction + first lagrangian solve <= 5 min-passes" in md


def test_an_over_budget_cbc_answer_is_no_yardstick():
    rows = [{"case": "layers", "constraints": "avg", "n": 5000, "method": m, "seconds": s,
             "objective": o, "status": st, "gap": 0.0, "feasible": f}
            for m, s, o, st, f in (("pulp_cbc", 6.0, 0.9, "says optimal", False),
                                   ("auto", 0.1, 1.0, "optimal(exact)", True))]
    t = bench.targets(rows, None)
    assert t["P1:auto"]["pass"] and t["P1:auto"]["cbc_feasible"] is False
    rows[0]["feasible"] = True  # a feasible CBC answer below ours: ours is not optimal
    assert not bench.targets(rows, None)["P1:auto"]["pass"]
