"""The peers harness (benchmarks/peers.py, peers_worker.py): grading, timeouts, each peer.

Fast: tiny instances only. A peer whose venv (``make peer-venvs``) is absent is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bitalloc as ba

pytest.importorskip("pulp")
pytest.importorskip("scipy.optimize")

from benchmarks import peers  # noqa: E402
from benchmarks.solvers import layers  # noqa: E402


def _write(tmp_path: Path, problem: ba.Problem, name: str):
    inst, idx = peers.instance(problem)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(inst))
    return str(path), idx


def test_bops30_family_binds_both_budgets():
    p = layers(300, 0, kinds=("avg", "bops30"))
    r = ba.solve(p, method="exact")
    assert r.status == "optimal"
    one = ba.solve(layers(300, 0, kinds=("avg",)), method="exact")
    assert r.objective > one.objective * (1 + 1e-6)  # the BOPs budget changes the answer
    for value, limit in r.usage.values():
        assert value <= limit and value >= 0.99 * limit


@pytest.mark.parametrize("solver", ["pulp_cbc", "highs", "highs_default"])
def test_our_baselines_reach_the_proven_optimum(tmp_path, solver):
    p = layers(12, 1, kinds=("avg", "bops30"))
    path, idx = _write(tmp_path, p, "a")
    res = peers.run_worker(solver, [path], timeout=60)
    opt = ba.solve(p, method="exact").objective
    row = peers.grade(p, idx, res[path], opt)
    assert res[path]["claims_optimal"]
    assert row["violations"] == [] and row["flag"] == ""
    assert abs(row["excess"]) <= 1e-9


def test_grade_flags_false_optimal_and_over_budget():
    p = layers(8, 2, kinds=("avg",))
    opt = ba.solve(p, method="exact")
    _, idx = peers.instance(p)
    cp = p.compiled()
    k = p.bit_index(opt.bits)
    pos = [int(np.flatnonzero(idx[i] == k[i])[0]) for i in range(cp.n)]
    worse = list(pos)
    worse[int(np.argmax(k))] -= 1  # one group a bit lower: feasible, worse
    res = {"solver": "x", "status": "Optimal", "seconds": 0.0, "claims_optimal": True,
           "choice": worse}
    assert "FALSE-OPTIMAL" in peers.grade(p, idx, res, opt.objective)["flag"]
    over = [len(ix) - 1 for ix in idx]  # every group at 8 bits
    row = peers.grade(p, idx, dict(res, choice=over), opt.objective)
    assert "OVER BUDGET" in row["flag"] and "FALSE-OPTIMAL" not in row["flag"]
    assert row["violations"][0].startswith("average_bits +")
    row = peers.grade(p, idx, dict(res, choice=pos), opt.objective)
    assert row["flag"] == "" and row["excess"] == 0.0


def test_a_stuck_run_is_killed_and_the_worker_goes_on(tmp_path):
    big, _ = _write(tmp_path, layers(1500, 0, kinds=("avg", "bops30")), "big")
    small, _ = _write(tmp_path, layers(5, 0), "small")
    res = peers.run_worker("pulp_cbc", [big, small], timeout=0.05)
    assert res[big]["status"] == "timeout" and res[big]["choice"] is None
    assert res[small]["choice"] is not None and res[small]["claims_optimal"]


@pytest.mark.parametrize("solver", ["modelopt_lps", "mct_ilp", "autoround_dp"])
def test_each_peer_in_its_venv(tmp_path, solver):
    if peers.python_for(solver) is None:
        pytest.skip(f"{solver}: venv {peers.VENVS / peers.PEERS[solver]} absent "
                    "(make peer-venvs)")
    p = layers(10, 3, kinds=("avg",))
    path, idx = _write(tmp_path, p, "a")
    res = peers.run_worker(solver, [path], timeout=120, startup=300)
    row = peers.grade(p, idx, res[path], ba.solve(p, method="exact").objective)
    assert res[path]["choice"] is not None, res[path]["status"]
    assert row["violations"] == []
    assert abs(row["excess"]) <= 1e-9  # each is exact on 10 groups


def test_main_writes_table_json_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    code = peers.main(tmp_path, quick=True, solvers=["highs", "highs_default"], sizes_cap=40)
    assert code == 0
    md = (tmp_path / "peers.md").read_text()
    data = json.loads((tmp_path / "peers.json").read_text())
    assert (tmp_path / "peers.png").stat().st_size > 1000
    assert "| case | constraints | N | solver |" in md and "False-optimal claims:" in md
    solvers = {r["solver"] for r in data["rows"]}
    assert solvers == {"bitalloc auto", "bitalloc exact", "highs", "highs_default"}
    assert {r["case"] for r in data["rows"]} >= {"layers", "file:resnet18_fit"}
    for r in data["rows"]:
        assert r["optimum_status"] == "optimal"
        if r["solver"] == "highs":  # run to a proven optimum: never above it
            assert abs(r["excess"]) <= 1e-9 and not r["violations"]
