"""Part ``step`` of ``python -m benchmarks.qat_overhead``: the QAT step against the float step.

See the docstring of :mod:`benchmarks.qat_overhead`. Each model is built once in float;
every variant trains its own deep copy (same weights), the QAT variants calibrated on
the same batch. One round runs ``per_round`` steps of every variant, the order rotating
from round to round; the first round is warm-up and not counted.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import bitalloc_torch as bt
from bitalloc_torch.demo.models import TinyMobileNetV2

STEP_TITLE = "# QAT step with weight and activation fake quantization vs float (issue 12)"
BACKENDS = ("native", "fused", "reference", "torch")
TARGET = 1.3


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block (all projections nn.Linear) and a classifier."""

    def __init__(self, d: int = 128, heads: int = 4, mlp: int = 512, classes: int = 10):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return self.head(self.ln3(x).mean(dim=1))


def _models():
    """``(name, description, float model, input batch, targets)``."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    yield ("mobilenetv2", "TinyMobileNetV2 (demo), batch 64, 1x28x28",
           TinyMobileNetV2(), torch.randn(64, 1, 28, 28, generator=g),
           torch.randint(0, 10, (64,), generator=g))
    yield ("transformer", "pre-norm block d=128, 4 heads, MLP 512, batch 16 x 64 tokens",
           TransformerBlock(), torch.randn(16, 64, 128, generator=g),
           torch.randint(0, 10, (16,), generator=g))


class Variant:
    """One model copy with its optimizers; ``steps(n)`` returns n step times."""

    def __init__(self, base: nn.Module, x: torch.Tensor, y: torch.Tensor, backend):
        self.model = copy.deepcopy(base)
        if backend is not None:
            bt.quantize_model(self.model, bits=8, act_bits=8)
            bt.calibrate(self.model, [x])
            for m in self.model.modules():
                if isinstance(m, bt.LSQQuantizer):
                    m.backend = backend
        weights, qparams = bt.param_groups(self.model)
        self.opts = [torch.optim.SGD(weights, lr=0.01, momentum=0.9)]
        if qparams:
            self.opts.append(torch.optim.Adam(qparams, lr=1e-5, foreach=True))
        self.model.train()
        self.x, self.y, self.times = x, y, []

    def steps(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            F.cross_entropy(self.model(self.x), self.y).backward()
            for o in self.opts:
                o.step()
                o.zero_grad(set_to_none=True)
            out.append(time.perf_counter() - t0)
        return out


def run_step(rounds: int = 15, per_round: int = 4) -> dict:
    """Interleaved rounds of every variant on every model (module docstring)."""
    out = {"rounds": rounds, "per_round": per_round, "models": {}}
    names = ("float",) + BACKENDS
    for name, desc, base, x, y in _models():
        var = {"float": Variant(base, x, y, None)}
        var.update({b: Variant(base, x, y, b) for b in BACKENDS})
        times = {k: [] for k in names}  # per round: median step of that round
        for r in range(rounds + 1):
            order = names[r % len(names):] + names[:r % len(names)]
            for k in order:
                t = var[k].steps(per_round)
                if r > 0:
                    times[k].append(statistics.median(t))
        out["models"][name] = {"desc": desc, "times": times,
                               "layers": len(bt.quantized_layers(var["fused"].model))}
    return out


def step_report(res: dict) -> str:
    """Markdown table of the step part."""
    lines = [STEP_TITLE, "",
             f"CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s), measured "
             f"**under load** (a 2-core machine shared with five other engineers' jobs). "
             f"Each model: float and one QAT copy per fake-quant backend (8-bit per-channel "
             f"weights, 8-bit asymmetric per-tensor activations on every Conv/Linear input), "
             f"{res['rounds']} interleaved rounds of {res['per_round']} steps each (rotating "
             f"order, one warm-up round dropped). Step = forward + loss + backward + SGD/Adam "
             f"steps. ms: median over rounds of the round's median step; ratio: median over "
             f"rounds of (variant / float in the same round), the figure graded against the "
             f"target (ratio <= {TARGET}); ratio of medians: the two medians' quotient, "
             f"for comparison (the spread of both shows the load).", "",
             "| model | variant | ms / step | ratio to float | ratio of medians | "
             "per-round ratio range | target |", "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for name, m in res["models"].items():
        f = m["times"]["float"]
        for k, t in m["times"].items():
            ratios = [a / b for a, b in zip(t, f)]
            ratio = statistics.median(ratios)
            ok = "" if k == "float" else ("PASS" if ratio <= TARGET else "FAIL")
            of_medians = statistics.median(t) / statistics.median(f)
            lines.append(f"| {name} | {k} | {1e3 * statistics.median(t):.1f} | {ratio:.2f}x | "
                         f"{of_medians:.2f}x | {min(ratios):.2f}-{max(ratios):.2f} | {ok} |")
    lines += ["", "Models: " + "; ".join(f"{n}: {m['desc']} ({m['layers']} quantized layers)"
                                          for n, m in res["models"].items()) + ".",
              "Backends: `native` is what the default `LSQQuantizer.backend = \"auto\"` runs "
              "on CPU (the compiled one-pass kernel, bitalloc_torch/fake_quant_native.py); "
              "`fused` the eager autograd Function (auto's fallback without a C compiler); "
              "`reference` the plain-autograd LSQ expression (what the quantizer ran before); "
              "`torch` torch's `_fake_quantize_learnable_per_*_affine` kernels.",
              "", "Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.qat_overhead "
              "--part step`.", ""]
    return "\n".join(lines)
