"""Report of the Fashion-MNIST QAT study (``benchmarks/qat.py``): tables, paired
differences with 95 % intervals, the targets, the range measurement, a plot."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

ANALYSIS_BEGIN, ANALYSIS_END = "<!-- analysis -->", "<!-- /analysis -->"
ORDER = ("w3", "w3a4", "long", "w2.5")
TITLES = {"w3": "Weight-only, 3 average bits", "w3a4": "W3/A4: separate weight and "
          "activation averages", "long": "Long run (Table-4 claim): weight-only, 3 bits",
          "w2.5": "Weight-only, 2.5 average bits"}


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int] | None:
    """Mean of ``a - b`` over common seeds and the 95 % t-interval half-width."""
    common = sorted(set(a) & set(b))
    if not common:
        return None
    d = [a[s] - b[s] for s in common]
    n = len(d)
    mean = sum(d) / n
    if n < 2:
        return mean, math.inf, n
    from scipy.stats import t

    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    return mean, float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n), n


def by_block(state: dict[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in state["runs"]:
        out[r["block"]][r["label"]].append(r)
    return out


def _accs(runs: list[dict[str, Any]]) -> dict[int, float]:
    return {r["seed"]: r["acc"] for r in runs}


def _fmt_p(p: tuple[float, float, int] | None) -> str:
    if p is None:
        return "n/a"
    hw = "n/a (1 seed)" if math.isinf(p[1]) else f"{p[1]:.2f}"
    return f"{p[0]:+.2f} ± {hw} (n={p[2]})"


def block_table(label_runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["| arm | seeds | top-1 % mean (sd) | weight bits | act bits | budget ok | "
             "s/run |", "|---|---|---|---|---|---|---|"]
    for label, runs in label_runs.items():
        accs = [r["acc"] for r in runs]
        m = sum(accs) / len(accs)
        sd = math.sqrt(sum((a - m) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 \
            else 0.0
        wb = max(r["use"]["weights"] for r in runs)
        ab = max((r["use"].get("acts", 0.0) for r in runs), default=0.0)
        oks = [r["budget_ok"] for r in runs]
        ok = "over (labelled)" if oks[0] is None else ("yes" if all(oks) else
                                                       f"NO ({oks.count(False)})")
        lines.append(f"| {label} | {len(runs)} | {m:.2f} ({sd:.2f}) | {wb:.3f} | "
                     f"{ab:.3f} | {ok} | "
                     f"{sum(r['seconds'] for r in runs) / len(runs):.0f} |"
                     .replace("| 0.000 |", "| float |"))
    return lines


def comparisons(block: str, label_runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    acc = {k: _accs(v) for k, v in label_runs.items()}
    lines = []
    if block == "long" and "post-training alloc" in acc:
        for k in acc:
            if k.startswith("QBitOpt"):
                lines.append(f"- {k} − post-training alloc: "
                             f"{_fmt_p(paired(acc[k], acc['post-training alloc']))}")
    qb = acc.get("QBitOpt 100%")
    if qb is not None:
        for k, v in acc.items():
            if k != "QBitOpt 100%" and not (block == "long" and k == "post-training alloc"):
                lines.append(f"- QBitOpt 100% − {k}: {_fmt_p(paired(qb, v))}")
    return lines


def targets(g: dict[str, dict[str, list]]) -> list[str]:
    out = []

    def p(block, a, b):
        la = g.get(block, {})
        if a not in la or not any(k == b for k in la):
            return None
        return paired(_accs(la[a]), _accs(la[b]))

    w3 = p("w3", "QBitOpt 100%", "uniform W3")
    if w3:
        met = w3[0] >= 0.5 and w3[0] - w3[1] > 0
        out.append(f"- Weight-only 3 bits, QBitOpt − uniform ≥ +0.5 with the 95 % interval "
                   f"above 0: **{'MET' if met else 'NOT MET'}** ({_fmt_p(w3)})")
    wa = p("w3a4", "QBitOpt 100%", "uniform W3/A4")
    if wa:
        out.append(f"- W3/A4, QBitOpt − uniform ≥ +1 point: "
                   f"**{'MET' if wa[0] >= 1 else 'NOT MET'}** ({_fmt_p(wa)})")
    for f in ("100%", "50%", "25%"):
        lg = p("long", f"QBitOpt {f}", "post-training alloc")
        if lg:
            resolved = lg[1] <= 0.3
            verdict = ("not resolved (half-width > 0.3)" if not resolved else
                       "reallocating wins" if lg[0] - lg[1] > 0 else
                       "allocating once wins" if lg[0] + lg[1] < 0 else
                       "no difference larger than ±0.3 points")
            out.append(f"- Table-4 claim, long run, QBitOpt {f} − post-training: "
                       f"{_fmt_p(lg)}: **{verdict}**")
    oc = p("w3", "QBitOpt 100%", "QBitOpt 100%, keep range")
    if oc:
        out.append(f"- on_change: recalibrate − keep range (w3, QBitOpt 100 %): {_fmt_p(oc)}")
    return out


def range_lines(state: dict[str, Any]) -> list[str]:
    rm = state.get("range_mse")
    if not rm:
        return ["(not measured)"]
    ch = ", ".join(f"{k}: {v[0]:.2f}x (max {v[1]:.2f}x)" for k, v in rm["by_change"].items())
    return [f"Weight MSE with the kept range over a fresh MSE range search after a one-bit "
            f"change, over the {rm['layers']} allocated layers of the folded model: median "
            f"{rm['median']:.2f}x, max {rm['max']:.2f}x. By change: {ch}."]


def ranges_log(state: dict[str, Any]) -> list[str]:
    runs = [r for r in state["runs"] if r["label"] == "QBitOpt 100%" and r["ranges"]]
    if not runs:
        return ["(no QBitOpt run yet)"]
    r = sorted(runs, key=lambda r: (ORDER.index(r["block"]), r["seed"]))[0]
    hist = {s: b for s, b in r["history"]}
    lines = [f"Block {r['block']}, seed {r['seed']}: bits and mean clipping range of each "
             f"group after each reallocation (step: bits/range).", "",
             "| group | " + " | ".join(str(s) for s, _ in r["ranges"]) + " |",
             "|---" * (1 + len(r["ranges"])) + "|"]
    for name in r["ranges"][0][1]:
        cells = [f"{hist[s][name]}/{rg[name]:.3f}" for s, rg in r["ranges"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_report(state: dict[str, Any], out: Path) -> None:
    md = out / "qat.md"
    old = ""
    if md.exists():
        text = md.read_text()
        if ANALYSIS_BEGIN in text and ANALYSIS_END in text:
            old = text[text.index(ANALYSIS_BEGIN):text.index(ANALYSIS_END) + len(ANALYSIS_END)]
    cfg = state.get("config") or {}
    g = by_block(state)
    total = sum(r["seconds"] for r in state["runs"])
    parts = ["# Fashion-MNIST QAT study: QBitOpt against uniform and post-training allocation",
             "", "Generated by `python -m benchmarks.qat` (resumable; `--report` rebuilds this "
             "file from `qat.json`)." + (" **Quick smoke configuration: not a result.**"
                                         if cfg.get("quick") else ""), "",
             "## Setup", "",
             f"- Data: Fashion-MNIST (Debian `dataset-fashion-mnist`), QAT on the fixed "
             f"{cfg.get('n_train')}-image training subset the float checkpoint was trained on; "
             f"test on {cfg.get('n_test') or 'the full 10000-image'} test set.",
             "- Model: `benchmarks/results/qat_float_mobilenetv2.pt` (MobileNetV2-style, 89.90 % "
             "float), BatchNorm folded (`bt.fold_batchnorm`), per-tensor LSQ weights, first "
             "and last layer at 8 bits outside the budgets; the network input at 8 bits.",
             f"- QAT: w3/w3a4/w2.5 {cfg.get('steps')} steps at batch {cfg.get('batch')}, tau "
             f"{cfg.get('every')}; long {cfg.get('long_steps')} steps at batch "
             f"{cfg.get('long_batch')}, tau {cfg.get('long_every')}. Weights SGD momentum 0.9 "
             f"lr {cfg.get('lr')} cosine; quantizer parameters Adam lr {cfg.get('qlr')}. "
             "Ranges MSE-calibrated for each arm's starting bits; QBitOpt re-runs the range "
             "search when a group's bits change (`on_change=\"recalibrate\"`) unless the arm "
             "says `keep range`. Solver `auto`. QBitOpt starts from the post-training "
             "allocation (FIT on the folded model at 8 bits, 16 batches of 128).",
             "- Budgets: size-weighted averages over the allocated weight groups and, in "
             "w3a4, separately over the allocated activation groups (sizes per sample), "
             "checked at every allocation of every run.",
             f"- Runs finished: {len(state['runs'])} "
             f"({total / 60:.0f} process-minutes, 1 thread each). Seeds per arm are in the "
             "tables; a study stopped early resumes from `qat.json`, and an arm with fewer "
             "than 5 seeds was not finished.", "",
             "## Targets", "", *(targets(g) or ["- (not enough runs)"]), ""]
    for block in ORDER:
        if block not in g:
            parts += [f"## {TITLES[block]}", "", "Not run.", ""]
            continue
        parts += [f"## {TITLES[block]}", "", *block_table(g[block]), "",
                  "Paired differences (same seed), mean ± 95 % half-width, points:", "",
                  *comparisons(block, g[block]), ""]
    parts += ["## Ranges after a bit change", "", *range_lines(state), "", *ranges_log(state),
              "", "![study](qat.png)", "", "## Analysis", "",
              old or f"{ANALYSIS_BEGIN}\n(to be written from the runs)\n{ANALYSIS_END}", ""]
    md.write_text("\n".join(parts))
    plot(state, out / "qat.png")


def plot(state: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = by_block(state)
    blocks = [b for b in ORDER if b in g]
    if not blocks:
        return
    fig, axes = plt.subplots(1, len(blocks), figsize=(4.2 * len(blocks), 4.2), squeeze=False)
    for ax, block in zip(axes[0], blocks):
        labels = list(g[block])
        for i, label in enumerate(labels):
            accs = [r["acc"] for r in g[block][label]]
            ax.scatter([i] * len(accs), accs, s=12, alpha=0.6)
            ax.plot([i - 0.3, i + 0.3], [sum(accs) / len(accs)] * 2, color="k")
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(TITLES[block], fontsize=8)
        ax.set_ylabel("top-1 % (dots: seeds, bar: mean)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
