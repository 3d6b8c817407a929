"""Sensitivities of quantized layers: FIT (empirical Fisher trace x range**2) and Hutchinson.

FIT conventions (QBITOPT.md, DESIGN.md section 2):

- Fisher trace of a weight tensor: ``EF = ||g||**2``, the squared norm of the gradient
  of the (mean-reduced) mini-batch loss w.r.t. the latent float weight, averaged over
  steps. No batch-size multiplier is applied: it is the same for every layer of a run,
  and the allocation (argmin of ``sum_i s_i * phi(b_i)``) is invariant to scaling all
  sensitivities by one constant.
- Activations: the same with the gradient w.r.t. the layer's input tensor (a tensor
  hook registered in a forward pre-hook), summed over the forward passes of a step.
  Inputs that need no gradient (the network input) get no statistics.
- Range: the quantizer's *current* clipping range ``r`` (``step * (2**b - 1)`` for LSQ).
  Per-channel weights use ``mean_c(r_c**2)``: with one Fisher trace per tensor this is
  exact when the Fisher mass is spread evenly over the channels, and costs one
  square-and-sum per layer per step. ``sensitivity = EF * mean(r**2)`` and the error at
  candidate ``b`` is ``sensitivity * (2**b - 1)**-2``: every candidate is evaluated at
  the current range. The ``1/12`` of uniform rounding noise is dropped (a constant).
- Averaging: the running mean since the last :meth:`FITAccumulator.reset` (QBitOpt
  resets after every reallocation), or an exponential moving average with bias
  correction when ``ema`` is given.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from .batches import batch_inputs, batch_targets, leading_batch, run_batch
from .targets import QuantTarget, find_targets, unwrap

__all__ = ["FITAccumulator", "fit_sensitivity", "hutchinson_trace", "hutchinson_sensitivity",
           "range_sq", "act_name", "LossFn"]

#: ``loss_fn(outputs, targets) -> scalar tensor``, applied to ``model(inputs)``.
LossFn = Callable[[Any, Any], torch.Tensor]


#: Where FIT's range comes from: the quantizer's clipping range, or the tensor's max - min.
RANGES = ("quantizer", "tensor")


def _acc_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float64 when any tensor is float64 (a ``.double()`` model), else float32: norms
    are taken in at least float32 and never narrowed."""
    wide = any(t is not None and t.dtype == torch.float64 for t in tensors)
    return torch.float64 if wide else torch.float32


def act_name(name: str) -> str:
    """Group name of a layer's input activations: ``"<layer>.input_quantizer"``."""
    return f"{name}.input_quantizer"


def range_sq(quantizers: Iterable[Any], device: torch.device | None = None) -> torch.Tensor:
    """``mean(quant_range()**2)`` of each quantizer, as a float64 tensor."""
    vals = [q.quant_range().double().square().mean() for q in quantizers]
    if device is not None:
        vals = [v.to(device) for v in vals]
    return torch.stack(vals)


class FITAccumulator:
    """Accumulates empirical-Fisher traces of quantized layers, without extra passes.

    :meth:`accumulate` reads the gradients the user's ``backward()`` already produced
    (or ones given to it): one fused square-and-sum per layer, kept on the device,
    no ``.item()``. For ``act_targets`` it also registers hooks that add the squared
    gradient of each such layer's input during backward.

    Args:
        targets: the layers (see :func:`bitalloc_torch.targets.find_targets`).
        act_targets: layers whose input activations also get statistics (each needs an
            ``input_quantizer``).
        ema: ``None`` for a running mean, or a decay in ``(0, 1)`` for an EMA.
        ranges: ``"quantizer"`` (the quantizer's current clipping range) or ``"tensor"``
            (``max - min`` of the latent weight; of each activation, the largest seen since
            the last reset: the FIT reference code's range, independent of the bits).

    Attributes:
        names: statistic names: the weight groups, then ``act_name(layer)`` per activation.
        count: number of accumulated steps since the last reset.

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Linear(3, 2))
        >>> acc = FITAccumulator(bt.find_targets(m))
        >>> m(torch.ones(4, 3)).sum().backward()
        >>> acc.accumulate()
        >>> bool(torch.isclose(acc.fisher(), m.weight.grad.double().pow(2).sum()))
        True
    """

    def __init__(self, targets: Sequence[QuantTarget],
                 act_targets: Sequence[QuantTarget] = (), ema: float | None = None,
                 ranges: str = "quantizer") -> None:
        if ema is not None and (isinstance(ema, bool) or not isinstance(ema, float | int)
                                or not 0 < ema < 1):
            raise ValueError(f"ema: must be None or a decay in (0, 1), got {ema!r}")
        if not targets:
            raise ValueError("targets: no quantized layers (call quantize_model first)")
        if ranges not in RANGES:
            raise ValueError(f"ranges: must be one of {RANGES}, got {ranges!r}")
        self.ranges = ranges
        self.targets = list(targets)
        self.act_targets = list(act_targets)
        if any(t.input_quantizer is None for t in self.act_targets):
            raise ValueError("act_targets: every activation target needs an input_quantizer")
        self.ema = None if ema is None else float(ema)
        self._weights = [t.weight for t in self.targets]
        self.device = self._weights[0].device
        self.names = [t.name for t in self.targets] + [act_name(t.name) for t in self.act_targets]
        n_w, n_a = len(self.targets), len(self.act_targets)
        self._value = torch.zeros(n_w + n_a, dtype=torch.float64, device=self.device)
        self._value_w, self._value_a = self._value[:n_w], self._value[n_w:]
        self._n_act = n_a
        self._weight = 1.0 if self.ema is None else 1.0 - self.ema
        self._pending = torch.zeros(n_a, dtype=torch.float64, device=self.device)
        self._act_range = torch.zeros(n_a, dtype=torch.float64, device=self.device)
        #: Whether each activation group's input has had a gradient hook (needed a gradient).
        self.act_seen = [False] * n_a
        self.count = 0
        self._hooks = [t.module.register_forward_pre_hook(partial(self._pre_hook, j))
                       for j, t in enumerate(self.act_targets)]

    # -- hooks -----------------------------------------------------------------------------
    def _pre_hook(self, j: int, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled():
            self.act_seen[j] = True
            if self.ranges == "tensor":
                with torch.no_grad():
                    lo, hi = torch.aminmax(x.detach())
                    r = (hi - lo).double()
                    self._act_range[j] = torch.maximum(self._act_range[j], r)
            x.register_hook(partial(self._act_grad, j))

    @torch.no_grad()
    def _act_grad(self, j: int, g: torch.Tensor) -> None:
        self._pending[j] += torch.linalg.vector_norm(g, dtype=_acc_dtype(g)).double().square()

    def remove(self) -> None:
        """Remove the activation hooks."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # -- statistics ------------------------------------------------------------------------
    def accumulate(self, grads: Sequence[torch.Tensor | None] | None = None) -> None:
        """Add one step: squared gradient norms (``.grad`` unless ``grads`` is given).

        Layers whose gradient is ``None`` (unused this step) add zero. The common case is
        two tensor ops (a fused ``_foreach_norm`` and a stack) plus one in-place update,
        and no host sync: this runs on every training step.
        """
        if grads is None:
            grads = [w.grad for w in self._weights]
        try:
            norms = torch.stack(torch._foreach_norm(grads, 2, dtype=_acc_dtype(*grads)))
        except (TypeError, RuntimeError):  # a None gradient, or weights on several devices
            norms = self._norms_with_gaps(grads)
        if norms.requires_grad:  # gradients from backward(create_graph=True); no no_grad()
            norms = norms.detach()  # context here: it costs more than the update itself
        if self.ema is not None:
            self._value.mul_(self.ema)
        self._value_w.addcmul_(norms, norms, value=self._weight)  # += w * norm**2 (float64)
        if self._n_act:
            self._value_a.add_(self._pending, alpha=self._weight)
            self._pending.zero_()
        self.count += 1

    @torch.no_grad()
    def _norms_with_gaps(self, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        norms = torch.zeros(len(grads), dtype=torch.float64, device=self.device)
        for i, g in enumerate(grads):
            if g is not None:
                norms[i] = torch.linalg.vector_norm(g, dtype=_acc_dtype(g)).to(norms)
        return norms

    def fisher(self) -> torch.Tensor:
        """Averaged Fisher trace per statistic (float64, on the device); zeros before any step."""
        if self.count == 0:
            return torch.zeros_like(self._value)
        if self.ema is None:
            return self._value / self.count
        return self._value / (1.0 - self.ema**self.count)

    def sensitivity(self) -> torch.Tensor:
        """``fisher() * mean(range**2)`` per statistic, at the quantizers' current ranges."""
        if self.ranges == "tensor":
            with torch.no_grad():
                w = torch.stack([(t.weight.detach().max() - t.weight.detach().min()).double()
                                 .to(self.device) for t in self.targets])
            return self.fisher() * torch.cat([w, self._act_range]).square()
        quantizers = [t.quantizer for t in self.targets]
        quantizers += [t.input_quantizer for t in self.act_targets]
        return self.fisher() * range_sq(quantizers, self.device)

    def reset(self) -> None:
        """Forget the accumulated statistics."""
        self._value.zero_()
        self._pending.zero_()
        self._act_range.zero_()
        self.count = 0

    def state_dict(self) -> dict[str, Any]:
        """Statistics to checkpoint (CPU tensors)."""
        return {"names": list(self.names), "value": self._value.cpu().clone(),
                "count": self.count, "ema": self.ema, "act_seen": list(self.act_seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the statistic names must match."""
        if list(state["names"]) != self.names:
            raise ValueError(f"state_dict: statistics are for {list(state['names'])}, "
                             f"this accumulator has {self.names}")
        self._value.copy_(state["value"].to(self._value))
        self._pending.zero_()
        self.count = int(state["count"])
        self.act_seen = [bool(s) for s in state.get("act_seen", self.act_seen)]


def _samples(batch: Any) -> list[tuple[Any, Any]]:
    """Split an ``(inputs, targets)`` batch into one-sample batches."""
    x, y = batch_inputs(batch), batch_targets(batch)
    if isinstance(x, dict):
        n = leading_batch(x, "batches")
        return [({k: v[i:i + 1] if isinstance(v, torch.Tensor) else v for k, v in x.items()},
                 y[i:i + 1]) for i in range(n)]
    return [(x[i:i + 1], y[i:i + 1]) for i in range(len(x))]


def _targets_of(model: nn.Module) -> list[QuantTarget]:
    targets = find_targets(model)
    if not targets:
        raise ValueError("model: has no quantized layers (call quantize_model first)")
    return targets


def fit_sensitivity(model: nn.Module, loss_fn: LossFn, batches: Iterable[Any],
                    activations: bool = False, per_sample: bool = False) -> dict[str, float]:
    """FIT sensitivity of every quantized layer, post-training (one backward per batch).

    Gradients are taken with ``torch.autograd.grad``, so the parameters' ``.grad`` is
    left as it was. The model's train/eval mode is left as the caller set it.

    Args:
        model: a quantized model (:func:`quantize_model` or ``torch.ao`` QAT).
        loss_fn: ``loss_fn(model(inputs), targets)`` gives the mean mini-batch loss.
        batches: ``(inputs, targets)`` pairs.
        activations: also return input-activation sensitivities
            (named ``"<layer>.input_quantizer"``).
        per_sample: the empirical Fisher from per-sample gradients (one forward and
            backward per sample: ``mean_i ||grad loss_i||**2``) instead of the squared
            mini-batch-mean gradient (the default, free inside QAT). The mini-batch
            statistic is ``||mean_i g_i||**2``, which keeps the squared mean gradient at
            full weight but shrinks the per-sample variance by the batch size, so layers
            whose gradients agree across samples look more sensitive; activation statistics
            sum per-sample terms, so in a joint weight/activation problem weights are
            overweighted. ``benchmarks/results/qat_fisher.md`` measures the bias.

    Returns:
        ``{group name: EF * mean(range**2)}``.

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        >>> data = [(torch.randn(16, 4), torch.randint(0, 2, (16,))) for _ in range(2)]
        >>> s = bt.fit_sensitivity(m, nn.CrossEntropyLoss(), data)
        >>> sorted(s), all(v >= 0 for v in s.values())
        (['0', '2'], True)
    """
    model = unwrap(model)  # local statistics; no DDP reducer expecting a backward
    targets = _targets_of(model)
    act = [t for t in targets if t.input_quantizer is not None
           and getattr(t.input_quantizer, "enabled", True)] if activations else []
    acc = FITAccumulator(targets, act, ema=None)
    weights = [t.weight for t in targets]
    try:
        for batch in batches:
            for one in (_samples(batch) if per_sample else [batch]):
                loss = loss_fn(run_batch(model, one), batch_targets(one))
                acc.accumulate(torch.autograd.grad(loss, weights, allow_unused=True))
    finally:
        acc.remove()
    if acc.count == 0:
        raise ValueError("batches: need at least one batch")
    seen = [True] * len(targets) + acc.act_seen  # inputs that never needed a gradient
    return {n: v for n, v, ok in zip(acc.names, acc.sensitivity().tolist(), seen) if ok}


def hutchinson_trace(model: nn.Module, loss_fn: LossFn, batches: Iterable[Any],
                     targets: Sequence[QuantTarget] | None = None, samples: int = 1,
                     seed: int = 0) -> torch.Tensor:
    """Hutchinson estimate of the Hessian trace of each target's weight.

    ``Tr(H_l) ~= E[v_l . (H v)_l]`` with Rademacher ``v``; ``samples`` probes per batch,
    averaged over batches. Costs a double backward per probe.

    Returns:
        float64 tensor, one trace per target (may be negative: it is an estimate).

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Linear(3, 1, bias=False), act_bits=None, init="minmax")
        >>> m.weight.data = torch.tensor([[0.1, 0.5, -0.3]])  # w_0 inside the clipping range
        >>> x = torch.tensor([[2.0, 0.0, 0.0]])   # loss = 0.5*(w.x)**2: Tr(H) = ||x||**2
        >>> t = bt.hutchinson_trace(m, lambda out, t: 0.5 * out.pow(2).sum(), [(x, None)])
        >>> round(t.item(), 4)
        4.0
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: must be a positive int, got {samples!r}")
    model = unwrap(model)
    targets = list(targets) if targets is not None else _targets_of(model)
    weights = [t.weight for t in targets]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    total = torch.zeros(len(weights), dtype=torch.float64)
    n = 0
    for batch in batches:
        loss = loss_fn(run_batch(model, batch), batch_targets(batch))
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        used = [i for i, g in enumerate(grads) if g is not None]
        for _ in range(samples):
            vs = [(torch.randint(0, 2, weights[i].shape, generator=gen) * 2 - 1)
                  .to(weights[i]) for i in used]
            hv = torch.autograd.grad([grads[i] for i in used], [weights[i] for i in used],
                                     grad_outputs=vs, retain_graph=True, allow_unused=True)
            for i, v, h in zip(used, vs, hv):
                if h is not None:
                    total[i] += float((v * h).sum())
            n += 1
    if n == 0:
        raise ValueError("batches: need at least one batch")
    return total / n


def hutchinson_sensitivity(model: nn.Module, loss_fn: LossFn, batches: Iterable[Any],
                           samples: int = 1, seed: int = 0) -> dict[str, float]:
    """Hessian-trace sensitivity ``max(Tr(H), 0) * mean(range**2)`` per quantized layer.

    The alternative to :func:`fit_sensitivity` for comparison (weights only); negative
    trace estimates are clipped to zero.

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> _ = torch.manual_seed(1)
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
        >>> data = [(torch.randn(16, 4), torch.randn(16, 1))]
        >>> s = bt.hutchinson_sensitivity(m, nn.MSELoss(), data, samples=8)
        >>> sorted(s)
        ['0', '2']
    """
    targets = _targets_of(model)
    trace = hutchinson_trace(model, loss_fn, batches, targets, samples, seed)
    negative = [t.name for t, v in zip(targets, trace.tolist()) if v < 0]
    if negative:
        warnings.warn(f"hutchinson_sensitivity: {len(negative)} negative trace estimate(s) "
                      f"clipped to 0 ({negative[:5]}); those layers look insensitive. "
                      f"Use more batches or samples.", RuntimeWarning, stacklevel=2)
    trace = trace.clamp_min(0)
    sens = trace * range_sq([t.quantizer for t in targets]).cpu()
    return dict(zip([t.name for t in targets], sens.tolist()))
