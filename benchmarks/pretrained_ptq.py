"""Post-training weight quantization machinery for :mod:`benchmarks.pretrained`.

:class:`WeightPTQ` calibrates, once, every quantized layer's per-channel weight
quantizer at every candidate bitwidth (MSE range search of
:meth:`bitalloc_torch.LSQQuantizer.initialize_from`, no training) and then applies any
allocation by setting bits and copying the cached steps, so uniform and allocated
models are quantized by exactly the same procedure.

:func:`error_tables` turns per-layer curvature traces (FIT empirical-Fisher traces or
Hutchinson Hessian traces) into the ``(N, K)`` error tables of the allocation arms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt

__all__ = ["WeightPTQ", "error_tables", "solve_arm", "phi_uniform"]


def phi_uniform(bits: Sequence[int]) -> np.ndarray:
    """``(2**b - 1)**-2`` per candidate (bitalloc's ``"uniform"`` noise)."""
    return (2.0 ** np.asarray(bits, dtype=np.float64) - 1.0) ** -2


class WeightPTQ:
    """Cached per-(layer, bits) weight quantizer steps of a ``bt.quantize_model`` model.

    Args:
        model: quantized in place by ``bt.quantize_model`` (activations may be disabled).
        bits: candidate bitwidths to calibrate.

    Attributes:
        names: quantized layer names, in module order.
        sizes: weight numel per layer.
        noise: ``{(name, b): mean squared weight quantization error}``.
    """

    def __init__(self, model: nn.Module, bits: Sequence[int]) -> None:
        self.layers = bt.quantized_layers(model)
        self.names = list(self.layers)
        self.bits = tuple(int(b) for b in bits)
        self.sizes = np.array([m.weight.numel() for m in self.layers.values()], dtype=np.float64)
        self.steps: dict[tuple[str, int], torch.Tensor] = {}
        self.noise: dict[tuple[str, int], float] = {}
        with torch.no_grad():
            for name, layer in self.layers.items():
                q, w = layer.weight_quantizer, layer.weight.detach()
                for b in self.bits:
                    q.set_bits(b, keep_range=False)
                    q.initialize_from(w)
                    self.steps[name, b] = q.step.detach().clone()
                    self.noise[name, b] = float((q(w) - w).double().pow(2).mean())

    def apply(self, alloc: dict[str, int]) -> None:
        """Quantize every layer's weight at ``alloc[name]`` bits with its cached step."""
        with torch.no_grad():
            for name, layer in self.layers.items():
                b = int(alloc[name])
                q = layer.weight_quantizer
                q.set_bits(b, keep_range=False)
                q.step.copy_(self.steps[name, b])

    def uniform(self, b: int, pinned: dict[str, int]) -> dict[str, int]:
        """Every layer at ``b`` bits except the pinned ones."""
        return {n: pinned.get(n, b) for n in self.names}

    def range_sq(self, name: str, b: int) -> float:
        """``mean_c(range_c**2)`` of the layer's quantizer calibrated at ``b`` bits."""
        r = self.steps[name, b].double().abs() * (2.0 ** b - 1.0)
        return float(r.square().mean())


def error_tables(trace: dict[str, float], ptq: WeightPTQ, names: Sequence[str],
                 prefix: str = "FIT") -> dict[str, np.ndarray]:
    """Error tables ``(N, K)`` over ``names`` for one per-layer curvature ``trace``.

    - ``"<prefix>-r(b)"``: trace x mean(range_b**2) x (2**b-1)**-2, the range of the
      quantizer actually calibrated at each candidate ``b`` (MSE clipping shrinks it at
      low bits);
    - ``"<prefix>-δ"``: trace x 12 x the measured mean squared weight error at ``b``
      (rounding and clipping; the 12 puts it on the same scale as the range form).
    """
    phi = phi_uniform(ptq.bits)
    t = np.array([trace[n] for n in names], dtype=np.float64)
    r = np.array([[ptq.range_sq(n, b) for b in ptq.bits] for n in names])
    d = np.array([[12.0 * ptq.noise[n, b] for b in ptq.bits] for n in names])
    return {f"{prefix}-r(b)": t[:, None] * r * phi[None, :], f"{prefix}-δ": t[:, None] * d}


def solve_arm(problem: ba.Problem, time_limit: float = 60.0) -> tuple[dict[str, int], dict]:
    """Solve with the exact ILP solver; ``(bits by name, solver report)``."""
    t0 = time.perf_counter()
    res = ba.solve(problem, method="ilp", time_limit=time_limit)
    report = {"status": res.status, "method": res.method, "gap": float(res.gap),
              "objective": float(res.objective), "bound": float(res.bound),
              "seconds": time.perf_counter() - t0,
              "average_bits": float(res.usage["average_bits"][0])}
    return res.bits_by_name, report
