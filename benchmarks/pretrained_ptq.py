"""Post-training weight quantization machinery for :mod:`benchmarks.pretrained`.

:class:`WeightPTQ` calibrates, once, every quantized layer's per-channel weight
quantizer at every candidate bitwidth (MSE range search of
:meth:`bitalloc_torch.LSQQuantizer.initialize_from`, no training) and then applies any
allocation by setting bits and copying the cached steps, so uniform and allocated
models are quantized by exactly the same procedure.

:meth:`WeightPTQ.bias_correct` is empirical bias correction (Nagel et al. 2019,
"Data-Free Quantization", section 4.2, with data): after the weights are quantized,
each layer's bias absorbs the mean output shift on the estimation data, layer by layer
in module order, every layer seeing the already corrected layers before it.

:func:`error_tables` turns per-layer curvature traces (FIT empirical-Fisher traces or
Hutchinson Hessian traces) into the ``(N, K)`` error tables of the allocation arms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt

__all__ = ["WeightPTQ", "error_tables", "solve_arm", "phi_uniform", "channel_mean",
           "BC_MODES"]

#: ``"network"``: a layer's bias absorbs ``E[y_float] - E[y_quant]``, its output in the
#: float model minus its output in the quantized model (its own weight error plus the
#: shift that reaches it from earlier layers). ``"layer"``: the bias absorbs
#: ``E[(W - W_q) x]``, ``x`` the layer's input in the quantized model (its own weight
#: error only; for a conv this is, per output channel, the kernel of ``W - W_q`` summed
#: against the per-input-channel means of its group, exactly at the borders too).
BC_MODES = ("network", "layer")


def phi_uniform(bits: Sequence[int]) -> np.ndarray:
    """``(2**b - 1)**-2`` per candidate (bitalloc's ``"uniform"`` noise)."""
    return (2.0 ** np.asarray(bits, dtype=np.float64) - 1.0) ** -2


def channel_mean(y: torch.Tensor, linear: bool, mask: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Per-output-channel mean of a layer output, float64.

    Conv outputs ``(B, C, ...)``: mean over every dim but 1. Linear outputs ``(..., C)``:
    mean over every dim but the last; with ``mask`` (``(B, T)``, 1 for real tokens) a
    ``(B, T, C)`` output is averaged over the real tokens only.
    """
    y = y.detach().double()
    if not linear:
        return y.transpose(0, 1).reshape(y.shape[1], -1).mean(1)
    if mask is not None and y.dim() == 3:
        m = mask.to(y.dtype).unsqueeze(-1)
        return (y * m).sum((0, 1)) / m.sum()
    return y.reshape(-1, y.shape[-1]).mean(0)


def _weight_op(layer: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The layer's linear map with weight ``w`` and no bias (groups, padding, stride kept)."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, w)
    return layer._conv_forward(x, w, None)


class WeightPTQ:
    """Cached per-(layer, bits) weight quantizer steps of a ``bt.quantize_model`` model.

    Args:
        model: quantized in place by ``bt.quantize_model`` (activations may be disabled).
        bits: candidate bitwidths to calibrate.

    Attributes:
        names: quantized layer names, in module order.
        sizes: weight numel per layer.
        noise: ``{(name, b): mean squared weight quantization error}``.
        bias0: each layer's bias at construction (``None`` where it had none).
    """

    def __init__(self, model: nn.Module, bits: Sequence[int]) -> None:
        self.layers = bt.quantized_layers(model)
        self.names = list(self.layers)
        self.bits = tuple(int(b) for b in bits)
        self.sizes = np.array([m.weight.numel() for m in self.layers.values()], dtype=np.float64)
        self.bias0 = {n: None if m.bias is None else m.bias.detach().clone()
                      for n, m in self.layers.items()}
        self._float_means: dict[str, torch.Tensor] | None = None
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
        """Quantize every layer's weight at ``alloc[name]`` bits with its cached step.

        Also restores the original biases (undoing any :meth:`bias_correct`).
        """
        self.restore_bias()
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

    # -- bias correction ---------------------------------------------------------------
    def restore_bias(self) -> None:
        """Every layer's bias as it was at construction (``None`` where it had none)."""
        with torch.no_grad():
            for name, layer in self.layers.items():
                b0 = self.bias0[name]
                if b0 is None:
                    layer.bias = None
                else:
                    layer.bias.copy_(b0)

    def _set_bias(self, name: str, correction: torch.Tensor) -> None:
        layer = self.layers[name]
        b0 = self.bias0[name]
        new = correction.to(layer.weight.dtype)
        if b0 is not None:
            new = new + b0
        with torch.no_grad():
            if layer.bias is None:
                layer.bias = nn.Parameter(new, requires_grad=False)
            else:
                layer.bias.copy_(new)

    def _hooked(self, run: Callable[[], object], hook_for) -> None:
        handles = [layer.register_forward_hook(hook_for(name, layer))
                   for name, layer in self.layers.items()]
        try:
            with torch.no_grad():
                run()
        finally:
            for h in handles:
                h.remove()

    def float_means(self, run: Callable[[], object], mask: torch.Tensor | None = None
                    ) -> dict[str, torch.Tensor]:
        """Per-channel mean output of every layer of the float model (weights unquantized).

        ``run()`` runs the model once on the estimation data. Cached on first use (the
        float model does not change; pass the same ``run`` every time).
        """
        if self._float_means is None:
            means: dict[str, torch.Tensor] = {}

            def hook_for(name, layer):
                def hook(mod, args, out):
                    means[name] = channel_mean(out, isinstance(mod, nn.Linear), mask)
                return hook

            quantizers = [m.weight_quantizer for m in self.layers.values()]
            saved = [q.enabled for q in quantizers]
            self.restore_bias()
            for q in quantizers:
                q.enabled = False
            try:
                self._hooked(run, hook_for)
            finally:
                for q, e in zip(quantizers, saved):
                    q.enabled = e
            self._float_means = means
        return self._float_means

    def bias_correct(self, run: Callable[[], object], mode: str = "network",
                     mask: torch.Tensor | None = None) -> dict[str, float]:
        """Empirical bias correction of the currently applied allocation, in place.

        ``run()`` must run the model *once* on the estimation data, as a single batch:
        each layer's correction is computed in its forward hook and added to its output
        right away, so every later layer sees corrected inputs (sequential correction in
        one pass). Layers without a bias get one. ``mode`` is one of :data:`BC_MODES`;
        ``mask`` weights token positions of 3-D linear outputs (padding excluded).
        Undone by :meth:`apply` / :meth:`restore_bias`.

        Returns:
            ``{name: RMS over output channels of the correction}``.
        """
        if mode not in BC_MODES:
            raise ValueError(f"mode: must be one of {BC_MODES}, got {mode!r}")
        ref = self.float_means(run, mask) if mode == "network" else None
        self.restore_bias()
        size: dict[str, float] = {}

        def hook_for(name, layer):
            linear = isinstance(layer, nn.Linear)

            def hook(mod, args, out):
                if mode == "layer":
                    w = mod.weight
                    c = channel_mean(_weight_op(mod, args[0], w - mod.weight_quantizer(w)),
                                     linear, mask)
                else:
                    c = ref[name] - channel_mean(out, linear, mask)
                self._set_bias(name, c)
                size[name] = float(c.square().mean().sqrt())
                shape = [1] * out.dim()
                shape[-1 if linear else 1] = -1
                return out + c.to(out.dtype).view(shape)
            return hook

        self._hooked(run, hook_for)
        return size


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
