"""Pareto sweeps: every point feasible at its value, monotone, and exact where claimed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from reference import assert_feasible, brute_force
from strategies import layer_problem, small_problems

import bitalloc as ba


def with_limit(p: ba.Problem, name: str, value: float) -> ba.Problem:
    """The same problem with constraint ``name``'s limit replaced (the reference)."""
    cons = []
    for c in p.constraints:
        if c.name == name:
            c = type(c)(value) if not isinstance(c, ba.LinearBudget) else \
                ba.LinearBudget(c.costs, value, name=c.name)
        cons.append(c)
    return ba.Problem(errors=p.errors, sizes=p.sizes, bits=p.bits, macs=p.macs,
                      act_bits=p.act_bits, allowed={i: p.bits[p.allowed[i]].tolist()
                                                    for i in range(p.n_groups)},
                      ties=p.ties, constraints=cons)


def check_monotone(f: ba.Frontier) -> None:
    assert np.all(np.diff(f.values) > 0)
    assert np.all(np.diff(f.objective) <= 1e-12 * np.abs(f.objective[:-1]))
    assert np.all(f.usage <= f.values * (1 + 1e-12) + 1e-12)
    assert np.all(f.bound <= f.objective)


@settings(max_examples=120)
@given(small_problems())
def test_convex_frontier_vertices_are_optimal(p):
    p = ba.Problem(errors=p.errors, sizes=p.sizes, bits=p.bits, ties=p.ties,
                   allowed={i: p.bits[p.allowed[i]].tolist() for i in range(p.n_groups)},
                   constraints=p.constraints[:1])
    f = ba.pareto(p)
    check_monotone(f)
    assert f.bits.shape == (len(f), p.n_groups)
    assert f.usage[0] == pytest.approx(p.constraints[0].min_reachable(p))
    for i in range(len(f)):
        q = with_limit(p, "average_bits", float(f.values[i]))
        assert_feasible(q, f.bits[i])
        assert p.objective(f.bits[i]) == pytest.approx(f.objective[i], rel=1e-12)
        opt, _ = brute_force(q)
        assert f.objective[i] == pytest.approx(opt, rel=1e-9, abs=1e-12)


def test_values_are_exact_and_hold_other_constraints():
    p = layer_problem(400, 1, ("avg", "bops"))
    vals = [2.5, 3.0, 4.0, 5.5]
    f = ba.pareto(p, values=vals, method="exact")
    check_monotone(f)
    for v, b, o in zip(vals, f.bits, f.objective):
        q = with_limit(p, "average_bits", v)
        assert_feasible(q, b)
        assert o == pytest.approx(ba.solve(q, method="exact").objective, rel=1e-9)


def test_heuristic_sweep_is_made_monotone():
    p = layer_problem(300, 2, ("avg", "bops", "mem"))
    vals = np.linspace(2.2, 6.0, 12)
    f = ba.pareto(p, values=vals[::-1], method="greedy")  # any order in
    check_monotone(f)
    assert np.allclose(f.values, vals)
    for v, b in zip(f.values, f.bits):
        assert_feasible(with_limit(p, "average_bits", float(v)), b)


def test_sweep_over_another_constraint_with_others_held():
    p = layer_problem(300, 3, ("avg", "bops"))
    f = ba.pareto(p, constraint="bops", max_points=6)
    check_monotone(f)
    assert 2 <= len(f) <= 6
    for v, b in zip(f.values, f.bits):
        assert_feasible(with_limit(p, "bops", float(v)), b)
    assert f.usage[-1] < f.values[-1] * 1.000001  # ends where more BOPs stop helping


def test_thinning_keeps_both_ends():
    p = layer_problem(2000, 4)
    full = ba.pareto(p, max_points=10**6)
    thin = ba.pareto(p, max_points=25)
    assert len(full) == 1 + 2000 * 4 and len(thin) <= 25
    assert thin.usage[0] == full.usage[0] and thin.usage[-1] == full.usage[-1]
    assert np.isin(thin.objective, full.objective).all()
    assert thin.bits.dtype == np.uint8


def test_errors_name_the_argument():
    p = layer_problem(20, 5)
    with pytest.raises(ValueError, match=r"^constraint: unknown constraint 'bops'"):
        ba.pareto(p, constraint="bops")
    with pytest.raises(ValueError, match=r"^max_points: must be an integer >= 2"):
        ba.pareto(p, max_points=1)
    with pytest.raises(ValueError, match=r"^values: must be a non-empty list"):
        ba.pareto(p, values=[])
    with pytest.raises(ValueError, match=r"^method: unknown method"):
        ba.pareto(p, method="magic")
    with pytest.raises(ba.InfeasibleError, match=r"^values: 1 cannot be met"):
        ba.pareto(p, values=[1.0, 4.0])


def test_to_dict_and_table():
    p = ba.Problem.from_sensitivities([9.0, 1.0], [10, 10], bits=(2, 8), names=["a", "b"],
                                      constraints=[ba.AverageBits(5.0)])
    f = ba.pareto(p)
    d = f.to_dict(p.names)
    assert d["constraint"] == "average_bits" and d["points"][0]["bits"] == {"a": 2, "b": 2}
    assert "pareto frontier over 'average_bits'" in f.table()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bitalloc", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_pareto_plot_and_json(tmp_path):
    from bitalloc.io import save_problem

    path = tmp_path / "p.json"
    save_problem(layer_problem(50, 6, ("avg", "bops")), str(path))
    png = tmp_path / "front.png"
    r = run_cli("pareto", str(path), "--plot", str(png), "--max-points", "5")
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 1000 and "pareto frontier" in r.stdout
    r = run_cli("pareto", str(path), "--values", "3,4", "--format", "json")
    assert r.returncode == 0, r.stderr
    pts = json.loads(r.stdout)["points"]
    assert [pt["value"] for pt in pts] == [3.0, 4.0] and len(pts[0]["bits"]) == 50
    r = run_cli("pareto", str(path), "--constraint", "latency")
    assert r.returncode == 2 and "constraint: unknown constraint 'latency'" in r.stderr
    r = run_cli("pareto", str(path), "--values", "3,x")
    assert r.returncode == 2 and "--values" in r.stderr
    r = run_cli("pareto", str(path), "--values", "0.5")
    assert r.returncode == 3


def test_points_come_from_the_driver_and_are_certified_exactly():
    # sizes where floats round the average onto the limit: the driver's exact check
    # must hold at every swept value
    p = ba.Problem.from_sensitivities([1.0, 5.0, 2.0], [3e11 - 1, 1, 7], bits=(2, 3, 4, 8),
                                      constraints=[ba.AverageBits(4.0)])
    f = ba.pareto(p, values=[2.0, 2.0 + 6 / 3e11, 3.0, 4.0], method="greedy")
    for v, b in zip(f.values, f.bits):
        assert_feasible(p.with_limit("average_bits", float(v)), b)
    assert (f.usage <= f.values).all()
