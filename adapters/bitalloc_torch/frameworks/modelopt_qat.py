"""Binding for NVIDIA ModelOpt fake quantization (``mtq.quantize(model, cfg, forward_loop)``).

``mtq.quantize`` turns each ``nn.Linear``/``nn.Conv*d`` into a quantized module with a
``weight_quantizer`` and an ``input_quantizer`` (``TensorQuantizer``).
:class:`ModelOptQuantizerAdapter` sets ``TensorQuantizer.num_bits`` (the same as
``mtq.set_quantizer_attribute``; in 0.47 ``quant_cfg`` is a list of
``{"quantizer_name": pattern, "cfg": {...}}`` entries).

- Clipping range: ModelOpt calibrates ``amax`` and derives
  ``scale = amax / maxbound(num_bits)``, so a change of bits keeps the range
  (``[-amax, amax]`` signed, ``[0, amax]`` unsigned) with no rescaling.
- Candidates: 2..8 bits for signed integer quantizers, 1..8 unsigned. Float formats
  (``num_bits`` a tuple such as ``(4, 3)`` for FP8 or NVFP4's ``(2, 1)``) and
  ``SequentialQuantizer`` chains are left out with a warning.
- Activations: an enabled ``input_quantizer`` is the layer's input quantizer.
- Checkpoints: ``_amax`` is in the model's ``state_dict``, ``num_bits`` is not
  (``mto.modelopt_state`` or QBitOpt's ``state_dict`` restore it).
- Importing ModelOpt 0.47 needs ``requests`` and ``huggingface_hub``, which it does not
  declare; the ``modelopt`` extra installs them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..protocol import ROOT, QuantTarget, unwrap
from . import LAYER_TYPES, Found, require

__all__ = ["ModelOptQuantizerAdapter", "find", "targets", "FRAMEWORK", "IMPORT", "EXTRA", "IN_USE"]

FRAMEWORK, IMPORT, EXTRA = "ModelOpt", "modelopt", "modelopt"
#: Searched only when this module is imported (a prepared model implies it).
IN_USE = "modelopt.torch.quantization"
MAX_BITS = 8


class ModelOptQuantizerAdapter:
    """A ModelOpt integer ``TensorQuantizer`` as a ``BitQuantizer``.

    Args:
        quantizer: the ``TensorQuantizer``.
        tensor: the weight it quantizes, if any (range before calibration).
    """

    def __init__(self, quantizer: nn.Module, tensor: torch.Tensor | None = None) -> None:
        self.quantizer = quantizer
        self.tensor = tensor

    @property
    def signed(self) -> bool:
        """Whether the grid is signed."""
        return not bool(self.quantizer.unsigned)

    @property
    def bits(self) -> int:
        """``num_bits``."""
        return int(self.quantizer.num_bits)

    @property
    def min_bits(self) -> int:
        """2 for signed quantizers, 1 for unsigned."""
        return 2 if self.signed else 1

    @property
    def max_bits(self) -> int:
        """8."""
        return MAX_BITS

    @property
    def enabled(self) -> bool:
        """``TensorQuantizer.is_enabled``."""
        return bool(self.quantizer.is_enabled)

    def set_bits(self, bits: int, keep_range: bool = True) -> None:
        """Set ``num_bits`` (``amax`` is kept, so is the range; module docstring)."""
        from ..quantizers import check_bits

        b = check_bits(bits, "signed" if self.signed else "unsigned")
        if b > MAX_BITS:
            raise ValueError(f"bits: ModelOpt integer quantizers are bound for "
                             f"{self.min_bits}..{MAX_BITS} bits, got {b}")
        self.quantizer.num_bits = b

    def _amax(self) -> torch.Tensor | None:
        amax = self.quantizer.amax
        if amax is not None or self.tensor is None:
            return amax
        w, axis = self.tensor.detach(), self.quantizer.axis
        if axis is None:
            return w.abs().amax()
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        keep = {a % w.dim() for a in axes}
        return w.abs().amax(dim=tuple(d for d in range(w.dim()) if d not in keep))

    def quant_range(self) -> torch.Tensor:
        """``2 * amax`` (signed) or ``amax`` (unsigned), detached; NaN before calibration
        of an activation quantizer."""
        amax = self._amax()
        if amax is None:
            return torch.tensor(float("nan"))
        return amax.detach().float().abs() * (2.0 if self.signed else 1.0)

    def __repr__(self) -> str:
        return f"ModelOptQuantizerAdapter(bits={self.bits}, signed={self.signed})"


def _why_not(q: nn.Module) -> str | None:
    from modelopt.torch.quantization.nn import TensorQuantizer

    if not isinstance(q, TensorQuantizer):
        return f"{type(q).__name__} is not a single TensorQuantizer"
    if not isinstance(q.num_bits, int):
        return f"num_bits={q.num_bits} is a float format"
    return None


def find(model: nn.Module) -> Found:
    """Targets of every Linear/Conv layer with an enabled integer ``weight_quantizer``."""
    from modelopt.torch.quantization.nn import SequentialQuantizer, TensorQuantizer

    out, skipped = [], []
    for name, module in unwrap(model).named_modules():
        wq = getattr(module, "weight_quantizer", None)
        if not isinstance(wq, TensorQuantizer | SequentialQuantizer):
            continue
        if not isinstance(module, LAYER_TYPES):
            continue
        if isinstance(wq, TensorQuantizer) and not wq.is_enabled:
            continue  # not quantized
        name = name or ROOT
        reason = _why_not(wq)
        if reason is not None:
            skipped.append((name, reason))
            continue
        iq = getattr(module, "input_quantizer", None)
        act = None
        if isinstance(iq, TensorQuantizer) and iq.is_enabled and _why_not(iq) is None:
            act = ModelOptQuantizerAdapter(iq)
        out.append(QuantTarget(name, module, module.weight,
                               ModelOptQuantizerAdapter(wq, module.weight), act))
    return Found(out, skipped)


def targets(model: nn.Module) -> list[QuantTarget]:
    """:func:`find`'s targets, for ``QBitOpt(targets=...)``.

    Raises:
        bitalloc.MissingDependencyError: ModelOpt is not installed (names the extra).
    """
    require(IMPORT, EXTRA, FRAMEWORK)
    return find(model).targets
