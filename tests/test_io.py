"""Problem files: round trip, and every malformed field reported by its JSON path."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bitalloc as ba
from bitalloc.io import (
    DEFAULT_BITS,
    load_problem,
    loads_problem,
    problem_from_dict,
    problem_to_dict,
    save_problem,
)
from bitalloc.strict_json import dumps

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
    assert [list(t) for t in p.ties] == [[1, 2]]
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


# --- lossless round trip ---------------------------------------------------------------

def _equal_problems(p, q):
    assert q.names == p.names
    for field in ("bits", "errors", "sizes", "act_bits", "allowed"):
        assert np.array_equal(getattr(q, field), getattr(p, field)), field
    assert (q.macs is None) == (p.macs is None)
    if p.macs is not None:
        assert np.array_equal(q.macs, p.macs)
    assert [list(t) for t in q.ties] == [list(t) for t in p.ties]
    assert [(type(c), c.name, c.limit) for c in q.constraints] == \
        [(type(c), c.name, c.limit) for c in p.constraints]


def test_round_trip_keeps_fractional_sizes_act_bits_and_limits(tmp_path):
    p = ba.Problem(errors=[[0.1 + 0.2, 1e-300], [5e-324, 0.0], [1 / 3, 2 / 3]],
                   sizes=[10.5, 3e11 - 1, 2.0 ** 60], bits=(2, 4), names=["a", "b", "c"],
                   macs=[1e7 + 0.5, 3.0, 2.0 ** 53 + 2], act_bits=[4.5, 8, 16],
                   allowed={"a": [4]}, ties=[["b", "c"]],
                   constraints=[ba.AverageBits(10 / 3), ba.BOPsBudget(1.25e30),
                                ba.MemoryBudget(1e300),
                                ba.LinearBudget([[-0.5, 0.1], [0.0, 1e-7], [1.0, 2.0]],
                                                -1 / 7, name="lat")])
    path = tmp_path / "p.json"
    save_problem(p, path)
    _equal_problems(p, load_problem(path))
    groups = json.loads(path.read_text())["groups"]
    assert groups[0]["size"] == 10.5 and groups[0]["act_bits"] == 4.5
    assert groups[1]["size"] == 3e11 - 1 and isinstance(groups[1]["size"], int)


def test_round_trip_writes_act_bits_without_macs():
    p = ba.Problem(errors=[[1.0, 0.5]], sizes=[2], bits=(2, 4), act_bits=[4.5])
    d = problem_to_dict(p)
    assert d["groups"][0]["act_bits"] == 4.5
    assert problem_from_dict(d).act_bits.tolist() == [4.5]


finite = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=1e-300, max_value=1e300), finite, finite,
                          st.floats(min_value=0.5, max_value=64)), min_size=1, max_size=6),
       st.floats(min_value=2.0, max_value=8.0))
def test_round_trip_is_exact_for_any_floats(rows, avg):
    p = ba.Problem(errors=[[a, b] for _, a, b, _ in rows], sizes=[s for s, *_ in rows],
                   bits=(2, 8), macs=[a for _, a, _, _ in rows],
                   act_bits=[x for *_, x in rows], constraints=[ba.AverageBits(avg)])
    q = loads_problem(dumps(problem_to_dict(p)))
    _equal_problems(p, q)


# --- strict JSON and hostile values: exit-2 errors naming the JSON path -----------------

def _text(**replace) -> str:
    """GOOD as JSON text, with a placeholder value replaced by raw JSON text."""
    data = copy.deepcopy(GOOD)
    for key, (path, _) in replace.items():
        _set(data, path, f"@@{key}@@")
    text = json.dumps(data)
    for key, (_, raw) in replace.items():
        text = text.replace(f'"@@{key}@@"', raw)
    return text


BIG = "9" * 400


@pytest.mark.parametrize("path, raw, match", [
    (("groups", 1, "sensitivity"), "NaN", r"^groups\[1\]\.sensitivity: NaN is not standard JSON"),
    (("groups", 3, "errors", 2), "Infinity", r"^groups\[3\]\.errors\[2\]: Infinity is not stan"),
    (("constraints", 3, "max"), "-Infinity", r"^constraints\[3\]\.max: -Infinity is not stand"),
    (("groups", 0, "size"), "1e400", r"^groups\[0\]\.size: must be a positive number, got Inf"),
    (("groups", 0, "size"), BIG, r"^groups\[0\]\.size: must be a positive number, got an in"
                                 r"teger with 400 digits \(out of range\)"),
    (("groups", 1, "sensitivity"), "-" + BIG, r"^groups\[1\]\.sensitivity: must be a non-neg"),
    (("groups", 3, "errors", 0), BIG, r"^groups\[3\]\.errors\[0\]: must be a non-negative"),
    (("groups", 2, "macs"), BIG, r"^groups\[2\]\.macs: must be a non-negative finite number"),
    (("groups", 2, "act_bits"), BIG, r"^groups\[2\]\.act_bits: must be a positive number"),
    (("constraints", 0, "max"), BIG, r"^constraints\[0\]\.max: must be a positive number"),
    (("constraints", 3, "costs", 0, 0), BIG, r"^constraints\[3\]\.costs\[0\]\[0\]: must be a"),
    (("bits", 0), BIG, r"^bits\[0\]: must be a positive integer of at most 64, got an integer"),
    (("bits", 2), "1e20", r"^bits\[2\]: must be a positive integer of at most 64, got 1e\+20"),
    (("ties", 0, 0), BIG, r"^ties\[0\]\[0\]: group index an integer with 400 digits out of ra"),
    (("groups", 0, "allowed_bits", 0), BIG, r"^groups\[0\]\.allowed_bits\[0\]: an integer wit"),
    (("groups", 1, "size"), "9" * 5000, r"^\$: invalid JSON: Exceeds the limit \(4300 digits\)"),
])
def test_non_standard_and_out_of_range_numbers_are_named(path, raw, match):
    with pytest.raises(ValueError, match=match):
        loads_problem(_text(x=(path, raw)))


@pytest.mark.parametrize("text, match", [
    ('{"bits": [2, 4], "bits": [2, 8], "groups": []}', r'^bits: duplicate key "bits" in one obj'),
    ('{"groups": [{"name": "a", "size": 1, "size": 2, "sensitivity": 1}]}',
     r'^groups\[0\]\.size: duplicate key "size"'),
    ('{"groups": [{"name": "a", "size": 1, "sensitivity": NaN, "sensitivity": 1}]}',
     r'^groups\[0\]\.sensitivity: duplicate key'),  # the object's duplicate comes first
    ('[' * 100000 + ']' * 100000, r"^\$: JSON nested too deeply to read"),
    ('{"bits": [2, 4],\n "groups": [}', r"^\$: invalid JSON at line 2 column 13"),
    ("", r"^\$: invalid JSON at line 1 column 1: Expecting value"),
])
def test_strict_json_rejections(text, match):
    with pytest.raises(ValueError, match=match):
        loads_problem(text)


def _deep(depth: int) -> list:
    x: list = []
    for _ in range(depth):
        x = [x]
    return x


DEEP = _deep(100_000)  # json.dumps of it exhausts the stack


@pytest.mark.parametrize("path, value, match", [
    (("constraints", 0, "type"), ["average_bits"], r"^constraints\[0\]\.type: unknown constra"),
    (("constraints", 0, "type"), {"a": 1}, r"^constraints\[0\]\.type: unknown constraint type"),
    (("constraints", 0, "type"), KeyError, r"^constraints\[0\]\.type: missing; expected one of"),
    (("noise",), ["uniform"], r'^noise: unknown noise model \["uniform"\]'),
    (("noise",), {}, r"^noise: unknown noise model \{\}"),
    (("groups", 0, "allowed_bits"), [[8]], r"^groups\[0\]\.allowed_bits\[0\]: \[8\] is not"),
    (("groups", 0, "allowed_bits"), [True], r"^groups\[0\]\.allowed_bits\[0\]: true is not"),
    (("groups", 0, "allowed_bits"), [8.5], r"^groups\[0\]\.allowed_bits\[0\]: 8.5 is not"),
    (("ties", 0), [["conv2"], "down"], r"^ties\[0\]\[0\]: a group is a name or an integer ind"),
    (("ties", 0), [True, 1], r"^ties\[0\]\[0\]: a group is a name or an integer index, got t"),
    (("ties", 0), [1, 9], r"^ties\[0\]\[1\]: group index 9 out of range for 4 groups"),
    (("ties", 0), [], r"^ties\[0\]: must list at least one group"),
    (("ties",), {"a": 1}, r"^ties: must be a list"),
    (("groups", 1, "name"), ["x"], r'^groups\[1\]\.name: must be a non-empty string, got \["x'),
    (("groups", 1, "name"), DEEP, r"^groups\[1\]\.name: must be a non-empty string, got <list>"),
    (("groups", 1, "name"), _deep(500), r"^groups\[1\]\.name: .*got \[\[\[.*\.\.\. \(1002 chars"),
    (("groups", 1, "name"), None, r"^groups\[1\]\.name: must be a non-empty string, got null"),
    (("groups", 1, "size"), True, r"^groups\[1\]\.size: must be a positive number, got true"),
    (("groups", 1, "size"), list(range(20)), r"^groups\[1\]\.size: .*got a list of 20 items"),
    (("groups", 1, "sensitivity"), False, r"^groups\[1\]\.sensitivity: must be a non-negative"),
    (("groups", 3, "errors"), [True, 0.1, 0.2], r"^groups\[3\]\.errors\[0\]: must be a non-neg"),
    (("groups", 2, "macs"), "5", r'^groups\[2\]\.macs: must be a non-negative finite number, g'),
    (("groups", 2, "act_bits"), True, r"^groups\[2\]\.act_bits: must be a positive number"),
    (("constraints", 0, "max"), True, r"^constraints\[0\]\.max: must be a positive number, got t"),
    (("constraints", 3, "max"), None, r"^constraints\[3\]\.max: must be a finite number, got nu"),
    (("constraints", 3, "costs", 0, 0), False, r"^constraints\[3\]\.costs\[0\]\[0\]: must be a f"),
    (("constraints", 3, "costs"), KeyError, r"^constraints\[3\]\.costs: required"),
    (("constraints", 3, "name"), "average_bits",
     r'^constraints\[3\]\.name: duplicate constraint name "average_bits" \(also constraints\[0'),
    (("bits", 0), True, r"^bits\[0\]: must be a positive integer of at most 64, got true"),
    (("bits", 0), 0, r"^bits\[0\]: must be a positive integer of at most 64, got 0"),
    (("bits", 2), 65, r"^bits\[2\]: must be a positive integer of at most 64, got 65"),
    (("bits", 1), 2, r"^bits\[1\]: duplicate bitwidth 2"),
    (("bits",), [], r"^bits: must not be empty"),
    (("groups", 1), ["name", "x"], r'^groups\[1\]: must be an object, got \["name", "x"\]'),
    (("groups",), KeyError, r"^groups: required"),
    (("description",), 5, r"^description: must be a string, got 5"),
    (("groups", 1, "name"), "conv1", r'^groups\[1\]\.name: duplicate group name "conv1" \(also '),
])
def test_hostile_values_are_named(path, value, match):
    data = copy.deepcopy(GOOD)
    _set(data, path, value)
    with pytest.raises(ValueError, match=match):
        problem_from_dict(data)


@pytest.mark.parametrize("groups, constraints, match", [
    ([{"size": 1e308, "sensitivity": 1}] * 2, [], r"^groups\[\*\]\.size: the total overflows"),
    ([{"size": 1, "errors": [1e308] * 3}] * 2, [], r"^groups\[\*\]\.errors: the total error"),
    ([{"size": 1, "sensitivity": 1, "macs": 1e308, "act_bits": 8}], [{"type": "bops", "max": 1}],
     r"^groups\[\*\]\.macs: the total overflows"),
])
def test_whole_problem_errors_use_json_paths(groups, constraints, match):
    groups = [dict(g, name=f"g{i}") for i, g in enumerate(groups)]
    with pytest.raises(ValueError, match=match):
        problem_from_dict({"bits": [2, 4, 8], "groups": groups, "constraints": constraints})


def test_ties_accept_indices():
    data = copy.deepcopy(GOOD)
    data["ties"] = [[1, "down"]]
    assert problem_from_dict(data).ties == problem_from_dict(GOOD).ties


def test_default_names_and_bits():
    p = problem_from_dict({"groups": [{"size": 1, "sensitivity": 1.0}, {"size": 2,
                                                                         "sensitivity": 0}]})
    assert p.names == ("g0", "g1") and p.bits.tolist() == list(DEFAULT_BITS)
    with pytest.raises(ValueError, match=r'^groups\[1\]\.name: duplicate group name "g0"'):
        problem_from_dict({"groups": [{"size": 1, "sensitivity": 1.0},
                                      {"name": "g0", "size": 2, "sensitivity": 0}]})


def test_bytes_bom_and_not_utf8():
    text = json.dumps(GOOD)
    assert loads_problem(text.encode()).names == loads_problem("\ufeff" + text).names \
        == loads_problem(b"\xef\xbb\xbf" + text.encode()).names
    with pytest.raises(ValueError, match=r"^\$: not a UTF-8 JSON text file"):
        loads_problem(b"\xff\xfe{}")


def test_many_groups_in_one_pass():
    """10^4 groups, mixed sensitivity/errors rows: the column checks keep the row order."""
    n = 10_000
    rng = np.random.default_rng(0)
    sens, tables = rng.random(n), rng.random((n, 3))
    use_table = rng.random(n) < 0.3
    groups = [{"name": f"l{i}", "size": int(i % 7 + 1), "macs": float(i),
               **({"errors": tables[i].tolist()} if use_table[i] else
                  {"sensitivity": float(sens[i])})} for i in range(n)]
    p = problem_from_dict({"bits": [2, 4, 8], "groups": groups})
    want = np.where(use_table[:, None], tables, np.outer(sens, ba.phi([2, 4, 8])))
    assert np.array_equal(p.errors, want)
    assert p.sizes.tolist() == [i % 7 + 1 for i in range(n)] and p.macs[-1] == n - 1
    groups[7777]["errors" if use_table[7777] else "sensitivity"] = -1
    with pytest.raises(ValueError, match=r"^groups\[7777\]\.(errors\[0\]|sensitivity): must"):
        problem_from_dict({"bits": [2, 4, 8], "groups": groups})


# --- scoped constraints: "groups" on a constraint ---------------------------------------

@pytest.mark.parametrize("value, match", [
    ("conv1", r"^constraints\[0\]\.groups: must be a list"),
    ([], r"^constraints\[0\]\.groups: must name at least one group"),
    (["nope"], r'^constraints\[0\]\.groups\[0\]: unknown group "nope"'),
    ([0, 4], r"^constraints\[0\]\.groups\[1\]: group index 4 out of range for 4 groups"),
    ([False], r"^constraints\[0\]\.groups\[0\]: a group is a name or an integer index"),
    (["conv1", 0], r'^constraints\[0\]\.groups\[1\]: group 0 is given twice \(also constr'),
])
def test_scope_errors_are_named(value, match):
    data = copy.deepcopy(GOOD)
    data["constraints"][0]["groups"] = value
    with pytest.raises(ValueError, match=match):
        problem_from_dict(data)


def test_scoped_constraints_load_solve_and_round_trip():
    data = {"bits": [2, 4, 8],
            "groups": [{"name": "w1", "size": 100, "sensitivity": 4.0},
                       {"name": "w2", "size": 100, "sensitivity": 1.0},
                       {"name": "a1", "size": 100, "sensitivity": 2.0}],
            "constraints": [{"type": "average_bits", "max": 3.0, "name": "w",
                             "groups": ["w1", 1]},
                            {"type": "average_bits", "max": 8.0, "name": "a", "groups": [2]}]}
    p = problem_from_dict(data)
    r = ba.solve(p, method="ilp")
    assert set(r.usage) == {"w", "a"} and r.usage["w"][0] <= 3.0
    assert r.bits.tolist() == [4, 2, 8]  # the activation group is not held back by "w"
    d = problem_to_dict(p)
    assert d["constraints"][0]["groups"] == ["w1", 1]
    _equal_problems(p, problem_from_dict(d))


# --- fuzz: any JSON value at any field is a Problem or a ValueError ----------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10 ** 300) |
    st.floats() | st.sampled_from([0, 1, 2, 4, 8, 64, 65, -1, 0.5, 1e308, 5e-324]) |
    st.text(max_size=5) | st.sampled_from(["conv1", "fc", "average_bits", "uniform"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(GOOD) if p]
JSON_PATH = re.compile(r'^(\$|[A-Za-z_]\w*)(\.[A-Za-z_]\w*|\[(\d+|\*)\]|\["(?:[^"\\]|\\.)*"\])*: ')


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), json_values | st.just(KeyError)),
                min_size=1, max_size=3))
def test_fuzz_any_value_anywhere(changes):
    data = copy.deepcopy(GOOD)
    for path, value in changes:
        try:
            _set(data, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    try:
        p = problem_from_dict(data)
    except ValueError as e:
        assert JSON_PATH.match(str(e)), str(e)
        return
    try:
        ba.solve(p, method="greedy")
    except ValueError:  # InfeasibleError included
        pass
