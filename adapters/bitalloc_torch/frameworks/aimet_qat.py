"""Binding for AIMET (``aimet_torch`` 2.x ``QuantizationSimModel``), used only if it imports.

AIMET's quantized layers (``sim.model.<layer>``) keep their quantizers in
``param_quantizers["weight"]`` and ``input_quantizers[0]``; an affine quantizer's
``bitwidth`` is settable and its learned ``min``/``max`` are the clipping range, so a
change of bits keeps the range. Candidates 2..16 (signed) / 1..16 (unsigned).

Status: **not exercised on this project's machine**: ``import aimet_torch`` (2.42)
fails beside the CPU torch (it pulls a torchvision whose ops do not load), so the
tests skip with that reason; this binding follows AIMET's documented v2 quantizer API
and is searched only when ``aimet_torch`` is imported.
"""

from __future__ import annotations

import torch
from torch import nn

from ..protocol import ROOT, QuantTarget, unwrap
from . import LAYER_TYPES, Found, require

__all__ = ["AIMETQuantizerAdapter", "find", "targets", "FRAMEWORK", "IMPORT", "EXTRA", "IN_USE"]

FRAMEWORK, IMPORT, EXTRA = "AIMET", "aimet_torch", "aimet"
#: Searched only when this module is imported (a prepared model implies it).
IN_USE = "aimet_torch"


class AIMETQuantizerAdapter:
    """An AIMET v2 affine quantizer (``bitwidth``, ``get_min()``/``get_max()``)."""

    def __init__(self, quantizer: nn.Module) -> None:
        self.quantizer = quantizer

    @property
    def signed(self) -> bool:
        """Whether the grid is signed."""
        return bool(getattr(self.quantizer, "signed", False))

    @property
    def bits(self) -> int:
        """``bitwidth``."""
        return int(self.quantizer.bitwidth)

    @property
    def min_bits(self) -> int:
        """2 for signed quantizers, 1 for unsigned."""
        return 2 if self.signed else 1

    @property
    def max_bits(self) -> int:
        """16."""
        return 16

    def set_bits(self, bits: int, keep_range: bool = True) -> None:
        """Set ``bitwidth`` (the learned min/max, hence the range, are kept)."""
        from ..quantizers import check_bits

        self.quantizer.bitwidth = check_bits(bits, "signed" if self.signed else "unsigned")

    def quant_range(self) -> torch.Tensor:
        """``max - min``, detached; NaN before the quantizer is initialised."""
        lo, hi = self.quantizer.get_min(), self.quantizer.get_max()
        if lo is None or hi is None:
            return torch.tensor(float("nan"))
        return (hi - lo).detach().float()


def _adapter(q) -> AIMETQuantizerAdapter | None:
    if q is None or not isinstance(getattr(q, "bitwidth", None), int):
        return None
    if not (hasattr(q, "get_min") and hasattr(q, "get_max")):
        return None
    return AIMETQuantizerAdapter(q)


def find(model: nn.Module) -> Found:
    """Targets of every Linear/Conv layer with an AIMET weight quantizer."""
    out, skipped = [], []
    for name, module in unwrap(model).named_modules():
        params = getattr(module, "param_quantizers", None)
        if not isinstance(module, LAYER_TYPES) or params is None or "weight" not in params:
            continue
        wq = params["weight"]
        if wq is None:
            continue
        name = name or ROOT
        adapter = _adapter(wq)
        if adapter is None:
            skipped.append((name, f"{type(wq).__name__} has no integer bitwidth"))
            continue
        inputs = getattr(module, "input_quantizers", None) or [None]
        out.append(QuantTarget(name, module, module.weight, adapter, _adapter(inputs[0])))
    return Found(out, skipped)


def targets(model: nn.Module) -> list[QuantTarget]:
    """:func:`find`'s targets, for ``QBitOpt(targets=...)``.

    Raises:
        bitalloc.MissingDependencyError: ``aimet_torch`` does not import (names the extra).
    """
    require(IMPORT, EXTRA, FRAMEWORK)
    return find(model).targets
