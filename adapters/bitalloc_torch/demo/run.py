"""``bitalloc demo``: uniform precision against QBitOpt on scikit-learn's digits (no download).

Trains a small CNN (:class:`~bitalloc_torch.demo.models.DigitsCNN`) in float to
convergence, then runs QAT twice from that checkpoint with the same batches and
optimizers (:mod:`bitalloc_torch.demo.train`):

- **uniform**: every allocated layer at ``floor(budget)`` bits;
- **QBitOpt**: starts from a post-training FIT allocation under the budget and
  reallocates every ``--every`` steps from the FIT statistics of the QAT gradients.

The budget (``--budget``, default 3.0) is the size-weighted average weight bitwidth over
the *allocated* layers; the first and the last layer are kept at 8 bits and are outside
it (the table prints the average over all layers too). Activations are at ``--act-bits``
(8). Prints a table (accuracy, average bits, BOPs, per-layer bits) and writes
``bits_over_training.png`` and ``result.json`` to ``--out``. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` (used by ``bitalloc demo``)."""
    parser.add_argument("--bits", default="2,3,4,5,6,7,8",
                        help="candidate weight bitwidths, comma separated (default 2..8)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="average weight bits over the allocated layers (first/last "
                             "layer are at 8 bits, outside the budget); default 3.0")
    parser.add_argument("--act-bits", type=int, default=8, help="activation bits (default 8)")
    parser.add_argument("--steps", type=int, default=600, help="QAT steps per arm (600)")
    parser.add_argument("--every", type=int, default=None,
                        help="steps between reallocations (default steps/10)")
    parser.add_argument("--float-epochs", type=int, default=40,
                        help="most float epochs (early stopping usually ends sooner)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="demo_out", help="folder for the PNG and JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _bar(total: int, desc: str, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True,
                file=sys.stderr)


def _progress(bar):
    if bar is None:
        return None

    def cb(step: int, loss: float) -> None:
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")

    return cb


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qb = result["arms"]["qbitopt"]
    steps = [h[0] for h in qb["history"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    layers = list(qb["history"][0][1])
    for i, name in enumerate(layers):
        ys = [h[1][name] for h in qb["history"]]
        off = (i - (len(layers) - 1) / 2) * 0.04  # separate overlapping lines a little
        ax.step(steps, [y + off for y in ys], where="post", label=name, lw=1.8)
    ax.set_xlabel("QAT step")
    ax.set_ylabel("weight bits")
    ax.set_title(f"QBitOpt bits per layer over training (budget {result['budget']:g} "
                 f"average bits over the allocated layers; first/last fixed at 8)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(result: dict[str, Any]) -> str:
    arms = result["arms"]
    layers = list(arms["qbitopt"]["bits"])
    rows = [("arm", "top-1 %", "avg bits (alloc)", "avg bits (all)", "MBOPs", "budget ok")]
    for key in ("float", "uniform", "qbitopt"):
        a = arms[key]
        ok = "-" if key == "float" else ("yes" if a["budget_ok"] else "NO")
        bits = "32" if key == "float" else f"{a['avg_bits']:.3f}"
        bits_all = "32" if key == "float" else f"{a['avg_bits_all']:.3f}"
        rows.append((a["name"], f"{a['acc']:.2f}", bits, bits_all, f"{a['bops'] / 1e6:.1f}", ok))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    lines += ["", "per-layer weight bits (first and last layer fixed at 8, outside the budget):"]
    nw = max(len(n) for n in layers)
    lines.append(f"  {'layer'.ljust(nw)}  {'weights':>7}  uniform  qbitopt")
    for n in layers:
        lines.append(f"  {n.ljust(nw)}  {result['sizes'][n]:>7}  {arms['uniform']['bits'][n]:>7}"
                     f"  {arms['qbitopt']['bits'][n]:>7}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed ``args`` (see :func:`add_arguments`); returns an exit code."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    try:
        import torch
    except ImportError:
        print("bitalloc demo needs torch: pip install 'bitalloc[demo]'", file=sys.stderr)
        return 2
    import bitalloc_torch as bt
    from bitalloc_torch.demo.data import DataUnavailable, digits
    from bitalloc_torch.demo.models import DigitsCNN
    from bitalloc_torch.demo.train import Arm, Data, run_qat, train_float

    torch.set_num_threads(1)
    try:
        candidates = tuple(sorted({int(b) for b in str(args.bits).split(",") if b.strip()}))
    except ValueError:
        print(f"--bits: expected comma-separated integers, got {args.bits!r}", file=sys.stderr)
        return 2
    budget = float(args.budget)
    if not candidates or budget < min(candidates) or args.steps < 1:
        print(f"--budget {budget:g} must be at least the smallest candidate {candidates} "
              f"and --steps positive", file=sys.stderr)
        return 2
    ubits = math.floor(budget)
    if ubits not in candidates:
        ubits = max(b for b in candidates if b <= budget)
    every = args.every or max(1, args.steps // 10)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        xtr, ytr, xte, yte = digits(args.seed)
    except DataUnavailable as e:
        print(str(e), file=sys.stderr)
        return 2
    n_val = len(ytr) // 5
    data = Data(xtr[n_val:], ytr[n_val:], xtr[:n_val], ytr[:n_val], xte, yte)
    say = (lambda *a: None) if args.quiet else (lambda s: print(s, flush=True))
    print(f"bitalloc demo: scikit-learn digits ({len(data.y_train)} train / {n_val} val / "
          f"{len(yte)} test images, 8x8), DigitsCNN; budget {budget:g} average weight bits "
          f"over the allocated layers, {args.act_bits}-bit activations, candidates "
          f"{list(candidates)}, {args.steps} QAT steps per arm, reallocation every {every}.",
          flush=True)

    torch.manual_seed(args.seed)
    model = DigitsCNN()
    info = train_float(model, data, batch=64, max_epochs=args.float_epochs, patience=6,
                       seed=args.seed, log=None if args.quiet else say)
    print(f"float model: {info['test_acc']:.2f}% test after {info['epochs']} epochs "
          f"({info['stopped']}, {info['seconds']:.1f} s)", flush=True)

    common = dict(steps=args.steps, every=every, candidates=candidates, act_bits=args.act_bits,
                  batch=64, lr=0.01, seed=args.seed, fit_batches=8, bn_batches=10)
    arms: dict[str, Any] = {}
    res = run_qat(model, data, Arm("float"), **common)
    res["name"] = "float"
    arms["float"] = res
    for key, arm in (("uniform", Arm("uniform", budget=budget, bits=ubits)),
                     ("qbitopt", Arm("qbitopt", budget=budget, fraction=1.0))):
        bar = _bar(args.steps, f"QAT {key}", args.quiet)
        res = run_qat(model, data, arm, progress=_progress(bar), **common)
        if bar is not None:
            bar.close()
        res["name"] = f"uniform {ubits}-bit" if key == "uniform" else "QBitOpt"
        arms[key] = res
        print(f"{res['name']}: {res['acc']:.2f}% test, average bits {res['avg_bits']:.3f} "
              f"(allocated layers) / {res['avg_bits_all']:.3f} (all), "
              f"{res['seconds']:.1f} s", flush=True)

    layers = bt.quantized_layers(bt.quantize_model(DigitsCNN()))
    result = {"budget": budget, "act_bits": args.act_bits, "candidates": list(candidates),
              "steps": args.steps, "every": every, "seed": args.seed,
              "float_training": {k: v for k, v in info.items() if k != "history"},
              "sizes": {n: m.weight.numel() for n, m in layers.items()},
              "arms": arms, "seconds": time.perf_counter() - t0}
    ok = all(arms[k]["budget_ok"] for k in ("uniform", "qbitopt"))
    print()
    print(_table(result))
    d = arms["qbitopt"]["acc"] - arms["uniform"]["acc"]
    print(f"\nQBitOpt - uniform: {d:+.2f} points at {budget:g} average bits "
          f"({len(arms['qbitopt']['reallocations'])} reallocations); budget "
          f"{'holds' if ok else 'BROKEN'} in every allocation. ({len(yte)} test images: one "
          f"image is {100 / len(yte):.2f} points; see benchmarks/results/qat.md for seeds.)")
    _plot(result, out / "bits_over_training.png")
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'bits_over_training.png'} and {out / 'result.json'} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m bitalloc_torch.demo.run [options]``."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="bitalloc demo", description=__doc__.split("\n\n")[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
