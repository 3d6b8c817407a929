"""Binding for Brevitas quantized layers (``brevitas.nn.QuantConv2d``/``QuantLinear``...).

Layers built directly from ``brevitas.nn``, or swapped in by Brevitas' own
``brevitas.graph.quantize.layerwise_quantize`` / ``quantize``, carry a weight proxy
(``layer.weight_quant``) and an input proxy (``layer.input_quant``). Their integer
quantizer (``RescalingIntQuant``) reads its bitwidth from
``msb_clamp_bit_width_impl`` on every forward; Brevitas has no public setter
(Xilinx/brevitas#702), so :class:`BrevitasAdapter` writes that module's value:

- ``BitWidthConst`` (the default): the ``StatelessBuffer`` value is filled in place;
  it is *not* in the model's ``state_dict`` (QBitOpt's ``state_dict`` holds the bits).
- ``BitWidthStatefulConst`` (``bit_width_impl_type="stateful_const"``): its buffer is
  filled and travels with the model's ``state_dict`` too.
- ``BitWidthParameter`` (a learned bitwidth) and quantizers without an integer bit
  width (float, binary, ternary) are left out with a warning.

Clipping range: Brevitas learns (or measures) the float threshold and derives
``scale = threshold / int_threshold(bits)`` on every forward, so a change of bits keeps
the clipping range with no rescaling. Candidates: 2..16 bits for signed quantizers,
1..16 unsigned. Activations: the layer's enabled ``input_quant`` is its input
quantizer; standalone ``QuantReLU``/``QuantIdentity`` modules sit on another module's
output and are not tied to a layer (they keep their bits).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..protocol import ROOT, QuantTarget, unwrap
from . import LAYER_TYPES, Found, require

__all__ = ["BrevitasAdapter", "find", "targets", "FRAMEWORK", "IMPORT", "EXTRA", "IN_USE"]

FRAMEWORK, IMPORT, EXTRA = "Brevitas", "brevitas", "brevitas"
#: Searched only when this module is imported (a prepared model implies it).
IN_USE = "brevitas.proxy"
MAX_BITS = 16


class BrevitasAdapter:
    """A Brevitas quant proxy's integer quantizer through the ``BitQuantizer`` protocol.

    The bit-width module is looked up on every call: Brevitas rebuilds a proxy's tensor
    quantizer from its injector when the model loads a ``state_dict`` (a
    ``BitWidthConst`` then returns to the injector's bits; QBitOpt's ``load_state_dict``
    sets them again).

    Args:
        proxy: ``layer.weight_quant`` or ``layer.input_quant``.
    """

    def __init__(self, proxy: nn.Module) -> None:
        self.proxy = proxy

    @property
    def tensor_quant(self) -> nn.Module:
        """The proxy's current integer tensor quantizer."""
        return getattr(self.proxy, "fused_activation_quant_proxy", self.proxy).tensor_quant

    @property
    def bit_width_impl(self) -> nn.Module:
        """The ``BitWidthConst``/``BitWidthStatefulConst`` the tensor quantizer reads."""
        return self.tensor_quant.msb_clamp_bit_width_impl

    @property
    def signed(self) -> bool:
        """Whether the integer grid is signed."""
        return bool(self.proxy.is_signed)

    @property
    def narrow(self) -> bool:
        """Whether a signed grid drops its most negative level (``[-(2**(b-1)-1), ...]``)."""
        return bool(self.proxy.is_narrow_range) and self.signed

    @property
    def bits(self) -> int:
        """The bitwidth the quantizer uses now."""
        return int(round(float(self.bit_width_impl())))

    @property
    def min_bits(self) -> int:
        """2 for signed grids, 1 for unsigned."""
        return 2 if self.signed else 1

    @property
    def max_bits(self) -> int:
        """16."""
        return MAX_BITS

    @property
    def enabled(self) -> bool:
        """The proxy's ``is_quant_enabled``."""
        return bool(self.proxy.is_quant_enabled)

    def set_bits(self, bits: int, keep_range: bool = True) -> None:
        """Write the bitwidth (the range is kept by Brevitas itself, module docstring)."""
        from ..quantizers import check_bits

        b = check_bits(bits, "signed" if self.signed else "unsigned")
        with torch.no_grad():
            buf = self.bit_width_impl.bit_width
            value = buf.value if hasattr(buf, "value") else buf  # StatelessBuffer or buffer
            value.fill_(float(b))

    def quant_range(self) -> torch.Tensor:
        """``scale * (qmax - qmin)`` (per channel or per tensor), detached; NaN when the
        proxy cannot report a scale yet."""
        try:
            scale = self.proxy.scale()
        except RuntimeError:  # dynamic activation quantizers have no stored scale
            scale = None
        if scale is None:
            return torch.tensor(float("nan"))
        levels = 2**self.bits - 1 - int(self.narrow)
        return scale.detach().float().abs() * float(levels)

    def __repr__(self) -> str:
        return f"BrevitasAdapter(bits={self.bits}, signed={self.signed})"


def _bit_width_impl(tensor_quant: Any) -> tuple[nn.Module | None, str | None]:
    from brevitas.core.bit_width import BitWidthConst, BitWidthStatefulConst

    impl = getattr(tensor_quant, "msb_clamp_bit_width_impl", None)
    if isinstance(impl, BitWidthConst | BitWidthStatefulConst):
        return impl, None
    if impl is None:
        return None, f"{type(tensor_quant).__name__} has no integer bit width"
    return None, f"its bit width is {type(impl).__name__}, not a settable constant"


def _input_adapter(module: nn.Module) -> BrevitasAdapter | None:
    from brevitas.proxy.runtime_quant import ActQuantProxyFromInjectorBase

    proxy = getattr(module, "input_quant", None)
    if not isinstance(proxy, ActQuantProxyFromInjectorBase) or not proxy.is_quant_enabled:
        return None
    fused = getattr(proxy, "fused_activation_quant_proxy", None)
    impl, _ = _bit_width_impl(getattr(fused, "tensor_quant", None))
    return None if impl is None else BrevitasAdapter(proxy)


def find(model: nn.Module) -> Found:
    """Targets of every Brevitas Linear/Conv layer with an enabled integer weight quantizer."""
    from brevitas.proxy.parameter_quant import WeightQuantProxyFromInjectorBase

    out, skipped = [], []
    for name, module in unwrap(model).named_modules():
        proxy = getattr(module, "weight_quant", None)
        if not isinstance(proxy, WeightQuantProxyFromInjectorBase) or not proxy.is_quant_enabled:
            continue
        if not isinstance(module, LAYER_TYPES):
            continue
        name = name or ROOT
        impl, reason = _bit_width_impl(proxy.tensor_quant)
        if impl is None:
            skipped.append((name, reason))
            continue
        out.append(QuantTarget(name, module, module.weight, BrevitasAdapter(proxy),
                               _input_adapter(module)))
    return Found(out, skipped)


def targets(model: nn.Module) -> list[QuantTarget]:
    """:func:`find`'s targets, for ``QBitOpt(targets=...)``.

    Raises:
        bitalloc.MissingDependencyError: Brevitas is not installed (names the extra).
    """
    require(IMPORT, EXTRA, FRAMEWORK)
    return find(model).targets
