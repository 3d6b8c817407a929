"""QAT step cost: fake quantization against the float step (issue 12), and QBitOpt's overhead.

Part ``step`` (issue 12, target: a QAT step with weight AND activation fake quantization
at most 1.3x the float step): the same model trained in float and as a QAT model
(``quantize_model``: 8-bit per-channel weights, 8-bit asymmetric activations) on each
fake-quant backend (``native``, what the default ``"auto"`` runs on CPU; ``fused``, its
eager fallback; ``reference``, plain autograd; ``torch``, torch's learnable fake-quant
kernels), on the MobileNetV2-style net of the demo and a
small transformer block. A step is forward, loss, backward and the optimizer steps (SGD
for weights, Adam 1e-5 for quantizer parameters). The variants run interleaved in
rounds of a few steps with a rotating order, so load on the shared machine hits all of
them alike; the table gives median step times and the ratio to the float step (median
over rounds of the per-round ratio), all from the same run.

Part ``p4``: wall-time overhead of QBitOpt inside QAT (target P4: at most 2 %).

Trains the same QAT loop in two variants per repeat, on the same model, data and
optimizers (SGD for weights, Adam 1e-5 for quantizer parameters, as in the paper):

- ``fixed``: the bits QBitOpt starts from, never changed;
- ``qbitopt``: the same plus ``qb.step()`` after every backward, reallocating every
  ``every`` steps (FIT accumulation every step, solve + apply at each reallocation).

Two figures, each the median over repeats:

1. **In-run share** (the P4 figure): the wall time spent inside ``qb.step()`` divided by
   the rest of the same training loop, i.e. ``(loop with QBitOpt) / (same loop without
   its QBitOpt calls) - 1``, measured in the same run. It is immune to machine noise and
   to how the chosen bits change the rest of training.
2. **End to end**: both variants trained side by side in one process, in alternating
   chunks of 5 steps (ABBA order) so drift hits both alike; ratio of their loop wall
   times (and thread CPU times). On a shared machine this carries a few % of noise, and
   it also includes any effect of the different bits on the speed of the rest of the
   step (none is expected on accelerators: fake quantization costs the same at any bits).

Setup (model build, MAC pass, the initial solve) is outside the timed loop and reported
separately. Run: ``python -m benchmarks.qat_overhead`` (about 5 minutes on 2 CPU cores;
``--part step`` or ``--part p4`` for one part); ``--quick`` for a smoke run. Writes
``benchmarks/results/qat_overhead.md`` (a part run alone replaces only its own section).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt

from .qat_overhead_step import STEP_TITLE, run_step, step_report

RESULTS = Path(__file__).resolve().parent / "results" / "qat_overhead.md"
BITS = (2, 3, 4, 5, 6, 7, 8)


def make_model(width: int = 32) -> nn.Module:
    """A small CIFAR-style CNN (8 conv layers incl. depthwise, one linear)."""
    torch.manual_seed(0)
    w = width

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    layers = [nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
    layers += block(w, w, 1) + block(w, 2 * w, 2) + block(2 * w, 2 * w, 1) + block(2 * w, 4 * w, 2)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 10)]
    return nn.Sequential(*layers)


def make_data(steps: int, batch: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(batch, 3, size, size, generator=g),
             torch.randint(0, 10, (batch,), generator=g)) for _ in range(steps)]


def build(data, budget: float, every: int, with_qbitopt: bool):
    """Fresh quantized model, optimizers and (optionally) QBitOpt; returns them + setup time."""
    t0 = time.perf_counter()
    model = bt.quantize_model(make_model())
    qb = bt.QBitOpt(model, [ba.AverageBits(budget)], bits=BITS, every=every)
    bt.calibrate(model, [data[0][0]])  # after the initial allocation: steps fit those bits
    if not with_qbitopt:
        qb.remove()
        qb = None  # same starting bits, never reallocated
    weights, qparams = bt.param_groups(model)
    opt_w = torch.optim.SGD(weights, lr=0.01, momentum=0.9)
    opt_q = torch.optim.Adam(qparams, lr=1e-5)
    model.train()
    return model, qb, opt_w, opt_q, time.perf_counter() - t0


class Run:
    """One variant's model, optimizers and QBitOpt, stepped chunk by chunk."""

    def __init__(self, data, budget: float, every: int, with_qbitopt: bool) -> None:
        self.model, self.qb, self.opt_w, self.opt_q, self.setup = build(
            data, budget, every, with_qbitopt)
        self.data, self.pos = data, 0
        self.wall = self.cpu = self.in_qbitopt = 0.0
        self.loss_fn = nn.CrossEntropyLoss()

    def advance(self, n: int, timed: bool = True) -> None:
        """Train ``n`` more steps (the user's loop), adding their times if ``timed``."""
        t0, c0, inside = time.perf_counter(), time.thread_time(), 0.0
        for x, y in self.data[self.pos:self.pos + n]:
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            if self.qb is not None:
                q0 = time.perf_counter()
                self.qb.step()
                inside += time.perf_counter() - q0
            self.opt_w.step()
            self.opt_q.step()
            self.opt_w.zero_grad(set_to_none=True)
            self.opt_q.zero_grad(set_to_none=True)
        self.pos += n
        if timed:
            self.wall += time.perf_counter() - t0
            self.cpu += time.thread_time() - c0
            self.in_qbitopt += inside


def step_cost(run: Run, n: int = 200) -> float:
    """Mean seconds of one FIT accumulation in a tight loop (warm caches) on real gradients."""
    x, y = run.data[0]
    run.loss_fn(run.model(x), y).backward()
    acc = run.qb._acc
    t0 = time.perf_counter()
    for _ in range(n):
        acc.accumulate()
    seconds = (time.perf_counter() - t0) / n
    run.model.zero_grad(set_to_none=True)
    return seconds


def run(steps: int, repeats: int, every: int, batch: int, size: int, budget: float,
        warmup: int = 10, chunk: int = 5) -> dict:
    """Fresh models each repeat, both variants trained in alternating chunks (ABBA)."""
    data = make_data(steps + warmup, batch, size)
    out = {"wall": {"fixed": [], "qbitopt": []}, "cpu": {"fixed": [], "qbitopt": []},
           "share": [], "solves": [], "setups": {"fixed": [], "qbitopt": []}}
    for rep in range(repeats):
        kinds = ("fixed", "qbitopt") if rep % 2 == 0 else ("qbitopt", "fixed")
        runs = {k: Run(data, budget, every, k == "qbitopt") for k in kinds}
        for r in runs.values():
            r.advance(warmup, timed=False)
        for c in range(0, steps, chunk):
            for kind in kinds if (c // chunk) % 2 == 0 else kinds[::-1]:
                runs[kind].advance(min(chunk, steps - c))
        for kind, r in runs.items():
            out["wall"][kind].append(r.wall)
            out["cpu"][kind].append(r.cpu)
            out["setups"][kind].append(r.setup)
        q = runs["qbitopt"]
        out["share"].append(q.in_qbitopt / (q.wall - q.in_qbitopt))
        out["solves"] += [h.seconds for h in q.qb.history]
    qb = runs["qbitopt"].qb
    out.update(reallocations=len(qb.history), groups=len(qb.names),
               step_cost=step_cost(runs["qbitopt"]),
               steps=steps, repeats=repeats, every=every, batch=batch, size=size,
               budget=budget, chunk=chunk, final_bits=qb.bits)
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.2f} %"


def report(res: dict) -> str:
    wall = {k: statistics.median(v) for k, v in res["wall"].items()}
    cpu = {k: statistics.median(v) for k, v in res["cpu"].items()}
    e2e = [q / f - 1 for q, f in zip(res["wall"]["qbitopt"], res["wall"]["fixed"])]
    e2e_cpu = [q / f - 1 for q, f in zip(res["cpu"]["qbitopt"], res["cpu"]["fixed"])]
    share = statistics.median(res["share"])
    ms = 1e3 * wall["fixed"] / res["steps"]
    lines = [
        "# QAT overhead of QBitOpt (P4: at most 2 %)", "",
        f"Small CNN ({res['groups']} quantized layers: convs incl. depthwise, one linear), "
        f"batch {res['batch']}, {res['size']}x{res['size']} inputs, CPU, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s). {res['steps']} timed steps "
        f"per run, QBitOpt every={res['every']} ({res['reallocations']} reallocations per run), "
        f"AverageBits({res['budget']}), bits {BITS}, greedy; {res['repeats']} repeats, both "
        f"variants trained side by side in alternating chunks of {res['chunk']} steps (ABBA).",
        "",
        "| variant | median wall (s) | ms / step | median thread CPU (s) | wall per repeat (s) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for k in ("fixed", "qbitopt"):
        runs = ", ".join(f"{t:.2f}" for t in res["wall"][k])
        lines.append(f"| {k} | {wall[k]:.3f} | {1e3 * wall[k] / res['steps']:.2f} | "
                     f"{cpu[k]:.3f} | {runs} |")
    lines += [
        "",
        f"**P4, in-run overhead (time inside `qb.step()` / rest of the same loop, median): "
        f"{_pct(share)}** (per repeat: {', '.join(_pct(x) for x in res['share'])}).",
        "",
        f"End to end, QBitOpt run vs fixed-bits run: wall {_pct(statistics.median(e2e))} "
        f"(per repeat: {', '.join(_pct(x) for x in e2e)}), thread CPU "
        f"{_pct(statistics.median(e2e_cpu))}; this includes machine noise (a shared 2-core "
        f"machine) and the effect of different bits on the rest of the step.",
        "",
        f"- FIT accumulation per step: {1e6 * res['step_cost']:.0f} us in a tight loop "
        f"({100 * 1e3 * res['step_cost'] / ms:.2f} % of a {ms:.1f} ms step); inside the "
        f"loop, right after backward, the same call takes longer (cold caches), which the "
        f"in-run share above includes.",
        f"- One reallocation (statistics, solve, apply): median "
        f"{1e3 * statistics.median(res['solves']):.1f} ms, max {1e3 * max(res['solves']):.1f} ms "
        f"(once per {res['every']} steps).",
        f"- Setup outside the loop (quantize, QBitOpt with MAC pass and initial solve, "
        f"calibrate): {statistics.median(res['setups']['qbitopt']):.2f} s.",
        f"- Final bits of the last run: {res['final_bits']}.",
        "", "Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.qat_overhead`.", "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500, help="timed steps per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=16, help="input height and width")
    ap.add_argument("--budget", type=float, default=4.0, help="AverageBits limit")
    ap.add_argument("--chunk", type=int, default=5, help="steps per alternating chunk")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run, no results file")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="results file (a folder: qat_overhead.md inside it)")
    ap.add_argument("--part", choices=("all", "step", "p4"), default="all")
    ap.add_argument("--rounds", type=int, default=15, help="step part: interleaved rounds")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.out.is_dir():
        args.out = args.out / RESULTS.name
    sections = _sections(args.out) if args.out.exists() else {}
    if args.part in ("all", "step"):
        res = run_step(rounds=3 if args.quick else args.rounds, per_round=2 if args.quick else 4)
        sections["step"] = step_report(res)
        print(sections["step"])
    if args.part in ("all", "p4"):
        if args.quick:
            args.steps, args.repeats, args.every, args.chunk = 20, 2, 10, 5
        res = run(args.steps, args.repeats, args.every, args.batch, args.size, args.budget,
                  chunk=args.chunk)
        sections["p4"] = report(res)
        print(sections["p4"])
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(sections[k] for k in ("step", "p4") if k in sections))


def _sections(path: Path) -> dict[str, str]:
    """The results file split into its two parts (each starts with its ``# `` title)."""
    text = path.read_text()
    at = text.find(STEP_TITLE)
    if at < 0:
        return {"p4": text}
    p4 = text.find("# QAT overhead of QBitOpt")
    if p4 < at:
        return {"step": text[at:], "p4": text[:at]} if p4 >= 0 else {"step": text[at:]}
    return {"step": text[at:p4], "p4": text[p4:]}


if __name__ == "__main__":
    main()
