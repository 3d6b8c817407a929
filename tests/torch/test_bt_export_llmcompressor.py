"""llm-compressor recipe export: pack-quantized checkpoint per layer, loaded back.

llm-compressor 0.14 pins transformers 5.17 and auto-round 0.15, so it is not installed in
the shared venv; this test runs where it is (e.g. ``/work/venvs/export``) and skips
elsewhere.
"""

import json

import pytest
import torch

from bitalloc.export import export_text

pytest.importorskip("llmcompressor", reason="llm-compressor not installed (extra llmcompressor)")


def test_recipe_packs_each_layer_and_loads_back(tmp_path):
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(tmp_path / "base")
    model.config._name_or_path = str(tmp_path / "base")  # oneshot re-reads the config
    ref = {n: m.weight.detach().clone() for n, m in model.named_modules()
           if isinstance(m, torch.nn.Linear) and "layers" in n}
    alloc = {n: "int4_g32" for n in ref}
    alloc |= {"model.layers.0.mlp.down_proj": "Q8_0", "model.layers.1.mlp.up_proj": "uint2_g16",
              "model.layers.1.self_attn.v_proj": "F16"}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(export_text(alloc, "llmcompressor"))
    oneshot(model=model, recipe=str(recipe))
    model.save_pretrained(tmp_path / "out", save_compressed=True)
    qc = json.loads((tmp_path / "out" / "config.json").read_text())["quantization_config"]
    assert {g["format"] for g in qc["config_groups"].values()} == {"pack-quantized"}
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("model.layers.0.mlp.down_proj.weight_packed").dtype == torch.int32
    assert "model.layers.1.self_attn.v_proj.weight" in keys          # F16: not quantized
    assert "model.layers.1.mlp.up_proj.weight_zero_point" in keys    # asymmetric
    from transformers import CompressedTensorsConfig

    q = AutoModelForCausalLM.from_pretrained(  # decompress the packed int32 weights on load
        str(tmp_path / "out"), quantization_config=CompressedTensorsConfig(run_compressed=False))
    mods = dict(q.named_modules())
    def weight(name):
        return mods[name].weight.detach().float()

    for name, fmt in alloc.items():
        w = weight(name)
        if fmt == "F16":
            assert torch.equal(w, ref[name])
            continue
        bits, g = {"int4_g32": (4, 32), "Q8_0": (8, 32), "uint2_g16": (2, 16)}[fmt]
        groups = w.reshape(w.shape[0], -1, g)
        levels = max(len(torch.unique(groups[r, k])) for r in range(groups.shape[0])
                     for k in range(groups.shape[1]))
        assert levels <= 2 ** bits, name
        assert mods[name].quantization_scheme.weights.num_bits == bits
    err8 = weight("model.layers.0.mlp.down_proj") - ref["model.layers.0.mlp.down_proj"]
    err2 = weight("model.layers.1.mlp.up_proj") - ref["model.layers.1.mlp.up_proj"]
    assert err8.abs().max() < err2.abs().max()
    assert torch.isfinite(q(torch.randint(0, 128, (1, 16))).logits).all()
