"""Binding for torchao QAT (``quantize_(model, QATConfig(..., step="prepare"))``).

``prepare`` swaps each ``nn.Linear`` for a ``FakeQuantizedLinear`` with a
``weight_fake_quantizer`` (and optionally an ``activation_fake_quantizer``). An
``IntxFakeQuantizer`` reads its ``config`` on every forward, so a bitwidth change is a
new config: :class:`TorchAOIntxAdapter` replaces ``config`` *per module* with
``dataclasses.replace(config, dtype=torch.int<b>)`` (one ``quantize_`` call may share
one config object across modules: it is replaced, never mutated).

- Candidates: ``torch.int2`` .. ``torch.int8`` for signed configs (1-bit signed is the
  degenerate grid ``{-1, 0}``), ``torch.uint1`` .. ``torch.uint8`` for unsigned ones;
  ``min_bits``/``max_bits`` tell QBitOpt.
- Clipping range: dynamic configs (the default) recompute the scale from the tensor on
  every forward with the range ``max - min`` (or ``2 * max|x|``), which does not depend
  on the bits. Static and ``range_learning=True`` configs keep their (learned) scale
  across a change of dtype, so the adapter rescales it by
  ``(qmax_old - qmin_old) / (qmax_new - qmin_new)`` in place (an optimizer holding the
  scale parameter keeps it) and moves an integer zero point so the lower clipping
  bound stays.
- Not allocatable (left out with a warning by ``find_targets``): ``Float8``, ``Int4Weight``
  (fixed int4 kernel layout), MX/NVFP4 fake quantizers, and static float-domain zero
  points. ``FakeQuantizedEmbedding`` layers are not bound (MACs are not counted for
  embeddings); build a :class:`~bitalloc_torch.protocol.QuantTarget` to include one.
- Activations: the layer's ``activation_fake_quantizer`` is its input quantizer
  (allocatable with ``QBitOpt(activations=True)``).
- Checkpoints: the dtype lives in the config, outside the model's ``state_dict``;
  ``QBitOpt.state_dict`` holds the bits and restores them.
- :func:`convert` converts a trained model with each layer at its own bits
  (``FqnToConfig`` of the base PTQ config with each layer's ``weight_dtype``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..protocol import ROOT, QuantTarget, unwrap
from . import LAYER_TYPES, Found, require

__all__ = ["TorchAOIntxAdapter", "find", "targets", "convert", "FRAMEWORK", "IMPORT", "EXTRA",
           "IN_USE"]

FRAMEWORK, IMPORT, EXTRA = "torchao", "torchao", "torchao"
#: Searched only when this module is imported (a prepared model implies it).
IN_USE = "torchao.quantization.qat"
_SIGNED = {getattr(torch, f"int{b}"): b for b in range(1, 8)} | {torch.int8: 8}
_UNSIGNED = {getattr(torch, f"uint{b}"): b for b in range(1, 8)} | {torch.uint8: 8}


def _dtype(bits: int, signed: bool) -> torch.dtype:
    if bits == 8:
        return torch.int8 if signed else torch.uint8
    return getattr(torch, f"int{bits}" if signed else f"uint{bits}")


def _bounds(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


class TorchAOIntxAdapter:
    """A torchao ``IntxFakeQuantizer`` seen through the ``BitQuantizer`` protocol.

    Args:
        fake_quantizer: the ``IntxFakeQuantizer`` (``weight_fake_quantizer`` or
            ``activation_fake_quantizer`` of a ``FakeQuantizedLinear``).
        tensor: the weight it quantizes, if any: :meth:`quant_range` computes a dynamic
            scale from it before the first forward.
    """

    def __init__(self, fake_quantizer: nn.Module, tensor: torch.Tensor | None = None) -> None:
        cfg = getattr(fake_quantizer, "config", None)
        if getattr(cfg, "dtype", None) not in _SIGNED | _UNSIGNED:
            raise ValueError(f"fake_quantizer: expected a torchao IntxFakeQuantizer with an "
                             f"integer dtype, got {fake_quantizer!r}")
        self.fake_quantizer = fake_quantizer
        self.tensor = tensor

    @property
    def signed(self) -> bool:
        """Whether the dtype is signed (``torch.int<b>``)."""
        return self.fake_quantizer.config.dtype in _SIGNED

    @property
    def bits(self) -> int:
        """The dtype's bitwidth."""
        dtype = self.fake_quantizer.config.dtype
        return (_SIGNED | _UNSIGNED)[dtype]

    @property
    def min_bits(self) -> int:
        """2 for signed dtypes, 1 for unsigned."""
        return 2 if self.signed else 1

    @property
    def max_bits(self) -> int:
        """8: torchao's integer fake-quant dtypes stop at ``int8``/``uint8``."""
        return 8

    @property
    def enabled(self) -> bool:
        """The fake quantizer's own ``enabled`` flag."""
        return bool(getattr(self.fake_quantizer, "enabled", True))

    def set_bits(self, bits: int, keep_range: bool = True) -> None:
        """Replace the config's dtype (module docstring); rescale a kept scale."""
        from ..quantizers import check_bits

        b = check_bits(bits, "signed" if self.signed else "unsigned")
        if not self.min_bits <= b <= self.max_bits:
            raise ValueError(f"bits: torchao integer fake quantization supports "
                             f"{self.min_bits}..{self.max_bits} bits, got {b}")
        old = self.bits
        if b == old:
            return
        fq = self.fake_quantizer
        (lo0, hi0), (lo1, hi1) = _bounds(old, self.signed), _bounds(b, self.signed)
        scale, zp = getattr(fq, "scale", None), getattr(fq, "zero_point", None)
        if keep_range and isinstance(scale, torch.Tensor):
            with torch.no_grad():
                lower = None if zp is None else (lo0 - zp.float()) * scale.float()
                new_scale = scale * ((hi0 - lo0) / (hi1 - lo1))
                new_zp = None
                if lower is not None and not fq.config.is_symmetric:
                    new_zp = torch.round(lo1 - lower / new_scale.float()).clamp(lo1, hi1)
                if isinstance(scale, nn.Parameter):  # learned: in place, the optimizer keeps it
                    scale.copy_(new_scale)
                    if new_zp is not None:
                        zp.copy_(new_zp.to(zp.dtype))
                else:  # a dynamic scale cached from the last forward (recomputed next time)
                    fq.scale = new_scale.detach()
                    if new_zp is not None:
                        fq.zero_point = new_zp.to(zp.dtype).detach()
        fq.config = dataclasses.replace(fq.config, dtype=_dtype(b, self.signed))

    def quant_range(self) -> torch.Tensor:
        """``scale * (qmax - qmin)``: per group, per channel or per token (detached).

        NaN before the first forward of an activation quantizer (no scale yet): QBitOpt
        then skips the reallocation with a warning rather than guess.
        """
        fq = self.fake_quantizer
        if getattr(fq, "scale", None) is None and self.tensor is not None:
            with torch.no_grad():
                fq(self.tensor.detach())
        scale = getattr(fq, "scale", None)
        if scale is None:
            return torch.tensor(float("nan"))
        lo, hi = _bounds(self.bits, self.signed)
        return scale.detach().float().abs() * float(hi - lo)

    def __repr__(self) -> str:
        return f"TorchAOIntxAdapter(bits={self.bits}, signed={self.signed})"


def _why_not(fq: Any) -> str | None:
    """``None`` when ``fq`` is allocatable, else the reason."""
    from torchao.quantization.qat import IntxFakeQuantizer
    from torchao.quantization.quant_primitives import ZeroPointDomain

    cfg = getattr(fq, "config", None)
    if not isinstance(fq, IntxFakeQuantizer):
        return f"{type(fq).__name__} has a fixed format"
    if cfg.dtype not in _SIGNED | _UNSIGNED:
        return f"dtype {cfg.dtype} is not an integer format"
    if not cfg.is_dynamic and cfg.zero_point_domain == ZeroPointDomain.FLOAT:
        return "a static float-domain zero point cannot be moved to a new grid"
    return None


def find(model: nn.Module) -> Found:
    """Targets of every ``FakeQuantizedLinear`` with an integer weight fake quantizer."""
    from torchao.quantization.qat import FakeQuantizerBase

    out, skipped = [], []
    for name, module in unwrap(model).named_modules():
        wq = getattr(module, "weight_fake_quantizer", None)
        if not isinstance(module, LAYER_TYPES) or not isinstance(wq, FakeQuantizerBase):
            continue
        name = name or ROOT
        reason = _why_not(wq)
        if reason is not None:
            skipped.append((name, reason))
            continue
        aq = getattr(module, "activation_fake_quantizer", None)
        act = TorchAOIntxAdapter(aq) if aq is not None and _why_not(aq) is None else None
        out.append(QuantTarget(name, module, module.weight,
                               TorchAOIntxAdapter(wq, module.weight), act))
    return Found(out, skipped)


def targets(model: nn.Module) -> list[QuantTarget]:
    """:func:`find`'s targets, for ``QBitOpt(targets=...)``.

    Raises:
        bitalloc.MissingDependencyError: torchao is not installed (names the extra).
    """
    require(IMPORT, EXTRA, FRAMEWORK)
    return find(model).targets


def _with_dtype(base_config: Any, dtype: torch.dtype, name: str) -> Any:
    if dataclasses.is_dataclass(base_config) and any(
            f.name == "weight_dtype" for f in dataclasses.fields(base_config)):
        return dataclasses.replace(base_config, weight_dtype=dtype)
    implied = getattr(base_config, "weight_dtype", None)
    if implied == dtype:
        return base_config
    raise ValueError(f"base_config: {type(base_config).__name__} has no weight_dtype field, "
                     f"so layer {name!r} cannot be converted at {dtype}")


def convert(model: nn.Module, base_config: Any) -> nn.Module:
    """torchao's ``step="convert"`` with every bound layer at its current bits.

    Args:
        model: a model prepared with ``QATConfig(base_config, step="prepare")`` (or with
            explicit fake-quantize configs), after QBitOpt changed its bits.
        base_config: the PTQ config to convert with, e.g. ``IntxWeightOnlyConfig(
            weight_dtype=torch.int4, granularity=PerGroup(32))``; its ``weight_dtype`` is
            replaced per layer.

    Returns:
        ``model``, converted in place (as ``quantize_`` does).

    Raises:
        bitalloc.MissingDependencyError: torchao is not installed (names the extra).
        ValueError: ``base_config`` cannot express a layer's bits.
    """
    require(IMPORT, EXTRA, FRAMEWORK)
    from torchao.quantization import FqnToConfig, quantize_
    from torchao.quantization.qat import QATConfig

    configs = {}
    for t in find(model).targets:
        fqn = "" if t.name == ROOT else t.name
        dtype = t.quantizer.fake_quantizer.config.dtype
        configs[fqn] = QATConfig(_with_dtype(base_config, dtype, t.name), step="convert")
    if not configs:
        raise ValueError("model: has no torchao fake-quantized layers to convert")
    quantize_(unwrap(model), FqnToConfig(configs), filter_fn=None)
    return model
