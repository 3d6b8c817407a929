"""The LSQ fake-quantization kernel behind :class:`~bitalloc_torch.LSQQuantizer`, four ways.

All three compute, for a step ``s > 0`` (already carrying LSQ's gradient scale) and an
optional float offset ``beta`` (LSQ+), broadcastable against ``x``::

    v = (x - beta) / s;  c = clamp(v, q_min, q_max);  y = round(c) * s + beta

with the straight-through estimator, so that (``inside = q_min <= v <= q_max``)::

    dy/dx    = inside
    dy/ds    = round(c) - v * inside      (LSQ's step gradient)
    dy/dbeta = 1 - inside

- :func:`fake_quantize_native`: a compiled C loop, one pass forward and one backward
  (:mod:`bitalloc_torch.fake_quant_native`); CPU float32/float64; what ``"auto"`` picks
  where it compiles.
- :func:`fake_quantize_reference`: the textbook expression in plain autograd (round
  with a detached residual); the trusted reference, about a dozen elementwise passes
  forward and as many backward.
- :func:`fake_quantize_fused`: one :class:`torch.autograd.Function` that does the
  forward in five to seven elementwise passes and saves the integer levels, the clamped
  values and the ``inside`` mask (as 0./1. floats), so the backward is one multiply and
  two read-only dot products (two sums more for the offset). Works for every floating
  dtype, per tensor and per channel.
- :func:`fake_quantize_torch`: torch's fused learnable fake-quant kernels
  (``torch._fake_quantize_learnable_per_tensor_affine`` / ``..._per_channel_affine``),
  zero point 0 with the offset applied as a shift. Their backward takes float32 only,
  so other dtypes fall back to the fused path. They round *before* clipping, so the
  band within half a level outside the grid counts as inside (gradient passes, step
  gradient ``round(v) - v``) where LSQ clips it; everywhere else they agree with the
  reference (tests/torch/test_bt_quantizers.py). On CPU (torch 2.13, one thread) these
  kernels measured *slower* than the plain reference (benchmarks/results/qat_overhead.md),
  which is why ``"auto"`` never picks them.
"""

from __future__ import annotations

import torch

from . import fake_quant_native as native
from .fake_quant_native import differentiable_grads

__all__ = ["BACKENDS", "lsq_fake_quantize", "fake_quantize", "fake_quantize_reference",
           "fake_quantize_fused", "fake_quantize_torch", "fake_quantize_native", "resolve",
           "round_ste", "grad_scale"]

#: Accepted values of ``LSQQuantizer.backend``.
BACKENDS = ("auto", "native", "fused", "torch", "reference")


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity backward (straight-through estimator)."""
    return (x.round() - x).detach() + x


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` forward, gradient multiplied by ``scale`` backward (LSQ's step-gradient scale)."""
    y = x * scale
    return (x - y).detach() + y


def fake_quantize_reference(x: torch.Tensor, s: torch.Tensor, beta: torch.Tensor | None,
                            q_min: int, q_max: int) -> torch.Tensor:
    """The reference LSQ fake quantizer in plain autograd (module docstring)."""
    if beta is not None:
        q = round_ste(torch.clamp((x - beta) / s, q_min, q_max))
        return q * s + beta
    return round_ste(torch.clamp(x / s, q_min, q_max)) * s


def _sum_to(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` (shaped like ``x``) down to the broadcast shape of ``like`` (s or beta)."""
    if like.numel() == 1:
        return t.sum().reshape(like.shape)
    return t.reshape(like.shape[0], -1).sum(dim=1).reshape(like.shape)


def _dot_to(a: torch.Tensor, b: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``sum(a * b)`` reduced to the shape of ``like`` without a full-size temporary."""
    if like.numel() == 1:
        return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(like.shape)
    c = like.shape[0]
    return torch.bmm(a.reshape(c, 1, -1), b.reshape(c, -1, 1)).reshape(like.shape)


class _LSQFunction(torch.autograd.Function):
    """Forward in few passes; backward from the levels, the clamped values and the mask.

    ``dy/ds`` summed against ``gy`` is ``sum(gy * levels) - sum(gx * clamped)`` (inside,
    ``levels - v``; clipped, the level itself), two read-only dot products.
    """

    @staticmethod
    def forward(ctx, x, s, beta, q_min, q_max):  # noqa: D102 - autograd protocol
        v = torch.sub(x, beta).div_(s) if beta is not None else torch.div(x, s)
        c = v.clamp(q_min, q_max)
        # the mask as 0./1. in x's dtype: comparisons into bool and bool-float arithmetic
        # take the slow, non-vectorised path on CPU (4x a float pass, measured)
        inside = torch.eq(c, v, out=torch.empty_like(c))  # 0 for NaN, as clamp's backward
        levels = torch.round(c, out=v)  # reuse v's buffer for the integer levels
        y = levels * s
        if beta is not None:
            y.add_(beta)
        ctx.save_for_backward(levels, c, inside, s, beta if beta is not None else s, x)
        ctx.has_beta, ctx.grid = beta is not None, (q_min, q_max)
        return y

    @staticmethod
    def backward(ctx, gy):  # noqa: D102 - autograd protocol
        levels, c, inside, s, beta, x = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiate the reference
            b = beta if ctx.has_beta else None
            gx, gs, gb = differentiable_grads(
                lambda x_, s_, b_: fake_quantize_reference(x_, s_, b_, *ctx.grid), (x, s, b), gy)
            return gx, gs, gb, None, None
        gx = gy * inside
        gs = None
        if ctx.needs_input_grad[1]:
            gs = _dot_to(gy, levels, s) - _dot_to(gx, c, s)
        gb = None
        if ctx.has_beta and ctx.needs_input_grad[2]:
            gb = _sum_to(gy, beta) - _sum_to(gx, beta)
        return (gx if ctx.needs_input_grad[0] else None), gs, gb, None, None


def _fake_quantize_values(x, s, beta, q_min, q_max):
    """Forward values only (no autograd): what every path returns."""
    v = torch.sub(x, beta).div_(s) if beta is not None else torch.div(x, s)
    v.clamp_(q_min, q_max).round_().mul_(s)
    return v.add_(beta) if beta is not None else v


def fake_quantize_fused(x: torch.Tensor, s: torch.Tensor, beta: torch.Tensor | None,
                        q_min: int, q_max: int) -> torch.Tensor:
    """The fused LSQ fake quantizer (module docstring); any floating dtype."""
    needs = torch.is_grad_enabled() and (x.requires_grad or s.requires_grad or (
        beta is not None and beta.requires_grad))
    if not needs:
        return _fake_quantize_values(x, s, beta, q_min, q_max)
    return _LSQFunction.apply(x, s, beta, q_min, q_max)


def fake_quantize_torch(x: torch.Tensor, s: torch.Tensor, beta: torch.Tensor | None,
                        q_min: int, q_max: int) -> torch.Tensor:
    """LSQ through torch's learnable fake-quant kernels; non-float32 uses the fused path."""
    if x.dtype != torch.float32 or s.dtype != torch.float32:
        return fake_quantize_fused(x, s, beta, q_min, q_max)
    xs = x - beta if beta is not None else x
    if s.numel() == 1:
        zero = torch.zeros(1, dtype=torch.float32, device=x.device)
        y = torch._fake_quantize_learnable_per_tensor_affine(
            xs, s.reshape(1), zero, q_min, q_max, 1.0)
    else:
        zero = torch.zeros(s.shape[0], dtype=torch.float32, device=x.device)
        y = torch._fake_quantize_learnable_per_channel_affine(
            xs, s.reshape(-1), zero, 0, q_min, q_max, 1.0)
    return y + beta if beta is not None else y


def fake_quantize_native(x: torch.Tensor, s: torch.Tensor, beta: torch.Tensor | None,
                         q_min: int, q_max: int) -> torch.Tensor:
    """The compiled one-pass CPU kernel (:mod:`bitalloc_torch.fake_quant_native`);
    tensors it does not take (not CPU float32/float64) use the fused path."""
    if not native.supports(x):
        return fake_quantize_fused(x, s, beta, q_min, q_max)
    return native.fake_quantize_native(x, s, beta, q_min, q_max)


_PATHS = {"native": fake_quantize_native, "fused": fake_quantize_fused,
          "torch": fake_quantize_torch, "reference": fake_quantize_reference}


def resolve(backend: str, x: torch.Tensor) -> str:
    """The path ``backend`` runs for ``x``: ``"auto"`` is ``"native"`` where the kernel
    is available and takes ``x`` (CPU float32/float64), else ``"fused"``."""
    if backend == "auto":
        return "native" if native.supports(x) and native.available() else "fused"
    if backend not in _PATHS:
        raise ValueError(f"backend: must be one of {BACKENDS}, got {backend!r}")
    return backend


def lsq_fake_quantize(x: torch.Tensor, step: torch.Tensor, offset: torch.Tensor | None,
                      g: float, q_min: int, q_max: int, backend: str = "auto",
                      tiny: float = 1e-12) -> torch.Tensor:
    """A whole LSQ quantizer from its raw parameters (what ``LSQQuantizer.forward`` runs).

    The step used is ``max(|step|, tiny)`` with LSQ's gradient scale ``g`` on the step and
    the offset; per-channel parameters (more than one value) lie along axis 0 of ``x``.
    On the native path all of it happens in one autograd node; elsewhere the step and
    offset go through :func:`grad_scale` and then :func:`fake_quantize`.
    """
    path = resolve(backend, x)
    if path == "native" and native.supports(x) and step.device.type == "cpu":
        return native.lsq_native(x, step, offset, g, q_min, q_max, tiny, _lsq_reference)
    shape = (-1,) + (1,) * (x.dim() - 1) if step.numel() > 1 else step.shape
    s = grad_scale(step, g).abs().clamp_min(tiny).reshape(shape).to(x.dtype)
    beta = None if offset is None else grad_scale(offset, g).reshape(shape).to(x.dtype)
    return fake_quantize(x, s, beta, q_min, q_max, path if path != "native" else "fused")


def _lsq_reference(x, step, offset, g, q_min, q_max, tiny):
    return lsq_fake_quantize(x, step, offset, g, q_min, q_max, "reference", tiny)


def fake_quantize(x: torch.Tensor, s: torch.Tensor, beta: torch.Tensor | None, q_min: int,
                  q_max: int, backend: str = "auto") -> torch.Tensor:
    """LSQ fake quantization of ``x`` on ``backend`` (one of :data:`BACKENDS`).

    Args:
        x: the tensor; ``s`` and ``beta`` broadcast against it (a scalar, or per channel
            of axis 0 shaped ``(C, 1, ...)``), in ``x``'s dtype.
        s: positive step, carrying LSQ's gradient scale.
        beta: float offset (asymmetric mode) or ``None``.
        q_min, q_max: integer grid.
        backend: ``"auto"`` (``"native"`` for CPU float32/float64 where the kernel
            compiles, else ``"fused"``), ``"native"``, ``"fused"``, ``"torch"`` or
            ``"reference"``.
    """
    path = _PATHS[resolve(backend, x)]
    if not (x.is_floating_point() and s.is_floating_point()):
        raise ValueError(f"x: must be a floating-point tensor, got {x.dtype}")
    return path(x, s, beta, q_min, q_max)
