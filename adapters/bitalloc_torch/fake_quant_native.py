"""A compiled CPU kernel for LSQ fake quantization: one pass forward, one pass backward.

The eager paths of :mod:`bitalloc_torch.fake_quant` cost five to seven elementwise
passes forward and three backward, which on CPU is about as much memory traffic as the
BatchNorm and activation around a convolution. This module holds a small C source
(no torch headers: it compiles in about a second with the system C compiler), builds it
once into a shared library cached under ``$BITALLOC_CACHE`` (default
``~/.cache/bitalloc``, keyed by the source's hash) and calls it through :mod:`ctypes` on
the tensors' memory. Forward reads ``x`` and writes ``y``; backward reads ``x`` and the
incoming gradient, writes the input gradient and accumulates the step and offset
gradients in the same loop (in blocks of 4096 in the tensor's dtype, the blocks in
double), with OpenMP over the tensor when torch runs
several threads. Built for the machine's own CPU (``-march=native``, falling back to
portable flags), cached per CPU model and flags.

Same arithmetic as the reference, per element: ``v = (x - b) / s``, clamp, round half
to even (the add-and-subtract ``1.5 * 2**23`` trick, exact on the clamped grid, so the
loop vectorises without a libm call), ``y = level * s + b``. CPU, float32 and float64, contiguous or
not (a copy is made); anything else uses the eager fused path. No compiler, or
``BITALLOC_NATIVE=0``: :func:`available` is False and ``backend="auto"`` stays eager.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

__all__ = ["available", "load", "fake_quantize_native", "lsq_native", "build_error",
           "differentiable_grads"]

_SOURCE = r"""
#include <stdint.h>
/* round half to even without a libm call (vectorises on plain SSE2): adding and
   subtracting 1.5 * 2**(mantissa bits) rounds in the default rounding mode; exact for
   |k| < 2**22 (float) / 2**51 (double), and k is clamped to a grid of at most 2**16. */
#define MAGIC_float 12582912.0f
#define MAGIC_double 6755399441055744.0
#define BLOCK 4096
#define LSQ_KERNELS(T, NAME)                                                              \
static void fwd_span_##NAME(const T* px, T* py, int64_t n, T ss, T bb, T l, T h) {       \
  const T m = (T)MAGIC_##T;                                                               \
  _Pragma("omp simd")                                                                     \
  for (int64_t i = 0; i < n; ++i) {                                                       \
    T v = (px[i] - bb) / ss;                                                              \
    T k = v < l ? l : (v > h ? h : v);                                                    \
    py[i] = ((k + m) - m) * ss + bb;                                                      \
  }                                                                                       \
}                                                                                         \
static void bwd_span_##NAME(const T* px, const T* pg, T* po, int64_t n, T ss, T bb, T l, \
                            T h, double* as, double* ab) {                                \
  const T m = (T)MAGIC_##T;                                                               \
  T fs = 0, fb = 0;                                                                       \
  _Pragma("omp simd reduction(+:fs, fb)")                                                 \
  for (int64_t i = 0; i < n; ++i) {                                                       \
    T v = (px[i] - bb) / ss;                                                              \
    T k = v < l ? l : (v > h ? h : v);                                                    \
    T in = (T)((v >= l) & (v <= h));                                                      \
    T q = (k + m) - m;                                                                    \
    T gi = pg[i];                                                                         \
    T gin = gi * in;                                                                      \
    po[i] = gin;                                                                          \
    fs += gi * q - gin * v;                                                               \
    fb += gi - gin;                                                                       \
  }                                                                                       \
  *as += (double)fs; *ab += (double)fb;                                                   \
}                                                                                         \
static void fwd_channel_##NAME(const T* px, T* py, int64_t inner, T ss, T bb, T l, T h,  \
                                int nt) {                                                 \
  const int64_t blocks = (inner + BLOCK - 1) / BLOCK;                                     \
  if (nt > 1 && blocks > 1) {                                                             \
    _Pragma("omp parallel for num_threads(nt)")                                           \
    for (int64_t k = 0; k < blocks; ++k) {                                                \
      const int64_t i0 = k * BLOCK, n = inner - i0 < BLOCK ? inner - i0 : BLOCK;          \
      fwd_span_##NAME(px + i0, py + i0, n, ss, bb, l, h);                                 \
    }                                                                                     \
  } else {                                                                                \
    fwd_span_##NAME(px, py, inner, ss, bb, l, h);                                         \
  }                                                                                       \
}                                                                                         \
static void bwd_channel_##NAME(const T* x, const T* g, T* gx, int64_t inner, T ss, T bb, \
                               T l, T h, double* ds, double* db, int nt) {               \
  const int64_t blocks = (inner + BLOCK - 1) / BLOCK;                                     \
  double as = 0.0, ab = 0.0;                                                              \
  if (nt > 1 && blocks > 1) {                                                             \
    _Pragma("omp parallel for reduction(+:as, ab) num_threads(nt)")                       \
    for (int64_t k = 0; k < blocks; ++k) {                                                \
      const int64_t i0 = k * BLOCK, n = inner - i0 < BLOCK ? inner - i0 : BLOCK;          \
      double ps = 0.0, pb = 0.0;                                                          \
      bwd_span_##NAME(x + i0, g + i0, gx + i0, n, ss, bb, l, h, &ps, &pb);                \
      as += ps; ab += pb;                                                                 \
    }                                                                                     \
  } else {                                                                                \
    for (int64_t k = 0; k < blocks; ++k) {                                                \
      const int64_t i0 = k * BLOCK, n = inner - i0 < BLOCK ? inner - i0 : BLOCK;          \
      bwd_span_##NAME(x + i0, g + i0, gx + i0, n, ss, bb, l, h, &as, &ab);                \
    }                                                                                     \
  }                                                                                       \
  *ds = as; *db = ab;                                                                     \
}                                                                                         \
void lsq_fwd_##NAME(const T* x, T* y, int64_t channels, int64_t inner, const double* s, \
                    const double* b, double lo, double hi, int nt) {                      \
  for (int64_t c = 0; c < channels; ++c)                                                  \
    fwd_channel_##NAME(x + c * inner, y + c * inner, inner, (T)s[c], (T)b[c], (T)lo,      \
                       (T)hi, nt);                                                        \
}                                                                                         \
void lsq_bwd_##NAME(const T* x, const T* g, T* gx, int64_t channels, int64_t inner,      \
                    const double* s, const double* b, double lo, double hi, double* ds,   \
                    double* db, int nt) {                                                 \
  for (int64_t c = 0; c < channels; ++c)                                                  \
    bwd_channel_##NAME(x + c * inner, g + c * inner, gx + c * inner, inner, (T)s[c],      \
                       (T)b[c], (T)lo, (T)hi, ds + c, db + c, nt);                        \
}                                                                                         \
/* The whole quantizer from its raw parameters (in x's dtype): s = max(|step|, tiny) in   \
   double, the offset one value per channel (none when off is NULL); the                  \
   backward writes the step's gradient times g * sign(step) * (|step| >= tiny) and the    \
   offset's times g, as the eager chain grad_scale -> abs -> clamp_min does. */           \
static double step_of_##NAME(const T* step, int64_t c, double tiny) {                    \
  double a = (double)step[c];                                                             \
  a = a < 0 ? -a : a;                                                                     \
  return a < tiny ? tiny : a;                                                             \
}                                                                                         \
void lsq_fwdp_##NAME(const T* x, T* y, int64_t channels, int64_t inner, const T* step,  \
                     const T* off, double tiny, double lo, double hi, int nt) {           \
  for (int64_t c = 0; c < channels; ++c) {                                                \
    const T bb = off ? (T)(double)off[c] : (T)0;                                          \
    fwd_channel_##NAME(x + c * inner, y + c * inner, inner, (T)step_of_##NAME(step, c,    \
                       tiny), bb, (T)lo, (T)hi, nt);                                      \
  }                                                                                       \
}                                                                                         \
void lsq_bwdp_##NAME(const T* x, const T* g, T* gx, int64_t channels, int64_t inner,     \
                     const T* step, const T* off, double tiny,                            \
                     double lo, double hi, double gs, T* gstep, T* goff, int nt) {        \
  for (int64_t c = 0; c < channels; ++c) {                                                \
    const double st = (double)step[c];                                                    \
    const T bb = off ? (T)(double)off[c] : (T)0;                                          \
    double ds, db;                                                                        \
    bwd_channel_##NAME(x + c * inner, g + c * inner, gx + c * inner, inner,               \
                       (T)step_of_##NAME(step, c, tiny), bb, (T)lo, (T)hi, &ds, &db, nt); \
    double sg = st > 0 ? 1.0 : (st < 0 ? -1.0 : (st == 0 ? 0.0 : st));                   \
    double a = st < 0 ? -st : st;                                                         \
    gstep[c] = (T)(ds * ((gs * sg) * (double)(a >= tiny)));                              \
    if (goff) goff[c] = (T)(db * gs);                                                     \
  }                                                                                       \
}
LSQ_KERNELS(float, f32)
LSQ_KERNELS(double, f64)
"""

_STATE: dict = {"lib": None, "error": None, "tried": False}
# Tried in order. ``-march=native`` (AVX2/AVX-512 where the CPU has them) halves the kernel's
# time against plain SSE2; ``-ffp-contract=off`` keeps it from fusing ``level * s + b`` into
# one FMA, so the arithmetic stays the reference's. The library is cached per CPU
# (:func:`_cpu_key`), so a cache shared between machines never runs foreign instructions.
_FLAGS = (["-march=native", "-ffp-contract=off", "-fopenmp"], ["-fopenmp"],
          ["-fopenmp-simd"], [])  # the last: no OpenMP, one thread
_PARALLEL_MIN = 1 << 16  # elements below which one thread does the loop


def _cache_dir() -> Path:
    return Path(os.environ.get("BITALLOC_CACHE") or Path.home() / ".cache" / "bitalloc")


def _build(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "lsq.c"
        src.write_text(_SOURCE)
        out = Path(tmp) / target.name
        errors = []
        for flags in _FLAGS:
            cmd = [cc, "-O3", "-fPIC", "-shared", *flags, str(src), "-o", str(out)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode == 0:
                os.replace(out, target)  # atomic: concurrent builders never see half a file
                return
            errors.append(run.stderr.strip()[-300:])
        raise RuntimeError(f"compiling the LSQ kernel failed: {errors[-1]}")


def _cpu_key() -> str:
    """The CPU's model and instruction-set flags (Linux), or the platform's processor."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))  # first core's lines; the others repeat them


def load() -> ctypes.CDLL | None:
    """The compiled kernel (built on first use, then cached), or None where unavailable."""
    if _STATE["tried"]:
        return _STATE["lib"]
    _STATE["tried"] = True
    if os.environ.get("BITALLOC_NATIVE", "1") == "0":
        _STATE["error"] = "disabled by BITALLOC_NATIVE=0"
        return None
    key = hashlib.sha256((_SOURCE + repr(_FLAGS) + _cpu_key()).encode()).hexdigest()[:16]
    target = _cache_dir() / f"lsq-{key}-{platform.machine() or 'cpu'}.so"
    try:
        if not target.exists():
            _build(target)
        lib = ctypes.CDLL(str(target))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        _STATE["error"] = str(e)
        return None
    ptr, i64, dbl, cint = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    for name in ("f32", "f64"):
        getattr(lib, f"lsq_fwd_{name}").argtypes = [ptr, ptr, i64, i64, ptr, ptr, dbl, dbl, cint]
        getattr(lib, f"lsq_bwd_{name}").argtypes = [ptr, ptr, ptr, i64, i64, ptr, ptr, dbl, dbl,
                                                    ptr, ptr, cint]
        getattr(lib, f"lsq_fwdp_{name}").argtypes = [ptr, ptr, i64, i64, ptr, ptr, dbl, dbl, dbl,
                                                     cint]
        getattr(lib, f"lsq_bwdp_{name}").argtypes = [ptr, ptr, ptr, i64, i64, ptr, ptr, dbl, dbl,
                                                     dbl, dbl, ptr, ptr, cint]
    _STATE["lib"] = lib
    return lib


def available() -> bool:
    """True when the compiled kernel can be used (builds it on the first call)."""
    return load() is not None


def build_error() -> str | None:
    """Why the kernel is unavailable (None when it loaded or was not tried yet)."""
    return _STATE["error"]


def supports(x: torch.Tensor) -> bool:
    """Whether ``x`` can go through the compiled kernel (CPU, float32/float64)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _p(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _params(x: torch.Tensor, s: torch.Tensor, beta: torch.Tensor | None):
    channels = 1 if s.numel() == 1 else s.shape[0]
    s64 = s.detach().reshape(-1).to(torch.float64).contiguous()
    b64 = (torch.zeros(channels, dtype=torch.float64) if beta is None else
           beta.detach().reshape(-1).to(torch.float64).expand(channels).contiguous())
    nt = torch.get_num_threads() if x.numel() >= _PARALLEL_MIN else 1
    return channels, x.numel() // channels, s64, b64, nt


class _NativeLSQ(torch.autograd.Function):
    """Forward and backward each one compiled loop; only ``x`` is saved."""

    @staticmethod
    def forward(ctx, x, s, beta, q_min, q_max):  # noqa: D102 - autograd protocol
        lib, x = load(), x.contiguous()
        channels, inner, s64, b64, nt = _params(x, s, beta)
        y = torch.empty_like(x)
        fwd = lib.lsq_fwd_f32 if x.dtype == torch.float32 else lib.lsq_fwd_f64
        fwd(_p(x), _p(y), channels, inner, _p(s64), _p(b64), float(q_min), float(q_max), nt)
        ctx.save_for_backward(x, s, beta if beta is not None else s)
        ctx.has_beta, ctx.grid = beta is not None, (float(q_min), float(q_max))
        return y

    @staticmethod
    def backward(ctx, gy):  # noqa: D102 - autograd protocol
        lib = load()
        x, s, beta = ctx.saved_tensors
        gy = gy.contiguous()
        channels, inner, s64, b64, nt = _params(x, s, beta if ctx.has_beta else None)
        gx = torch.empty_like(x)
        ds = torch.empty(channels, dtype=torch.float64)
        db = torch.empty(channels, dtype=torch.float64)
        bwd = lib.lsq_bwd_f32 if x.dtype == torch.float32 else lib.lsq_bwd_f64
        bwd(_p(x), _p(gy), _p(gx), channels, inner, _p(s64), _p(b64), *ctx.grid, _p(ds),
            _p(db), nt)
        gs = ds.to(s.dtype).reshape(s.shape)
        gb = db.to(beta.dtype).reshape(beta.shape) if ctx.has_beta else None
        return (gx if ctx.needs_input_grad[0] else None), gs, gb, None, None


def fake_quantize_native(x: torch.Tensor, s: torch.Tensor, beta: torch.Tensor | None,
                         q_min: int, q_max: int) -> torch.Tensor:
    """LSQ fake quantization through the compiled kernel (call :func:`available` first)."""
    if load() is None:
        raise RuntimeError(f"backend: the native kernel is unavailable ({build_error()})")
    return _NativeLSQ.apply(x, s, beta, q_min, q_max)


def differentiable_grads(fn, inputs, gy):
    """Gradients of ``fn(*inputs)`` against ``gy`` *with* a graph, by recomputing ``fn``.

    The fast kernels' backward is not itself differentiable; when autograd asks for a
    graph (``create_graph=True``: Hessian-vector products, Hutchinson), their backward
    calls this with the reference expression, so higher-order gradients are exactly the
    reference's. Returns one entry per input (None where it needs no gradient).
    """
    need = [i for i, t in enumerate(inputs) if isinstance(t, torch.Tensor) and t.requires_grad]
    out = [None] * len(inputs)
    with torch.enable_grad():
        y = fn(*inputs)
        got = torch.autograd.grad(y, [inputs[i] for i in need], gy, create_graph=True,
                                  allow_unused=True)
    for i, g in zip(need, got):
        out[i] = g
    return out



def _per_channel(p: torch.Tensor, x: torch.Tensor, channels: int) -> torch.Tensor:
    """``p`` (detached) as ``channels`` contiguous values in ``x``'s dtype: the parameter's
    own memory when it already is (the usual case), else a small copy."""
    return p.detach().reshape(-1).to(x.dtype).expand(channels).contiguous()


class _NativeLSQParams(torch.autograd.Function):
    """The whole LSQ quantizer in one Function: the step's ``|.|``, its floor and LSQ's
    gradient scale are applied inside the kernel call (``lsq_fwdp``/``lsq_bwdp``, on the
    parameters' own memory, or on copies in ``x``'s dtype when theirs differs), not as a
    chain of small autograd ops per call."""

    @staticmethod
    def forward(ctx, x, step, offset, g, q_min, q_max, tiny, reference):  # noqa: D102
        lib, x = load(), x.contiguous()
        channels = step.numel()
        sp = _per_channel(step, x, channels)
        op = None if offset is None else _per_channel(offset, x, channels)
        nt = torch.get_num_threads() if x.numel() >= _PARALLEL_MIN else 1
        y = torch.empty_like(x)
        fwd = lib.lsq_fwdp_f32 if x.dtype == torch.float32 else lib.lsq_fwdp_f64
        fwd(x.data_ptr(), y.data_ptr(), channels, x.numel() // channels, sp.data_ptr(),
            None if op is None else op.data_ptr(), tiny, float(q_min), float(q_max), nt)
        ctx.save_for_backward(x, step, offset if offset is not None else step)
        ctx.args = (offset is not None, g, q_min, q_max, tiny, reference, nt)
        return y

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        x, step, offset = ctx.saved_tensors
        has_offset, g, q_min, q_max, tiny, reference, nt = ctx.args
        if torch.is_grad_enabled():  # create_graph=True: differentiate the reference
            grads = differentiable_grads(
                lambda x_, s_, o_: reference(x_, s_, o_, g, q_min, q_max, tiny),
                (x, step, offset if has_offset else None), gy)
            return (*grads, None, None, None, None, None)
        gy = gy.contiguous()
        gx = torch.empty_like(x)
        channels = step.numel()
        sp = _per_channel(step, x, channels)
        op = _per_channel(offset, x, channels) if has_offset else None
        gs = torch.empty_like(sp)
        gb = None if op is None else torch.empty_like(op)
        bwd = load().lsq_bwdp_f32 if x.dtype == torch.float32 else load().lsq_bwdp_f64
        bwd(x.data_ptr(), gy.data_ptr(), gx.data_ptr(), channels, x.numel() // channels,
            sp.data_ptr(), None if op is None else op.data_ptr(), tiny, float(q_min),
            float(q_max), g, gs.data_ptr(), None if gb is None else gb.data_ptr(), nt)
        gs = gs.to(step.dtype).reshape(step.shape)
        if gb is not None:  # a shared offset (one value) gets the sum over the channels
            gb = (gb if offset.numel() == channels else gb.sum()).to(offset.dtype)
            gb = gb.reshape(offset.shape)
        return (gx if ctx.needs_input_grad[0] else None), gs, gb, None, None, None, None, None


def lsq_native(x: torch.Tensor, step: torch.Tensor, offset: torch.Tensor | None, g: float,
               q_min: int, q_max: int, tiny: float, reference) -> torch.Tensor:
    """A whole LSQ quantizer on the compiled kernel, from its raw parameters.

    Same as ``fake_quantize(x, max(|grad_scale(step, g)|, tiny), grad_scale(offset, g))``
    with per-channel parameters along axis 0 of ``x``; ``step`` and ``offset`` on the CPU.
    ``reference(x, step, offset, g, q_min, q_max, tiny)`` is the same quantizer in plain
    autograd, differentiated instead when a backward asks for a graph.
    """
    if load() is None:
        raise RuntimeError(f"backend: the native kernel is unavailable ({build_error()})")
    if step.numel() > 1 and (x.dim() == 0 or x.shape[0] != step.numel()):
        raise ValueError(f"x: expected {step.numel()} channels on axis 0, got shape "
                         f"{tuple(x.shape)}")
    return _NativeLSQParams.apply(x, step, offset, g, q_min, q_max, tiny, reference)
