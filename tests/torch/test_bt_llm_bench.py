"""Pieces of benchmarks.llm that run without the model: the static rule, the report."""

import pytest

pytest.importorskip("transformers")
from benchmarks.llm import _report, static_mix  # noqa: E402


def test_static_mix_is_llama_cpp_use_more_bits():
    names = [f"model.layers.{i}.{p}" for i in range(30)
             for p in ("self_attn.v_proj", "self_attn.q_proj", "mlp.down_proj")]
    mix = static_mix(names, 30)
    raised = sorted({int(g.split(".")[1]) for g, f in mix.items() if f == "Q8_0"})
    # i < 30/8=3, i >= 7*30/8=26, (i - 3) % 3 == 2
    assert raised == [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
    assert all(f == "Q4_0" for g, f in mix.items() if ".attn_q." in g)
    assert {f for g, f in mix.items() if ".attn_v." in g} == {"Q4_0", "Q8_0"}


def test_report_flags_unmet_targets():
    row = dict(file_bytes=100, predicted_bytes=100, linear_bpw=4.5, mix={"Q4_0": 1},
               predicted_error=1.0)
    rows = [dict(row, variant=v, perplexity=p) for v, p in (
        ("uniform Q4_0", 10.0), ("allocated @ Q4_0 size", 9.0),
        ("static mix (attn_v/ffn_down Q8_0)", 8.0), ("allocated @ static-mix size", 8.5),
        ("uniform Q5_0", 7.0), ("allocated @ Q5_0 size", 7.0))]
    solves = {"Q4_0": dict(method="exact", status="optimal", gap=0.0, seconds=0.1)}
    text = _report({"rows": rows, "solves": solves})
    assert text.count("**met**") == 2 and text.count("**NOT met**") == 1
