"""The gguf-py writer on a tiny llama GGUF: round trip, exact sizes, bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bitalloc.export_gguf import dequantize_tensor, plan_gguf, read_gguf_types, write_gguf
from bitalloc.formats import get_format

gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer llama-shaped GGUF in F32/F16 with a few metadata keys."""
    rng = np.random.default_rng(0)
    path = str(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_token_list(["<s>", "a", "b:c", "ü"])
    w.add_string("general.name", "tiny")
    tensors = {"token_embd.weight": rng.standard_normal((4, 64)).astype(np.float16)}
    for i in range(2):
        tensors[f"blk.{i}.attn_norm.weight"] = np.ones(64, np.float32)
        tensors[f"blk.{i}.attn_q.weight"] = rng.standard_normal((64, 64)).astype(np.float32)
        tensors[f"blk.{i}.attn_v.weight"] = rng.standard_normal((32, 64)).astype(np.float32)
        tensors[f"blk.{i}.ffn_down.weight"] = rng.standard_normal((64, 256)).astype(np.float32)
    for name, t in tensors.items():
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, tensors


ALLOC = {"blk.0.attn_q.weight": "Q4_0", "model.layers.0.self_attn.v_proj": "Q8_0",
         "blk.0.ffn_down.weight": "TQ2_0", "blk.1.attn_q.weight": "Q5_1",
         "blk.1.attn_v.weight": "MXFP4", "blk.1.ffn_down.weight": "TQ1_0"}


def test_round_trip(tiny, tmp_path):
    src, tensors = tiny
    dst = str(tmp_path / "mixed.gguf")
    done = []
    plan = write_gguf(src, dst, ALLOC, progress=done.append)
    assert len(done) == len(tensors)
    assert os.path.getsize(dst) == plan.file_bytes
    types = read_gguf_types(dst)
    for name, fmt in ALLOC.items():
        g = name if name.startswith("blk") else "blk.0.attn_v.weight"
        assert types[g] == fmt
    assert types["token_embd.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    reader = gguf.GGUFReader(dst)
    # tensor data size equals the exact format cost, tensor by tensor and in total
    data = 0
    for t in reader.tensors:
        want = plan.tensor_bytes[t.name]
        assert int(t.n_bytes) == want
        if t.name in ALLOC:
            assert want == get_format(ALLOC[t.name]).bits_for(tensors[t.name].size) // 8
        data += int(t.n_bytes)
    assert data == plan.data_bytes
    # metadata copied, untouched tensors byte-identical, quantized ones close
    assert reader.fields["tokenizer.ggml.tokens"].contents() == ["<s>", "a", "b:c", "ü"]
    assert reader.fields["general.name"].contents() == "tiny"
    assert reader.fields["llama.block_count"].contents() == 2
    np.testing.assert_array_equal(dequantize_tensor(reader, "token_embd.weight"),
                                  tensors["token_embd.weight"].astype(np.float32))
    for name, tol in (("blk.0.attn_v.weight", 0.02), ("blk.1.attn_q.weight", 0.1),
                      ("blk.0.attn_q.weight", 0.35)):
        w = tensors[name]
        d = dequantize_tensor(reader, name)
        assert d.shape == w.shape
        assert np.abs(d - w).max() / np.abs(w).max() < tol, name
    # identical to gguf-py's own quantizer of that type
    q = gguf.quants.quantize(tensors["blk.0.ffn_down.weight"], gguf.GGMLQuantizationType.TQ2_0)
    t = next(t for t in reader.tensors if t.name == "blk.0.ffn_down.weight")
    np.testing.assert_array_equal(np.asarray(t.data), q)


def test_plan_without_changes_is_the_source(tiny):
    src, _ = tiny
    assert plan_gguf(src, {}).file_bytes == os.path.getsize(src)
    # any tensor of the file can be named by its GGUF name, llama-style or not
    plan = plan_gguf(src, {"blk.0.attn_norm.weight": "F16"})
    assert plan.tensor_bytes["blk.0.attn_norm.weight"] == 64 * 2


def test_unknown_tensors_are_all_named(tiny, tmp_path):
    src, _ = tiny
    bad = dict(ALLOC, **{"blk.7.attn_q.weight": "Q4_0", "model.layers.9.mlp.up_proj": "Q4_0",
                         "encoder.fc1": "Q4_0"})
    with pytest.raises(ValueError, match=r"no tensors \['blk.7.attn_q.weight', "
                                         r"'model.layers.9.mlp.up_proj', 'encoder.fc1'\]"):
        write_gguf(src, str(tmp_path / "x.gguf"), bad)
    assert not (tmp_path / "x.gguf").exists()


@pytest.mark.parametrize("fmt", ["Q4_K", "IQ4_XS", "int4_g32"])
def test_unwritable_format_names_it_and_the_writable(tiny, tmp_path, fmt):
    src, _ = tiny
    with pytest.raises(ValueError, match=f"cannot produce {fmt}; it writes .*'Q4_0'"):
        write_gguf(src, str(tmp_path / "x.gguf"), {"blk.0.attn_q.weight": fmt})


def test_row_length_checked(tiny, tmp_path):
    src, _ = tiny
    with pytest.raises(ValueError, match="row length 64 is not a multiple of TQ2_0's block"):
        plan_gguf(src, {"blk.0.attn_q.weight": "TQ2_0"})


def test_cli_writes_gguf_from_a_format_result(tiny, tmp_path):
    import json

    import bitalloc as ba
    from bitalloc import cli
    from bitalloc.formats import format_problem

    src, tensors = tiny
    names = ["blk.0.attn_q.weight", "blk.0.ffn_down.weight"]
    fp = format_problem([[3.0, 1.0, 0.0], [5.0, 2.0, 0.0]], [t.size for t in
                        (tensors[n] for n in names)], ["Q4_0", "Q8_0", "F32"], names=names,
                        row_lengths=[64, 256], max_bytes=64 * 64 * 4 + 64 * 256 * 34 / 32)
    res = ba.solve(fp.problem)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(fp.result_dict(res)))
    dst = tmp_path / "o.gguf"
    assert cli.main(["export", str(path), "--to", "gguf", "--model", src, "--out", str(dst)]) == 0
    assert {n: read_gguf_types(str(dst))[n] for n in names} == fp.format_of(res.bits) == {
        "blk.0.attn_q.weight": "F32", "blk.0.ffn_down.weight": "Q8_0"}
