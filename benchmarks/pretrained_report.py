"""Tables and plots of :mod:`benchmarks.pretrained` (``pretrained.md`` / ``pretrained.png``).

The markdown is ``HEADER`` (setup), the measured tables, and ``ANALYSIS``, the
interpretation written by hand after looking at the full run (left out in quick mode);
both texts live in :mod:`benchmarks.pretrained_text`.
"""

from __future__ import annotations

from pathlib import Path

from .pretrained_text import ANALYSIS, HEADER

__all__ = ["write_report", "tables_md", "headline_md", "paired_md", "rounds_md", "HEADER",
           "ANALYSIS"]

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


def paired_md(results: dict) -> str:
    """Per-input paired differences with 95 % bootstrap intervals (``pretrained_diag --paired``)."""
    paired = results.get("paired")
    if not paired:
        return ""
    cols = ("FIT-δ - uniform", "FIT-δ + BC - uniform + BC", "uniform + BC - FIT-δ")
    lines = ["### Paired differences per input (95 % bootstrap intervals)", "",
             "Per held-out input, the difference of the primary metric between two arms, "
             "mean [2.5 %, 97.5 %] over 10 000 bootstrap resamples of the inputs "
             "(`python -m benchmarks.pretrained_diag --paired`, re-quantizing exactly as the "
             "run: the recomputed means differ from the tables by at most "
             + ", ".join(f"{paired[k]['reproduced']:.0e} ({MODELS[k][0]})"
                         for k in MODELS if k in paired)
             + "). KL: negative = the first arm is closer to float; cosine: positive.", "",
             "| model, metric | avg bits | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for key in MODELS:
        entry = paired.get(key)
        if not entry:
            continue
        for budget, row in entry.items():
            if not isinstance(row, dict) or cols[0] not in row:
                continue
            cells = [f"{row[c]['mean']:+.4f} [{row[c]['lo']:+.4f}, {row[c]['hi']:+.4f}]"
                     for c in cols]
            lines.append(f"| {MODELS[key][0]}, {entry['metric']} ({row[cols[0]]['n']} inputs) "
                         f"| {budget} | " + " | ".join(cells) + " |")
    lines += ["", f"Seconds: {paired['seconds']:.0f}.", ""]
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
             headline_md(results), paired_md(results), rounds_md(results), tables_md(results),
             diagnostics_md(results), "![fidelity vs bits](pretrained.png)", ""]
    if not results["quick"]:
        parts.append(ANALYSIS)
    (out_dir / "pretrained.md").write_text("\n".join(parts) + "\n")
