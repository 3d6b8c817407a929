"""The QAT study's 3-bit weight-only arms (uniform, QBitOpt) with a framework's quantizers.

Issue 10, item 5 asks for the Fashion-MNIST study's 3-bit arms "with torchao's
quantizers". torchao 0.18 QAT quantizes only ``nn.Linear``/``nn.Embedding``
(``QATConfig`` raises "does not have QAT support" for ``nn.Conv2d``), and the study's
networks are convolutional with the one Linear layer (the classifier) kept at 8 bits
outside the budget, so there is no torchao arm to run on them. This script runs the
same two arms with **Brevitas**' quantizers instead (``brevitas.nn.QuantConv2d`` /
``QuantLinear`` by ``layerwise_quantize``, per-channel float-scale weights from the
weights' abs-max, weight-only), reusing the study's data and float checkpoint
(:func:`benchmarks.qat.load_data`, :func:`benchmarks.qat.make_net`) and recipe pieces
(:mod:`bitalloc_torch.demo.train`: batches, BatchNorm re-estimation, evaluation):
200 steps at batch 128, SGD momentum 0.9 lr 0.01 cosine, first/last layer at 8 bits,
tau = 20, greedy, FIT from the QAT gradients. QBitOpt starts from uniform 3 bits (no
post-training allocation step).

Run ``python -m benchmarks.qat_frameworks [--seeds 0,1]``; writes
``benchmarks/results/qat_frameworks.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _brevitas_model(float_model):
    import copy

    import brevitas.nn as qnn
    from brevitas.graph.quantize import layerwise_quantize
    from brevitas.quant import Int8WeightPerChannelFloat
    from torch import nn

    kw = {"weight_quant": Int8WeightPerChannelFloat, "input_quant": None,
          "return_quant_tensor": False}
    layer_map = {nn.Conv2d: (qnn.QuantConv2d, kw), nn.Linear: (qnn.QuantLinear, kw)}
    return layerwise_quantize(copy.deepcopy(float_model), compute_layer_map=layer_map)


def run_arm(float_model, data, kind: str, *, seed: int, steps: int = 200, every: int = 20,
            budget: float = 3.0, batch: int = 128, lr: float = 0.01) -> dict:
    """One QAT run with Brevitas quantizers: ``kind`` is ``"uniform"`` or ``"qbitopt"``."""
    import torch
    import torch.nn.functional as F

    import bitalloc as ba
    import bitalloc_torch as bt
    from bitalloc_torch.demo.train import batches, evaluate, reestimate_bn

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = _brevitas_model(float_model)
    targets = bt.find_targets(model)
    first, last = targets[0].name, targets[-1].name
    inner = [t for t in targets if t.name not in (first, last)]
    for t in inner:
        t.quantizer.set_bits(3)
    qb = None
    if kind == "qbitopt":
        qb = bt.QBitOpt(model, [ba.AverageBits(budget)], bits=(2, 3, 4, 5, 6, 7, 8),
                        every=every, exclude=[first, last], freeze_after=steps - 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    it = batches(data.x_train, data.y_train, batch, torch.Generator().manual_seed(seed))
    sizes = {t.name: t.weight.numel() for t in inner}

    def avg_bits():
        return sum(t.quantizer.bits * sizes[t.name] for t in inner) / sum(sizes.values())

    worst = avg_bits()
    model.train()
    for _ in range(steps):
        xb, yb = next(it)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if qb is not None and qb.step() is not None:
            worst = max(worst, avg_bits())
        opt.step()
        sched.step()
    reestimate_bn(model, data.x_train, 20, seed=seed)
    return {"kind": kind, "seed": seed, "acc": evaluate(model, data.x_test, data.y_test),
            "avg_bits": avg_bits(), "max_avg_bits_seen": worst,
            "budget_ok": worst <= budget + 1e-9,
            "bits": {t.name: t.quantizer.bits for t in targets},
            "reallocations": 0 if qb is None else len(qb.history),
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from benchmarks.qat import load_data, make_net

    torch.set_num_threads(1)
    data = load_data(20000, 5000, None)
    float_model = make_net("mobilenetv2")
    ckpt = RESULTS / "qat_float_mobilenetv2.pt"
    float_model.load_state_dict(torch.load(ckpt, weights_only=True))
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for kind in ("uniform", "qbitopt"):
            r = run_arm(float_model, data, kind, seed=seed, steps=args.steps,
                        every=max(1, args.steps // 10))
            print(json.dumps({k: v for k, v in r.items() if k != "bits"}), flush=True)
            runs.append(r)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qat_frameworks.json").write_text(json.dumps(runs, indent=1))
    lines = ["# QAT study, 3-bit weight-only arms with Brevitas quantizers (MobileNetV2-style)",
             "", "Generated by `python -m benchmarks.qat_frameworks` (see its docstring: why "
             "Brevitas and not torchao).", "",
             "| arm | seed | top-1 % | avg bits (allocated) | max avg bits at any "
             "reallocation | reallocations | s/run |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        label = "uniform 3-bit" if r["kind"] == "uniform" else "QBitOpt (100% realloc)"
        lines.append(f"| {label} | {r['seed']} | {r['acc']:.2f} | {r['avg_bits']:.3f} | "
                     f"{r['max_avg_bits_seen']:.3f} | {r['reallocations']} | "
                     f"{r['seconds']:.0f} |")
    (args.out / "qat_frameworks.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
