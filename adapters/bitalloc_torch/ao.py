"""Binding for ``torch.ao.quantization`` QAT models (``prepare_qat``) -- deprecated.

``torch.ao.quantization`` is deprecated upstream (torch 2.13's ``prepare_qat`` warns it
"will be removed"; the successor is torchao, bound in
:mod:`bitalloc_torch.frameworks.torchao_qat`). This binding keeps working while torch
ships the module and will be removed with it; new code should use torchao QAT.

``prepare_qat`` gives each Linear/Conv a ``weight_fake_quant`` (a ``FakeQuantize``
subclass). :class:`AOFakeQuantizeAdapter` presents one as a
:class:`~bitalloc_torch.targets.BitQuantizer`, so QBitOpt allocates these models with
no change to them: ``QBitOpt(prepared_model, ...)`` finds the layers itself.

Changing the bitwidth rewrites ``quant_min``/``quant_max`` on the fake-quantize
module *and* on its observer (which the fused kernels and ``convert`` read), keeping
the grid's kind: signed stays signed, a restricted signed range (``[-127, 127]``)
stays restricted, unsigned stays unsigned. With ``keep_range=True`` the scale is
multiplied by ``old_levels / new_levels`` and the zero point is moved so the lower
clipping bound stays where it was. While the observer is enabled it recomputes the
scale from its running min/max with the new integer range on the next forward, which
is consistent with the same clipping range.

Activation quantizers of eager-mode ``torch.ao`` models sit on the *previous* module's
output, so they are not tied to a layer here: BOPs use ``act_bits=8`` for these layers
unless a target supplies an input quantizer.
"""

from __future__ import annotations

import torch
from torch import nn

from .protocol import QuantTarget
from .quantizers import check_bits

try:  # torch.ao.quantization is deprecated upstream; keep working if it disappears
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase
except ImportError:  # pragma: no cover
    FakeQuantizeBase = None

__all__ = ["AOFakeQuantizeAdapter", "ao_target", "FRAMEWORK"]

#: Display name used by :func:`bitalloc_torch.targets.find_targets`.
FRAMEWORK = "torch.ao.quantization"

_DTYPE_RANGE = {torch.qint8: (-128, 127), torch.quint8: (0, 255), torch.int8: (-128, 127),
                torch.uint8: (0, 255), torch.qint32: (-(2**31), 2**31 - 1),
                torch.int32: (-(2**31), 2**31 - 1)}


class AOFakeQuantizeAdapter:
    """A ``torch.ao`` ``FakeQuantize`` module seen through the ``BitQuantizer`` protocol.

    Args:
        fake_quant: a ``torch.ao.quantization.FakeQuantize`` (or subclass) module.

    Example:
        >>> import torch
        >>> from torch.ao.quantization import FakeQuantize
        >>> fq = FakeQuantize(quant_min=-128, quant_max=127, dtype=torch.qint8,
        ...                   qscheme=torch.per_tensor_symmetric)
        >>> a = AOFakeQuantizeAdapter(fq)
        >>> a.bits
        8
        >>> a.set_bits(4)
        >>> fq.quant_min, fq.quant_max
        (-8, 7)
    """

    def __init__(self, fake_quant: nn.Module) -> None:
        if not all(hasattr(fake_quant, a) for a in ("quant_min", "quant_max", "scale")):
            raise ValueError("fake_quant: expected a torch.ao FakeQuantize module with "
                             "quant_min, quant_max and scale")
        self.fake_quant = fake_quant

    @property
    def signed(self) -> bool:
        """Whether the integer grid has negative levels."""
        return int(self.fake_quant.quant_min) < 0

    @property
    def min_bits(self) -> int:
        """Smallest bitwidth accepted (2 for a signed grid, else 1)."""
        return 2 if self.signed else 1

    @property
    def max_bits(self) -> int:
        """Largest bitwidth the fake quantizer's integer dtype holds (at most 16)."""
        low, high = _DTYPE_RANGE.get(getattr(self.fake_quant, "dtype", None), (0, 2**16 - 1))
        return min(16, (high - low).bit_length())

    @property
    def bits(self) -> int:
        """Bits needed for the current integer range."""
        levels = int(self.fake_quant.quant_max) - int(self.fake_quant.quant_min) + 1
        return max(1, (levels - 1).bit_length())

    def _grid(self, b: int) -> tuple[int, int]:
        fq = self.fake_quant
        if not self.signed:
            return 0, 2**b - 1
        restricted = int(fq.quant_min) == -int(fq.quant_max)
        return -(2 ** (b - 1)) + int(restricted), 2 ** (b - 1) - 1

    def set_bits(self, bits: int, keep_range: bool = True) -> None:
        """Rewrite ``quant_min``/``quant_max`` for ``bits`` (see the module docstring)."""
        b = check_bits(bits, "signed" if self.signed else "unsigned")
        fq = self.fake_quant
        qmin, qmax = self._grid(b)
        old_min, old_max = int(fq.quant_min), int(fq.quant_max)
        if (qmin, qmax) == (old_min, old_max):
            return
        low, high = _DTYPE_RANGE.get(getattr(fq, "dtype", None), (qmin, qmax))
        if qmin < low or qmax > high:
            raise ValueError(f"bits: {b} bits do not fit the fake quantizer's dtype {fq.dtype}")
        if keep_range:
            with torch.no_grad():
                ratio = (old_max - old_min) / (qmax - qmin)
                lower = (old_min - fq.zero_point.float()) * fq.scale
                fq.scale.mul_(ratio)
                zp = torch.round(qmin - lower / fq.scale).clamp(qmin, qmax)
                fq.zero_point.copy_(zp.to(fq.zero_point.dtype))
        fq.quant_min, fq.quant_max = qmin, qmax
        obs = getattr(fq, "activation_post_process", None)
        if obs is not None and hasattr(obs, "quant_min"):
            obs.quant_min, obs.quant_max = qmin, qmax
            obs.has_customized_qrange = True

    def quant_range(self) -> torch.Tensor:
        """``scale * (quant_max - quant_min)``, per channel or per tensor."""
        fq = self.fake_quant
        return fq.scale.detach().float() * float(int(fq.quant_max) - int(fq.quant_min))

    def __repr__(self) -> str:
        return f"AOFakeQuantizeAdapter(bits={self.bits}, {type(self.fake_quant).__name__})"


def ao_target(name: str, module: nn.Module) -> QuantTarget | None:
    """A target for a ``torch.ao`` QAT layer (one with ``weight_fake_quant``), else ``None``."""
    fq = getattr(module, "weight_fake_quant", None)
    weight = getattr(module, "weight", None)
    if FakeQuantizeBase is None or not isinstance(fq, FakeQuantizeBase):
        return None
    if not isinstance(weight, torch.Tensor):
        return None
    return QuantTarget(name, module, weight, AOFakeQuantizeAdapter(fq), None)
