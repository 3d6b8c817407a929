"""Formats as candidates: the cost table, the format problem, its bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bitalloc as ba
from bitalloc.formats import GGML_FORMATS, GGUF_PY_WRITES, format_problem, get_format
from tests.reference import brute_force, close

# the figures the issue names, independent of the table
STATED = {"Q4_0": 4.5, "Q4_1": 5.0, "Q5_0": 5.5, "Q5_1": 6.0, "Q8_0": 8.5,
          "TQ1_0": 1.6875, "TQ2_0": 2.0625}


def test_stated_bits_per_weight():
    for name, bpw in STATED.items():
        assert get_format(name).bits_per_weight == bpw


def test_table_matches_gguf_py():
    gguf = pytest.importorskip("gguf")
    for name, fmt in GGML_FORMATS.items():
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]]
        assert (fmt.block, fmt.block_bits) == (block, type_size * 8), name


def test_gguf_py_writes_what_we_say():
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 256)).astype(np.float32)
    for name in GGUF_PY_WRITES:
        q = gguf.quants.quantize(w, gguf.GGMLQuantizationType[name])
        assert q.nbytes == get_format(name).bits_for(w.size) // 8, name


def test_int_formats():
    assert get_format("int4_g128").bits_per_weight == 4 + 16 / 128
    assert get_format("uint4_g128").bits_per_weight == 4 + 32 / 128
    assert get_format("int3_g64").block_bits == 3 * 64 + 16
    assert not get_format("uint2_g32").symmetric
    assert get_format("int4_g32").bits_per_weight == get_format("Q4_0").bits_per_weight


@pytest.mark.parametrize("bad", ["Q9_0", "int9_g32", "int4_g0", "int4", "", 4])
def test_unknown_format(bad):
    with pytest.raises(ValueError, match="format"):
        get_format(bad)


def test_bits_for_needs_whole_blocks():
    with pytest.raises(ValueError, match="multiple of Q4_0's block of 32"):
        get_format("Q4_0").bits_for(40)


def _fp(**kw):
    base = dict(errors=[[3.0, 1.0, 0.1], [2.0, 0.5, 0.2], [9.0, 2.0, 0.3]],
                sizes=[512, 256, 1024], formats=["Q8_0", "Q4_0", "TQ2_0"],
                names=["a", "b", "c"])
    base.update(kw)
    return format_problem(base.pop("errors"), base.pop("sizes"), base.pop("formats"), **base)


def test_problem_sorted_by_cost_and_exact_bytes():
    fp = _fp(max_bytes=10_000)
    assert [f.name for f in fp.formats] == ["TQ2_0", "Q4_0", "Q8_0"]
    assert fp.problem.bits.tolist() == [1, 2, 3]
    # errors permuted with the formats
    assert fp.problem.errors[0].tolist() == [0.1, 1.0, 3.0]
    assert fp.bytes[0].tolist() == [512 / 256 * 66, 512 / 32 * 18, 512 / 32 * 34]
    res = ba.solve(fp.problem, method="ilp")
    assert fp.size_bytes(res.bits) == res.usage["bytes"][0] <= 10_000
    assert set(fp.format_of(res.bits).values()) <= {"TQ2_0", "Q4_0", "Q8_0"}


def test_row_length_disallows_formats():
    fp = _fp(row_lengths=[32, 256, 256], max_bytes=10_000)
    assert not fp.problem.allowed[0, 0] and fp.problem.allowed[0, 1:].all()
    res = ba.solve(fp.problem, method="ilp")
    assert fp.format_of(res.bits)["a"] != "TQ2_0"


def test_inf_error_allowed_only_where_format_is_not():
    inf = float("inf")
    fp = _fp(errors=[[3.0, 1.0, inf], [2.0, 0.5, 0.2], [9.0, 2.0, 0.3]],
             row_lengths=[32, 256, 256], max_bytes=10_000)
    assert np.isfinite(fp.problem.errors).all()
    with pytest.raises(ValueError, match="errors: must be finite .* 'a' in TQ2_0 has inf"):
        _fp(errors=[[3.0, 1.0, inf], [2.0, 0.5, 0.2], [9.0, 2.0, 0.3]])
    with pytest.raises(ValueError, match="'b' in Q4_0 has -0.5"):
        _fp(errors=[[3.0, 1.0, 0.1], [2.0, -0.5, 0.2], [9.0, 2.0, 0.3]])


def test_bits_per_weight_budget_equals_bytes_budget():
    a = _fp(max_bits_per_weight=4.5)
    b = _fp(max_bytes=4.5 * (512 + 256 + 1024) / 8)
    assert a.problem.constraints[0].limit == b.problem.constraints[0].limit


def test_infeasible_names_reachable_bytes():
    smallest = (512 + 256 + 1024) / 256 * 66
    with pytest.raises(ba.InfeasibleError, match="bytes") as e:
        _fp(max_bytes=smallest - 1)
    assert e.value.reachable == smallest and e.value.constraint == "bytes"
    _fp(max_bytes=smallest)  # exactly reachable is fine
    # with TQ2_0 excluded by the row length, the minimum rises accordingly
    with pytest.raises(ba.InfeasibleError) as e:
        _fp(row_lengths=[32, 256, 256], max_bytes=smallest)
    assert e.value.reachable == 512 / 32 * 18 + (256 + 1024) / 256 * 66


@pytest.mark.parametrize("kw, match", [
    (dict(formats=["Q8_0", "Q8_0", "Q4_0"]), "formats: duplicate"),
    (dict(formats=[]), "formats: at least one"),
    (dict(errors=[[1.0, 2.0]] * 3), "errors: expected shape"),
    (dict(sizes=[512, 0, 1024]), "sizes"),
    (dict(names=["a", "b"]), "names"),
    (dict(row_lengths=[100, 256, 256]), "row_lengths"),
    (dict(row_lengths=[16, 256, 256]), "no candidate format can store \\['a'\\]"),
    (dict(allowed={"zz": ["Q4_0"]}), "allowed: unknown tensor"),
    (dict(max_bytes=1e9, max_bits_per_weight=4.0), "not both"),
])
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        _fp(**kw)


def test_bits_of_round_trip():
    fp = _fp(max_bytes=10_000)
    codes = fp.bits_of({"a": "q8_0", "b": "TQ2_0", "c": "Q4_0"})
    assert fp.format_of(codes) == {"a": "Q8_0", "b": "TQ2_0", "c": "Q4_0"}
    with pytest.raises(ValueError, match="no format given"):
        fp.bits_of({"a": "Q8_0"})
    with pytest.raises(ValueError, match="not a candidate"):
        fp.bits_of({"a": "Q5_0", "b": "TQ2_0", "c": "Q4_0"})


@given(st.integers(0, 10_000), st.integers(1, 4), st.data())
def test_exact_against_brute_force(seed, n, data):
    """The solver's answer over formats equals the brute-force optimum of bytes and error."""
    rng = np.random.default_rng(seed)
    names = sorted(GGUF_PY_WRITES)
    fmts = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    if all(get_format(f).block > 32 for f in fmts):
        fmts.append("Q8_0")  # every tensor needs one storable format
    sizes = rng.choice([256, 512, 768, 2048], size=n)
    rows = np.array([rng.choice([r for r in (32, 64, 256) if s % r == 0]) for s in sizes])
    errors = rng.random((n, len(fmts))) * 10
    fpbig = format_problem(errors, sizes, fmts, names=[f"t{i}" for i in range(n)],
                           row_lengths=rows)
    lo = float(np.where(fpbig.problem.allowed, fpbig.bytes, np.inf).min(axis=1).sum())
    hi = float(np.where(fpbig.problem.allowed, fpbig.bytes, 0).max(axis=1).sum())
    budget = lo + rng.random() * (hi - lo)
    fp = format_problem(errors, sizes, fmts, names=[f"t{i}" for i in range(n)],
                        row_lengths=rows, max_bytes=budget)
    res = ba.solve(fp.problem, method="exact")
    best, _ = brute_force(fp.problem)
    assert close(res.objective, best)
    assert fp.size_bytes(res.bits) <= budget
    # brute force directly in format space, independent of the problem's encoding
    direct = min(sum(errors[i, fmts.index(f.name)] for i, f in enumerate(combo))
                 for combo in itertools.product(fp.formats, repeat=n)
                 if all(rows[i] % f.block == 0 for i, f in enumerate(combo))
                 and sum(f.bits_for(int(s)) / 8 for f, s in zip(combo, sizes)) <= budget)
    assert close(res.objective, direct)
