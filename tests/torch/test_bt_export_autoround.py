"""AutoRound layer_config export: a real packed checkpoint per layer, loaded back."""

import json

import pytest
import torch

from bitalloc.export import export_text

auto_round = pytest.importorskip("auto_round", reason="AutoRound not installed (extra autoround)")
transformers = pytest.importorskip("transformers")


def tiny_llama():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=64)
    vocab = {f"w{i}": i for i in range(126)} | {"<unk>": 126, "</s>": 127}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="</s>",
                                  pad_token="</s>")
    return LlamaForCausalLM(cfg).eval(), tok


LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def effective_weight(mod) -> torch.Tensor:
    """The weight a (packed) linear applies: its output on the identity, minus the bias."""
    with torch.no_grad():
        n = getattr(mod, "in_features", None) or mod.infeatures
        eye = torch.eye(n)
        out = mod(eye)
        if getattr(mod, "bias", None) is not None:
            out = out - mod.bias
    return out.T.float()


def levels_per_group(w: torch.Tensor, g: int) -> int:
    groups = w.reshape(w.shape[0], -1, g)
    return max(len(torch.unique(groups[r, k])) for r in range(groups.shape[0])
               for k in range(groups.shape[1]))


def test_autoround_packs_each_layer_and_loads_back(tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = tiny_llama()
    alloc = {f"blk.{i}.{n}": "Q4_0" for i in range(2) for n in
             ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up")}
    alloc = {f"{k}.weight": v for k, v in alloc.items()}
    alloc |= {"blk.0.ffn_down.weight": "Q8_0", "blk.1.ffn_down.weight": "int2_g32"}
    layer_config = json.loads(export_text(alloc, "autoround"))
    ar = auto_round.AutoRound(model, tokenizer=tok, bits=4, group_size=32, sym=True,
                              layer_config=layer_config, iters=0, disable_opt_rtn=True)
    ar.quantize_and_save(str(tmp_path / "out"), format="auto_round")
    out = next(p for p in (tmp_path / "out").rglob("config.json"))
    q = AutoModelForCausalLM.from_pretrained(str(out.parent), device_map="cpu")
    mods = dict(q.named_modules())
    for name, cfg in layer_config.items():
        mod = mods[name]
        assert (mod.bits, mod.group_size) == (cfg["bits"], cfg["group_size"]), name
        assert mod.qweight.dtype == torch.int32            # packed, not fake-quantized
        assert levels_per_group(effective_weight(mod), 32) <= 2 ** cfg["bits"], name
    x = torch.randint(0, 126, (1, 16))
    assert torch.isfinite(q(x).logits).all()
