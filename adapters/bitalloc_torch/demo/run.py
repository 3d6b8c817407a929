"""``bitalloc demo``: uniform precision against bitalloc's allocation on real Fashion-MNIST.

The shipped float checkpoint of a MobileNetV2-style network
(``mobilenetv2_fashion.pt``; reproduce it with ``python -m benchmarks.qat --train-float``)
is loaded and its BatchNorms folded (:func:`bitalloc_torch.fold_batchnorm`); weights are
quantized per tensor, activations at 8 bits (``--act-bits``). The first and last layer
stay at 8 bits, outside the budget; the budget (``--budget``, 3.0) is the size-weighted
average weight bitwidth of the other layers. The recipe is
:mod:`bitalloc_torch.demo.recipe`.

- **Part 1, post-training**: every allocated layer at ``floor(budget)`` bits against the
  FIT allocation (Fisher trace x range**2 on the 8-bit model, solved once by bitalloc at
  the same budget); both calibrated on the same images, no training.
- **Part 2, QAT** from the same checkpoint with the same batches and optimizers: uniform
  against :class:`bitalloc_torch.QBitOpt` (starts from the Part-1 allocation, reallocates
  every ``--every`` steps, ranges re-searched when bits change).

Prints a table, writes ``demo.png`` (bits over training, accuracies) and ``result.json``
(``ptq.uniform.acc``, ``ptq.allocated.acc``, ``arms.uniform.acc``, ``arms.qbitopt.acc``,
``budget_ok`` of every arm) to ``--out``. Test accuracy on the full 10k test set
(``--test-images`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "main", "CHECKPOINT"]

CHECKPOINT = Path(__file__).resolve().parent / "mobilenetv2_fashion.pt"
INSTALL = "apt-get install -y dataset-fashion-mnist"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` (used by ``bitalloc demo``)."""
    parser.add_argument("--bits", default="2,3,4,5,6,7,8",
                        help="candidate weight bitwidths, comma separated (default 2..8)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="average weight bits over the allocated layers (default 3.0)")
    parser.add_argument("--act-bits", type=int, default=8, help="activation bits (default 8)")
    parser.add_argument("--steps", type=int, default=200, help="QAT steps per arm (200)")
    parser.add_argument("--every", type=int, default=20, help="steps between reallocations")
    parser.add_argument("--batch", type=int, default=64, help="QAT batch size (64)")
    parser.add_argument("--test-images", type=int, default=None,
                        help="evaluate on the first N test images (default all 10000)")
    parser.add_argument("--train-images", type=int, default=None,
                        help="use the first N training images of the subset (default all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
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


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qb = result["arms"]["qbitopt"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    steps = [h[0] for h in qb["history"]]
    for name in qb["history"][0][1]:
        ax.step(steps, [h[1][name] for h in qb["history"]], where="post", lw=1.4, label=name)
    ax.set_xlabel("QAT step")
    ax.set_ylabel("weight bits")
    ax.set_title(f"QBitOpt: bits per layer over training (budget {result['budget']:g} average "
                 "bits)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2, loc="best")
    names = ["PTQ uniform", "PTQ allocated", "QAT uniform", "QAT QBitOpt"]
    accs = [result["ptq"]["uniform"]["acc"], result["ptq"]["allocated"]["acc"],
            result["arms"]["uniform"]["acc"], result["arms"]["qbitopt"]["acc"]]
    bx.bar(names, accs, color=["tab:gray", "tab:orange", "tab:gray", "tab:blue"])
    for i, a in enumerate(accs):
        bx.text(i, a + 0.5, f"{a:.2f}", ha="center", fontsize=8)
    bx.axhline(result["float"]["acc"], color="k", ls="--", lw=1, label="float")
    bx.set_ylim(max(0.0, min(accs) - 10), 100)
    bx.set_ylabel(f"top-1 % ({result['n_test']} test images)")
    bx.set_title("accuracy at the same budget", fontsize=9)
    bx.tick_params(axis="x", labelsize=7)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (printed and used by the README)."""
    p, a = result["ptq"], result["arms"]
    b = result["budget"]
    rows = [("float (BN folded)", f"{result['float']['acc']:.2f}", "32", "-"),
            (f"post-training, uniform {p['uniform']['wbits']}-bit", f"{p['uniform']['acc']:.2f}",
             f"{p['uniform']['use']:.3f}", _ok(p["uniform"])),
            ("post-training, bitalloc (FIT)", f"{p['allocated']['acc']:.2f}",
             f"{p['allocated']['use']:.3f}", _ok(p["allocated"])),
            (f"QAT, uniform {p['uniform']['wbits']}-bit", f"{a['uniform']['acc']:.2f}",
             f"{a['uniform']['use']['weights']:.3f}", _ok(a["uniform"])),
            ("QAT, QBitOpt", f"{a['qbitopt']['acc']:.2f}",
             f"{a['qbitopt']['use']['weights']:.3f}", _ok(a["qbitopt"]))]
    head = ("arm", "top-1 %", f"avg weight bits (budget {b:g})", "budget ok")
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ok(arm: dict[str, Any]) -> str:
    return "yes" if arm["budget_ok"] else "NO"


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed ``args`` (see :func:`add_arguments`); returns an exit code."""
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    t0 = time.perf_counter()
    try:
        import torch
    except ImportError:
        print("bitalloc demo needs torch: pip install 'bitalloc[demo]'", file=sys.stderr)
        return 2
    from bitalloc_torch.demo import recipe as R
    from bitalloc_torch.demo.data import DataUnavailable, fashion_mnist
    from bitalloc_torch.demo.models import TinyMobileNetV2
    from bitalloc_torch.demo.train import Data, evaluate

    torch.set_num_threads(max(1, args.threads))
    try:
        candidates = tuple(sorted({int(b) for b in str(args.bits).split(",") if b.strip()}))
    except ValueError:
        print(f"--bits: expected comma-separated integers, got {args.bits!r}", file=sys.stderr)
        return 2
    budget = R.Budget(float(args.budget))
    wbits = R.uniform_bits(budget)[0]
    if not candidates or wbits not in candidates or args.steps < 1 or args.every < 1:
        print(f"--budget {budget.weights:g}: its floor must be a candidate of --bits "
              f"{list(candidates)}; --steps and --every must be positive", file=sys.stderr)
        return 2
    try:
        xtr, ytr, xte, yte = fashion_mnist()
    except DataUnavailable as e:
        print(f"{e}\nInstall it with `{INSTALL}` (as root; `make demo` does this itself).",
              file=sys.stderr)
        return 2
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))[:20000]
    if args.train_images:
        perm = perm[:args.train_images]
    n_test = min(args.test_images or len(yte), len(yte))
    data = Data(xtr[perm].contiguous(), ytr[perm], xtr[:0], ytr[:0], xte[:n_test], yte[:n_test])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"bitalloc demo: Fashion-MNIST ({len(data.y_train)} training images, {n_test} test "
          f"images), MobileNetV2-style net with BatchNorm folded, per-tensor weights, "
          f"{args.act_bits}-bit activations; budget {budget.weights:g} average weight bits over "
          f"the allocated layers (first/last at 8), candidates {list(candidates)}.", flush=True)
    model = R.load_folded(TinyMobileNetV2(), str(CHECKPOINT))
    result: dict[str, Any] = {"budget": budget.weights, "act_bits": args.act_bits,
                              "candidates": list(candidates), "steps": args.steps,
                              "every": args.every, "batch": args.batch, "seed": args.seed,
                              "n_test": n_test, "float": {"acc": evaluate(model, data.x_test,
                                                                          data.y_test)}}
    # Part 1: post-training
    common = dict(seed=args.seed, act_bits=args.act_bits)
    alloc, _ = R.fit_allocation(model, data, budget, candidates=candidates, **common)
    q, fixed = R.prepare(model, args.act_bits)
    groups = R.groups_of(q, fixed, False, data.x_train[:1])
    ubits = {n: wbits for n in groups.names}
    ptq = {}
    for key, bits in (("uniform", ubits), ("allocated", alloc)):
        chk = R.budget_check(bits, groups, budget)
        ptq[key] = {"acc": R.ptq(model, data, bits, **common), "bits": bits,
                    "use": chk["weights"], "budget_ok": chk["ok"], "wbits": wbits}
    result["ptq"] = ptq
    print(f"Part 1, post-training: uniform {wbits}-bit {ptq['uniform']['acc']:.2f}%, "
          f"FIT-allocated {ptq['allocated']['acc']:.2f}% "
          f"({ptq['allocated']['acc'] - ptq['uniform']['acc']:+.2f} points)", flush=True)
    # Part 2: QAT, same checkpoint and batches
    arms = {}
    for key, arm in (("uniform", R.Arm("uniform")), ("qbitopt", R.Arm("qbitopt", 1.0))):
        bar = _bar(args.steps, f"QAT {key}", args.quiet)
        res = R.run_qat(model, data, arm, budget, steps=args.steps, every=args.every,
                        batch=args.batch, candidates=candidates, pta=alloc,
                        progress=None if bar is None else (lambda s, loss, b=bar: b.update(1)),
                        **common)
        if bar is not None:
            bar.close()
        arms[key] = res
    result["arms"] = arms
    print(f"Part 2, QAT ({args.steps} steps, batch {args.batch}): uniform {wbits}-bit "
          f"{arms['uniform']['acc']:.2f}%, QBitOpt {arms['qbitopt']['acc']:.2f}% "
          f"({arms['qbitopt']['acc'] - arms['uniform']['acc']:+.2f} points, "
          f"{len(arms['qbitopt']['ranges'])} reallocations)", flush=True)
    ok = all(a["budget_ok"] for a in (*ptq.values(), *arms.values()))
    result["budget_ok"] = ok
    result["seconds"] = time.perf_counter() - t0
    print()
    print(table(result))
    print(f"\nbudget {'holds' if ok else 'BROKEN'} for every arm and every allocation; "
          f"{n_test} test images (one image = {100 / n_test:.2f} points); seeds and intervals: "
          f"benchmarks/results/qat.md.")
    _plot(result, out / "demo.png")
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'demo.png'} and {out / 'result.json'} ({result['seconds']:.0f} s)")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m bitalloc_torch.demo.run [options]``."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="bitalloc demo", description=__doc__.split("\n\n")[0]))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
