"""Problem files: round trip, and every malformed field reported by its JSON path."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import bitalloc as ba
from bitalloc.io import load_problem, problem_from_dict, problem_to_dict, save_problem

GOOD = {
    "bits": [2, 4, 8], "noise": "uniform",
    "groups": [
        {"name": "conv1", "size": 864, "sensitivity": 0.31, "macs": 1000, "act_bits": 8,
         "allowed_bits": [8]},
        {"name": "conv2", "size": 4000, "sensitivity": 0.2, "macs": 5000},
        {"name": "down", "size": 400, "sensitivity": 0.05, "macs": 500},
        {"name": "fc", "size": 5120, "errors": [0.9, 0.4, 0.2], "macs": 5120},
    ],
    "ties": [["conv2", "down"]],
    "constraints": [{"type": "average_bits", "max": 4.0},
                    {"type": "memory", "max_bytes": 6000},
                    {"type": "bops", "max": 3e5},
                    {"type": "linear", "max": 30, "name": "latency",
                     "costs": [[1, 2, 4], [1, 2, 4], [1, 2, 4], [3, 6, 12]]}],
}


def test_reads_every_field():
    p = problem_from_dict(GOOD)
    assert p.names == ("conv1", "conv2", "down", "fc")
    assert p.errors[0, 0] == pytest.approx(0.31 / 9)
    assert p.errors[3].tolist() == [0.9, 0.4, 0.2]
    assert p.allowed[0].tolist() == [False, False, True]
    assert p.ties == [[1, 2]]
    assert [c.name for c in p.constraints] == ["average_bits", "memory", "bops", "latency"]
    r = ba.solve(p, method="ilp")
    assert r.bits[0] == 8 and r.bits[1] == r.bits[2]


def test_round_trip(tmp_path):
    p = problem_from_dict(GOOD)
    path = tmp_path / "p.json"
    save_problem(p, path, description="round trip")
    q = load_problem(path)
    assert q.names == p.names and np.array_equal(q.errors, p.errors)
    assert np.array_equal(q.allowed, p.allowed) and q.ties == p.ties
    assert ba.solve(q, method="ilp").objective == pytest.approx(ba.solve(p, method="ilp").objective)
    assert json.loads(path.read_text())["description"] == "round trip"


def _set(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@pytest.mark.parametrize("path, value, match", [
    (("groups", 3, "size"), -1, r"^groups\[3\]\.size: must be a positive number, got -1"),
    (("groups", 3, "size"), 0, r"^groups\[3\]\.size: must be a positive number, got 0"),
    (("groups", 3, "size"), KeyError, r"^groups\[3\]\.size: required"),
    (("groups", 1, "sensitivity"), "high", r"^groups\[1\]\.sensitivity: must be a non-negative"),
    (("groups", 1, "sensitivity"), -0.1, r"^groups\[1\]\.sensitivity: must be a non-negative"),
    (("groups", 1, "errors"), [1, 2, 3], r"^groups\[1\]: give exactly one of"),
    (("groups", 3, "errors"), [1, 2], r"^groups\[3\]\.errors: has 2 values, expected one per bit"),
    (("groups", 3, "errors"), [1, None, 2], r"^groups\[3\]\.errors\[1\]: must be a non-negative"),
    (("groups", 0, "allowed_bits"), [3], r"^groups\[0\]\.allowed_bits\[0\]: 3 is not among bits"),
    (("groups", 0, "allowed_bits"), [], r"^groups\[0\]\.allowed_bits: must list at least one"),
    (("groups", 0, "allowed_bits"), 8, r"^groups\[0\]\.allowed_bits: must be a list"),
    (("groups", 0, "name"), "", r"^groups\[0\]\.name: must be a non-empty string"),
    (("groups", 1, "name"), "conv1", r"^groups\[1\]\.name: duplicate group name \"conv1\""),
    (("groups", 0, "sensitivty"), 1.0, r"^groups\[0\]\.sensitivty: unknown field"),
    (("groups", 2, "macs"), KeyError, r"^groups\[2\]\.macs: missing \(other groups give macs\)"),
    (("groups", 2, "act_bits"), 0, r"^groups\[2\]\.act_bits: must be a positive number"),
    (("groups", 2), "conv", r"^groups\[2\]: must be an object"),
    (("groups",), [], r"^groups: must not be empty"),
    (("groups",), {}, r"^groups: must be a list"),
    (("bits",), [4, 2, 8], r"^bits: must be sorted ascending"),
    (("bits", 1), 4.5, r"^bits\[1\]: must be a positive integer"),
    (("noise",), "gauss", r"^noise: unknown noise model \"gauss\""),
    (("ties", 0, 1), "nope", r"^ties\[0\]\[1\]: unknown group \"nope\""),
    (("ties", 0), "conv2", r"^ties\[0\]: must be a list"),
    (("constraints", 0, "type"), "avg", r"^constraints\[0\]\.type: unknown constraint type"),
    (("constraints", 0, "max"), 0, r"^constraints\[0\]\.max: must be a positive number"),
    (("constraints", 0, "max"), KeyError, r"^constraints\[0\]\.max: required"),
    (("constraints", 1, "max"), 3, r"^constraints\[1\]\.max: unknown field"),
    (("constraints", 0, "name"), 7, r"^constraints\[0\]\.name: must be a non-empty string"),
    (("constraints", 3, "max"), "x", r"^constraints\[3\]\.max: must be a finite number"),
    (("constraints", 3, "costs"), [[1, 2, 4]], r"^constraints\[3\]\.costs: has 1 rows"),
    (("constraints", 3, "costs", 1), [1, 2], r"^constraints\[3\]\.costs\[1\]: has 2 values"),
    (("constraints", 3, "costs", 1, 2), "x",
     r"^constraints\[3\]\.costs\[1\]\[2\]: must be a finite"),
    (("constraints", 2), 5, r"^constraints\[2\]: must be an object"),
    (("bogus",), 1, r"^bogus: unknown field"),
])
def test_malformed_field_is_named(path, value, match):
    data = copy.deepcopy(GOOD)
    _set(data, path, value)
    with pytest.raises(ValueError, match=match):
        problem_from_dict(data)


def test_bops_without_macs_named():
    data = copy.deepcopy(GOOD)
    for g in data["groups"]:
        del g["macs"]
    with pytest.raises(ValueError, match=r"^groups\[0\]\.macs: required by constraints\[2\]"):
        problem_from_dict(data)


def test_top_level_must_be_object():
    with pytest.raises(ValueError, match=r"^\$: must be an object"):
        problem_from_dict([1, 2])


def test_invalid_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"bits": [2, 4],\n "groups": [}')
    with pytest.raises(ValueError, match=r"^\$: invalid JSON at line 2 column"):
        load_problem(bad)
    with pytest.raises(ValueError, match=r"cannot read problem file"):
        load_problem(tmp_path / "missing.json")


def test_pickle_is_never_read(tmp_path):
    import pickle

    f = tmp_path / "p.json"
    f.write_bytes(pickle.dumps(GOOD))
    with pytest.raises(ValueError, match=r"^\$: not a UTF-8 JSON text file"):
        load_problem(f)


def test_example_file_loads():
    from pathlib import Path

    p = load_problem(Path(__file__).parents[1] / "examples" / "resnet18_fit.json")
    r = ba.solve(p, method="greedy")
    assert r.usage["average_bits"][0] <= 4.0


def test_custom_constraint_has_no_json_form():
    class Latency(ba.Constraint):
        name, limit = "latency", 1.0

        def cost_table(self, problem):
            return np.ones(problem.errors.shape)

    p = ba.Problem(errors=[[1.0, 0.5]], sizes=[1], bits=(2, 4), constraints=[Latency()])
    assert ba.solve(p, method="greedy").bits.tolist() == [4]
    with pytest.raises(ValueError, match=r"^constraints: Latency has no JSON form"):
        problem_to_dict(p)
