"""Turn a float model into a QAT model in place: :func:`quantize_model`, :func:`calibrate`,
:func:`param_groups`.

Wrapping is done by switching the class of each ``nn.Linear`` / ``nn.Conv1d`` /
``nn.Conv2d`` / ``nn.Conv3d`` (exactly those classes, depthwise and grouped
convolutions included) to a subclass whose ``forward`` fake-quantizes the input and the
weight. The module object, its parameters, hooks and any optimizer that already holds
the parameters are untouched, ``isinstance(layer, nn.Linear)`` stays true, and the
root module itself can be a layer.

Layers named by ``skip`` are *not* wrapped: they stay in float and QBitOpt never sees
them. To keep the first/last layer quantized at 8 bits but out of the allocation,
wrap them and pass ``exclude=`` to :class:`~bitalloc_torch.QBitOpt` instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .batches import run_batch
from .quantizers import LSQQuantizer, check_bits
from .targets import select, unwrap

__all__ = ["quantize_model", "calibrate", "param_groups", "quantized_layers", "apply_bits",
           "QuantLinear", "QuantConv1d", "QuantConv2d", "QuantConv3d"]

SkipSpec = Iterable[str] | Callable[[str, nn.Module], bool]


class _QuantLayer:
    """Mixin: ``forward`` = layer(input_quantizer(x), weight_quantizer(weight))."""

    weight_quantizer: LSQQuantizer
    input_quantizer: LSQQuantizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._qforward(self.input_quantizer(x), self.weight_quantizer(self.weight))


class QuantLinear(_QuantLayer, nn.Linear):
    """``nn.Linear`` with fake-quantized input and weight (made by :func:`quantize_model`)."""

    def _qforward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w, self.bias)


class QuantConv1d(_QuantLayer, nn.Conv1d):
    """``nn.Conv1d`` with fake-quantized input and weight."""

    def _qforward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, w, self.bias)


class QuantConv2d(_QuantLayer, nn.Conv2d):
    """``nn.Conv2d`` with fake-quantized input and weight."""

    def _qforward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, w, self.bias)


class QuantConv3d(_QuantLayer, nn.Conv3d):
    """``nn.Conv3d`` with fake-quantized input and weight."""

    def _qforward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, w, self.bias)


_WRAP = {nn.Linear: QuantLinear, nn.Conv1d: QuantConv1d, nn.Conv2d: QuantConv2d,
         nn.Conv3d: QuantConv3d}
ACT_MODES = ("asymmetric", "unsigned")


def quantize_model(model: nn.Module, bits: int = 8, act_bits: int | None = 8,
                   skip: SkipSpec = (), per_channel: bool = True, *,
                   act_mode: str = "asymmetric", init: str = "mse") -> nn.Module:
    """Add LSQ fake quantizers to every Linear/Conv layer of ``model``, in place.

    Each wrapped layer gets ``.weight_quantizer`` (signed symmetric, per output channel
    or per tensor) and ``.input_quantizer`` (``act_mode``, per tensor). Steps are
    initialised from data on the first forward call, or by :func:`calibrate`.
    Layers already quantized are left as they are, so calling it twice is harmless.

    Args:
        model: the model; modified in place.
        bits: initial weight bitwidth.
        act_bits: initial input bitwidth; ``None`` creates the input quantizers disabled
            (weight-only quantization).
        skip: fully qualified module names, or a predicate ``(name, module) -> bool``;
            those layers are not wrapped (they stay float).
        per_channel: one weight step per output channel (else one per tensor).
        act_mode: ``"asymmetric"`` (learned offset, any sign) or ``"unsigned"``.
        init: step initialisation, ``"mse"`` or ``"minmax"``.

    Returns:
        ``model`` itself.

    Raises:
        ValueError: bad ``bits``/``act_bits``/``act_mode``/``init``, or ``skip`` names a
            module that does not exist.

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)),
        ...                       bits=4, skip=["2"])
        >>> m[0].weight_quantizer.bits, hasattr(m[2], "weight_quantizer")
        (4, False)
        >>> m(torch.randn(3, 8)).shape
        torch.Size([3, 2])
    """
    check_bits(bits, "signed", "bits")
    if act_bits is not None:
        check_bits(act_bits, "unsigned", "act_bits")
    if act_mode not in ACT_MODES:
        raise ValueError(f"act_mode: must be one of {ACT_MODES}, got {act_mode!r}")
    if init not in ("mse", "minmax"):
        raise ValueError(f"init: must be 'mse' or 'minmax', got {init!r}")
    root = unwrap(model)
    modules = dict(root.named_modules())
    skipped = select(modules, skip, "skip", modules)
    unsupported = []
    for name, module in modules.items():
        cls = _WRAP.get(type(module))
        if cls is None and name not in skipped and isinstance(module, tuple(_WRAP)) \
                and not hasattr(module, "weight_quantizer"):
            unsupported.append(f"{name} ({type(module).__name__})")
        if cls is None or name in skipped:
            continue
        w = module.weight
        wq = LSQQuantizer(bits, mode="signed", init=init,
                          channels=w.shape[0] if per_channel else None)
        iq = LSQQuantizer(8 if act_bits is None else act_bits, mode=act_mode, init=init)
        iq.enabled = act_bits is not None
        module.__class__ = cls
        module.weight_quantizer = wq.to(device=w.device)
        module.input_quantizer = iq.to(device=w.device)
    if unsupported:
        warnings.warn(
            f"quantize_model: {len(unsupported)} layer(s) subclass Linear/Conv, are not wrapped "
            f"and stay float: {unsupported[:5]}; replace them with plain "
            f"nn.Linear/nn.ConvNd (or add them to skip= to silence this)",
            RuntimeWarning, stacklevel=2)
    return model


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{fully qualified name: layer}`` of the layers wrapped by :func:`quantize_model`.

    Example:
        >>> import torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)))
        >>> list(bt.quantized_layers(m))
        ['0', '2']
    """
    return {n: m for n, m in unwrap(model).named_modules() if isinstance(m, _QuantLayer)}


def apply_bits(model: nn.Module, bits: dict[str, int], keep_range: bool = True) -> None:
    """Set the weight bitwidth of quantized layers by name, e.g. from a ``Result``.

    Args:
        model: a model prepared by :func:`quantize_model`.
        bits: ``{layer name: bits}`` (``Result.bits_by_name`` or ``QBitOpt.bits``).
        keep_range: keep each quantizer's clipping range (rescale its step).

    Raises:
        ValueError: a name that is not a quantized layer, or an invalid bitwidth.

    Example:
        >>> import torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
        >>> bt.apply_bits(m, {"0": 3, "1": 5})
        >>> m[0].weight_quantizer.bits, m[1].weight_quantizer.bits
        (3, 5)
    """
    layers = quantized_layers(model)
    for name in bits:
        if name not in layers:
            raise ValueError(f"bits: {name!r} is not a quantized layer; known: "
                             f"{sorted(layers)[:8]}")
    for name, b in bits.items():
        layers[name].weight_quantizer.set_bits(int(b), keep_range=keep_range)


def _is_quantizer(module: nn.Module) -> bool:
    if isinstance(module, LSQQuantizer):
        return True
    try:
        from torch.ao.quantization.fake_quantize import FakeQuantizeBase
    except ImportError:  # pragma: no cover
        return False
    return isinstance(module, FakeQuantizeBase)


def param_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split parameters into (model parameters, quantizer parameters).

    Quantizer parameters are those of LSQ quantizers (steps, offsets) and of
    ``torch.ao`` fake-quantize modules; give them their own optimizer, as QBitOpt does
    (SGD for the weights, Adam at 1e-5 without weight decay for the quantizers).

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Linear(4, 3))
        >>> weights, qparams = bt.param_groups(m)
        >>> len(weights), len(qparams)
        (2, 3)
        >>> opt_w = torch.optim.SGD(weights, lr=0.01, momentum=0.9)
        >>> opt_q = torch.optim.Adam(qparams, lr=1e-5)
    """
    quant_ids: set[int] = set()
    qparams: list[nn.Parameter] = []
    for module in unwrap(model).modules():
        if _is_quantizer(module):
            for p in module.parameters():
                if id(p) not in quant_ids:
                    quant_ids.add(id(p))
                    qparams.append(p)
    weights = [p for p in model.parameters() if id(p) not in quant_ids]
    return weights, qparams


def calibrate(model: nn.Module, batches: Iterable[Any], method: str | None = None) -> nn.Module:
    """Initialise every LSQ quantizer's step (and offset) from data.

    The model runs in eval mode without gradients while quantizers observe their inputs
    and pass them through in float: a first pass records per-channel min/max over all
    batches; with ``"mse"`` a second pass picks, per channel, the clipping range (a
    fraction of the observed one) with the smallest quantization error summed over the
    batches. Training mode is restored afterwards.

    Args:
        model: a model prepared by :func:`quantize_model`.
        batches: batches in the adapter's one convention (:mod:`bitalloc_torch.batches`:
            a tensor, an ``(inputs, targets)`` pair, or a dict of model arguments);
            iterated once or twice, so a list is best.
        method: ``"mse"`` or ``"minmax"`` for every quantizer; ``None`` keeps each
            quantizer's own ``init``.

    Returns:
        ``model``.

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)))
        >>> _ = bt.calibrate(m, [torch.randn(16, 4) for _ in range(3)])
        >>> bool(m[0].input_quantizer.initialized)
        True
    """
    if method is not None and method not in ("mse", "minmax"):
        raise ValueError(f"method: must be 'mse', 'minmax' or None, got {method!r}")
    batches = list(batches)
    if not batches:
        raise ValueError("batches: need at least one batch")
    quantizers = [m for m in unwrap(model).modules()
                  if isinstance(m, LSQQuantizer) and m.enabled]
    saved = [q.init for q in quantizers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for q in quantizers:
                q.init = method or q.init
                q.begin_calibration()
            for b in batches:
                run_batch(model, b)
            if [q for q in quantizers if q.calibration_needs_second_pass()]:
                for b in batches:
                    run_batch(model, b)
            for q in quantizers:
                q.end_calibration()
    finally:
        for q, init in zip(quantizers, saved):
            q.init = init
            q.cancel_calibration()  # no-op after end_calibration; cleans up on errors
        model.train(was_training)
    return model
