"""Exporters: every output parsed back by its own reader; the GGUF writer on a tiny model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from bitalloc import cli
from bitalloc.errors import MissingDependencyError
from bitalloc.export import (
    allocation_from_result,
    dump_yaml,
    export_text,
    gguf_name,
    hf_name,
    int_equivalent,
    to_autoround,
    to_bit_map,
    to_llama_cpp,
    to_llmcompressor,
)
from bitalloc.formats import GGML_FORMATS, get_format

ALLOC = {"model.layers.0.self_attn.q_proj": "Q4_0", "model.layers.1.self_attn.v_proj": "Q8_0",
         "model.layers.10.mlp.down_proj": "Q5_1", "model.layers.1.mlp.up_proj": "int3_g64"}
NAMES = [f"blk.{i}.{t}.weight" for i in range(12)
         for t in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")]


def test_names_round_trip():
    for g in NAMES:
        assert gguf_name(hf_name(g)) == g
    assert gguf_name("model.layers.2.self_attn.o_proj.weight") == "blk.2.attn_output.weight"
    assert hf_name("token_embd.weight") == "model.embed_tokens"
    with pytest.raises(ValueError, match="names: 'model.layers.0.mlp.fc1'"):
        gguf_name("model.layers.0.mlp.fc1")
    with pytest.raises(ValueError, match="not a llama-architecture GGUF linear"):
        hf_name("blk.0.attn_qkv.weight")


def _parse_tensor_type_file(text: str) -> list[tuple[str, str]]:
    """What llama-quantize does with each line: split at '=', lowercase, regex_search."""
    out = []
    for line in text.strip().splitlines():
        pat, typ = line.split("=", 1)
        assert pat == pat.lower() and typ == typ.lower()
        assert typ.upper() in GGML_FORMATS
        out.append((pat, typ))
    return out


def test_llama_cpp_lines_match_exactly_one_tensor():
    alloc = {n: "Q4_0" for n in ALLOC if "up_proj" not in n}
    lines = _parse_tensor_type_file(to_llama_cpp(alloc))
    assert len(lines) == 3
    for (pat, typ), name in zip(lines, alloc):
        hits = [g for g in NAMES if re.search(pat, g)]
        assert hits == [gguf_name(name)] and typ == "q4_0"  # blk.1 never matches blk.10


def test_llama_cpp_rejects_int_group_formats():
    with pytest.raises(ValueError, match="cannot produce int3_g64; it produces the ggml types"):
        to_llama_cpp(ALLOC)
    # an int format with an exact ggml equivalent is written as that type
    assert to_llama_cpp({"blk.0.attn_q.weight": "int8_g32"}).endswith("=q8_0")


def test_autoround_layer_config():
    cfg = json.loads(export_text(ALLOC, "autoround"))
    assert cfg == {"model.layers.0.self_attn.q_proj": {"bits": 4, "group_size": 32, "sym": True},
                   "model.layers.1.self_attn.v_proj": {"bits": 8, "group_size": 32, "sym": True},
                   "model.layers.10.mlp.down_proj": {"bits": 5, "group_size": 32, "sym": False},
                   "model.layers.1.mlp.up_proj": {"bits": 3, "group_size": 64, "sym": True}}
    assert to_autoround({"blk.0.attn_q.weight": "F16"}) == {
        "model.layers.0.self_attn.q_proj": {"bits": 16}}


@pytest.mark.parametrize("fmt", ["MXFP4", "Q4_K", "TQ2_0", "IQ4_XS"])
def test_no_int_equivalent_names_the_format(fmt):
    with pytest.raises(ValueError, match=f"{fmt} has no integer .* this writer produces"):
        to_autoround({"blk.0.attn_q.weight": fmt})
    with pytest.raises(ValueError, match=fmt):
        to_llmcompressor({"blk.0.attn_q.weight": fmt})


def test_int_equivalent_has_the_same_storage():
    for g in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
        assert int_equivalent(g).bits_per_weight == get_format(g).bits_per_weight


def test_llmcompressor_recipe_parses_back():
    yaml = pytest.importorskip("yaml")
    alloc = dict(ALLOC, **{"model.layers.2.mlp.gate_proj": "F16"})
    text = export_text(alloc, "llmcompressor")
    recipe = yaml.safe_load(text)
    assert recipe == to_llmcompressor(alloc)
    mod = recipe["quant_stage"]["quant_modifiers"]["QuantizationModifier"]
    assert mod["ignore"] == ["lm_head", "model.layers.2.mlp.gate_proj"]
    seen = {}
    hf = [hf_name(g) for g in NAMES]
    for group in mod["config_groups"].values():
        w = group["weights"]
        for t in group["targets"]:
            assert t.startswith("re:")
            hits = [n for n in hf if re.match(t[3:], n)]
            assert len(hits) == 1
            seen[hits[0]] = (w["num_bits"], w["group_size"], w["symmetric"])
    assert seen == {"model.layers.0.self_attn.q_proj": (4, 32, True),
                    "model.layers.1.self_attn.v_proj": (8, 32, True),
                    "model.layers.10.mlp.down_proj": (5, 32, False),
                    "model.layers.1.mlp.up_proj": (3, 64, True)}


def test_dump_yaml_quotes_awkward_strings():
    yaml = pytest.importorskip("yaml")
    obj = {"a": ["x: y", "- z", "#c", "yes", "null", "1.5", 'q"uote', "\\d"],
           "b": {"c.d": 1, "e": None, "f": True, "g": [], "h": {}}, "i": [{"j": 2.5}]}
    assert yaml.safe_load(dump_yaml(obj)) == obj


def test_bit_map():
    out = json.loads(export_text(ALLOC, "json"))
    assert out == to_bit_map(ALLOC)
    assert out["bits_per_weight"]["model.layers.1.mlp.up_proj"] == 3 + 16 / 64
    assert out["formats"]["model.layers.10.mlp.down_proj"] == "Q5_1"


def test_allocation_from_result():
    res = {"status": "optimal", "bits": {"a": 4, "b": 8, "c": 16}}
    alloc = allocation_from_result(res, group_size=64)
    assert {k: f.name for k, f in alloc.items()} == {"a": "int4_g64", "b": "int8_g64", "c": "F16"}
    asym = allocation_from_result(res, symmetric=False)
    assert asym["a"].name == "uint4_g128"
    assert allocation_from_result({"formats": {"a": "q5_0"}})["a"].name == "Q5_0"


@pytest.mark.parametrize("res, match", [
    ([], r"^\$: must be a JSON object"),
    ({"status": "optimal"}, "^bits: must be a non-empty object"),
    ({"bits": {"a": 9}}, r"^bits\.a: must be an integer in 1\.\.8"),
    ({"bits": {"a": True}}, r"^bits\.a"),
    ({"formats": {"a": "Q9_9"}}, r"^formats\.a: format: unknown format 'Q9_9'"),
    ({"formats": []}, "^formats: must be a non-empty object"),
])
def test_allocation_bad_input(res, match):
    with pytest.raises(ValueError, match=match):
        allocation_from_result(res)


def test_unknown_target():
    with pytest.raises(ValueError, match="--to: unknown target 'onnx'"):
        export_text(ALLOC, "onnx")


def _cli(tmp_path, result, *args):
    path = tmp_path / "r.json"
    path.write_text(result if isinstance(result, str) else json.dumps(result))
    return subprocess.run([sys.executable, "-m", "bitalloc", "export", str(path), *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_export_each_target(tmp_path):
    res = {"status": "optimal", "bits": {"model.layers.0.self_attn.q_proj": 4,
                                         "model.layers.0.mlp.down_proj": 8}}
    r = _cli(tmp_path, res, "--to", "autoround", "--group-size", "32")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model.layers.0.mlp.down_proj"] == {
        "bits": 8, "group_size": 32, "sym": True}
    r = _cli(tmp_path, res, "--to", "llama.cpp", "--group-size", "32")
    assert r.returncode == 0 and r.stdout.splitlines() == [
        r"^blk\.0\.attn_q\.weight$=q4_0", r"^blk\.0\.ffn_down\.weight$=q8_0"]
    out = tmp_path / "recipe.yaml"
    r = _cli(tmp_path, res, "--to", "llmcompressor", "--out", str(out))
    assert r.returncode == 0 and "config_groups" in out.read_text()
    r = _cli(tmp_path, {"formats": {"blk.0.attn_q.weight": "Q5_0"}}, "--to", "json")
    assert json.loads(r.stdout)["bits"] == {"blk.0.attn_q.weight": 5}


@pytest.mark.parametrize("result, args, match", [
    ("{not json", ["--to", "json"], r"bad input: \$: invalid JSON"),
    ({"bits": {"a": 4.5}}, ["--to", "json"], r"bad input: bits\.a"),
    ({"bits": {"model.layers.0.mlp.up_proj": 4}}, ["--to", "llama.cpp"],
     "cannot produce int4_g128"),
    ({"formats": {"blk.0.attn_q.weight": "MXFP4"}}, ["--to", "autoround"],
     "MXFP4 has no integer"),
    ({"formats": {"a": "Q4_0"}}, ["--to", "gguf"], "--model/--out"),
])
def test_cli_bad_input_exit_2(tmp_path, result, args, match):
    r = _cli(tmp_path, result, *args)
    assert r.returncode == 2 and re.search(match, r.stderr), r.stderr
    assert "Traceback" not in r.stderr


def test_cli_missing_gguf_exit_4(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"formats": {"blk.0.attn_q.weight": "Q4_0"}}))
    code = cli.main(["export", str(path), "--to", "gguf", "--model", "m.gguf",
                     "--out", str(tmp_path / "o.gguf")])
    assert code == 4 and "bitalloc[gguf]" in capsys.readouterr().err
    from bitalloc import export_gguf
    with pytest.raises(MissingDependencyError):
        export_gguf.read_gguf_types("m.gguf")


def test_core_stays_light():
    code = ("import sys, bitalloc, bitalloc.formats, bitalloc.export, bitalloc.export_gguf, "
            "bitalloc.cli; bad = [m for m in ('gguf', 'torch', 'yaml', 'transformers') "
            "if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stdout + r.stderr
