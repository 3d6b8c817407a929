"""The same SmolLM2-135M allocation packed by AutoRound, loaded back, perplexity measured.

``python -m benchmarks.llm_autoround [--budget static]`` reads
``results/llm_alloc_<budget>.autoround.json`` (written by ``benchmarks.llm``), runs
``AutoRound(model, tok, layer_config=..., iters=0)`` (round-to-nearest, packed int32
``auto_round`` checkpoint), loads it back with transformers and measures perplexity on
the same held-out tokens. Appends one JSON record to ``results/llm_autoround.json``.
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="static", help="which llm_alloc_<budget> to pack")
    p.add_argument("--eval", type=int, default=12)
    p.add_argument("--calib", type=int, default=12)
    p.add_argument("--seq", type=int, default=512)
    args = p.parse_args(argv)
    from auto_round import AutoRound
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    with open(os.path.join(RESULTS, f"llm_alloc_{args.budget}.autoround.json")) as f:
        layer_config = json.load(f)
    model, tok = lm.load_model(lm.gguf_path())
    _, held = lm.corpus_tokens(tok, args.seq, args.calib, args.eval)
    with tempfile.TemporaryDirectory() as tmp:
        ar = AutoRound(model, tokenizer=tok, bits=4, group_size=32, sym=True,
                       layer_config=layer_config, iters=0, disable_opt_rtn=True)
        ar.quantize_and_save(tmp, format="auto_round")
        cfg = glob.glob(os.path.join(tmp, "**", "config.json"), recursive=True)[0]
        folder = os.path.dirname(cfg)
        size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(folder, "*.safetensors")))
        q = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu").eval()
        mods = dict(q.named_modules())
        bits_ok = all(mods[n].bits == c["bits"] for n, c in layer_config.items())
        ppl = lm.perplexity(q, held)
    rec = {"budget": args.budget, "perplexity": ppl, "safetensors_bytes": size,
           "bits_match_layer_config": bits_ok, "seconds": time.time() - t0}
    path = os.path.join(RESULTS, "llm_autoround.json")
    old = json.load(open(path)) if os.path.exists(path) else []
    with open(path, "w") as f:
        json.dump(old + [rec], f, indent=1)
    print(rec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
