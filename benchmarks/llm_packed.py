"""The same SmolLM2-135M allocation packed by AutoRound or llm-compressor, loaded back.

``python -m benchmarks.llm_packed --tool autoround|llmcompressor [--budget static]`` reads
``results/llm_alloc_<budget>.<tool>.{json,yaml}`` (written by ``benchmarks.llm``), packs
the model with the tool (AutoRound ``iters=0``: round-to-nearest, ``auto_round`` int32
checkpoint; llm-compressor ``oneshot`` + ``save_compressed``: ``pack-quantized`` int32),
loads the checkpoint back with transformers, checks each layer's bits and measures
perplexity on the same held-out tokens as ``benchmarks.llm``. Appends one record to
``results/llm_packed.json``. llm-compressor 0.14 needs its own venv (it pins
transformers 5.17).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time

from benchmarks import llm_model as lm
from benchmarks.llm import RESULTS


def _autoround(model, tok, budget: str, tmp: str):
    from auto_round import AutoRound
    from transformers import AutoModelForCausalLM

    with open(os.path.join(RESULTS, f"llm_alloc_{budget}.autoround.json")) as f:
        layer_config = json.load(f)
    AutoRound(model, tokenizer=tok, bits=4, group_size=32, sym=True, layer_config=layer_config,
              iters=0, disable_opt_rtn=True).quantize_and_save(tmp, format="auto_round")
    folder = os.path.dirname(glob.glob(os.path.join(tmp, "**", "config.json"), recursive=True)[0])
    q = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu").eval()
    mods = dict(q.named_modules())
    ok = all(mods[n].bits == c["bits"] for n, c in layer_config.items())
    return q, folder, ok


def _llmcompressor(model, tok, budget: str, tmp: str):
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    recipe = os.path.join(RESULTS, f"llm_alloc_{budget}.llmcompressor.yaml")
    base = os.path.join(tmp, "base")
    # a GGUF-loaded model is marked as GGUF-quantized and refuses save_pretrained: rebuild
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    fresh = AutoModelForCausalLM.from_config(cfg)
    fresh.load_state_dict(model.state_dict())
    model = fresh.eval()
    model.save_pretrained(base)
    tok.save_pretrained(base)
    model.config._name_or_path = base  # oneshot re-reads the config from there
    oneshot(model=model, recipe=recipe)
    out = os.path.join(tmp, "packed")
    model.save_pretrained(out, save_compressed=True)
    with open(os.path.join(out, "config.json")) as f:
        groups = json.load(f)["quantization_config"]["config_groups"]
    q = AutoModelForCausalLM.from_pretrained(
        out, quantization_config=CompressedTensorsConfig(run_compressed=False)).eval()
    with open(os.path.join(RESULTS, f"llm_alloc_{budget}.bitmap.json")) as f:
        want = json.load(f)["bits"]
    from bitalloc.export import hf_name

    got = {t[len("re:^"):-1].replace("\\", ""): g["weights"]["num_bits"]
           for g in groups.values() for t in g["targets"]}
    ok = all(got[hf_name(n)] == b for n, b in want.items()) and all(
        g["format"] == "pack-quantized" for g in groups.values())
    return q, out, ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tool", choices=("autoround", "llmcompressor"), required=True)
    p.add_argument("--budget", default="static", help="which llm_alloc_<budget> to pack")
    p.add_argument("--eval", type=int, default=12)
    p.add_argument("--calib", type=int, default=12)
    p.add_argument("--seq", type=int, default=512)
    args = p.parse_args(argv)
    t0 = time.time()
    model, tok = lm.load_model(lm.gguf_path())
    _, held = lm.corpus_tokens(tok, args.seq, args.calib, args.eval)
    with tempfile.TemporaryDirectory() as tmp:
        pack = _autoround if args.tool == "autoround" else _llmcompressor
        q, folder, ok = pack(model, tok, args.budget, tmp)
        size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(folder, "*.safetensors")))
        ppl = lm.perplexity(q, held)
    rec = {"tool": args.tool, "budget": args.budget, "perplexity": ppl,
           "safetensors_bytes": size, "bits_match_allocation": ok,
           "seconds": time.time() - t0}
    path = os.path.join(RESULTS, "llm_packed.json")
    old = json.load(open(path)) if os.path.exists(path) else []
    with open(path, "w") as f:
        json.dump(old + [rec], f, indent=1)
    print(rec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
