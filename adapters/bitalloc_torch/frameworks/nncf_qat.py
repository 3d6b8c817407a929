"""Binding for NNCF-quantized torch models (``nncf.quantize(model, dataset)``, then QAT).

NNCF 3.x keeps its quantizers in the model's hook storage (``model.__nncf_hooks``):
weight quantizers are *pre*-hooks on port 1 of a layer's ``conv2d``/``linear`` op, named
``"<module path with />/<op>/<call>__1"``; activation quantizers are *post*-hooks on
the outputs of the ops that feed the next layer. :class:`NNCFQuantizerAdapter` sets
``BaseQuantizer.num_bits`` (its setter refreshes the integer levels).

- Clipping range: ``SymmetricQuantizer`` learns ``scale`` (the upper clipping bound;
  the lower is ``-scale * 2**(b-1) / (2**(b-1) - 1)``) and ``AsymmetricQuantizer``
  learns ``input_low``/``input_range``; the levels follow ``num_bits``, so a change of
  bits keeps the learned range with no rescaling.
- Candidates: 2..8 bits (NNCF's integer formats).
- Checkpoints: ``num_bits`` is a parameter of the quantizer, so it is in the model's
  ``state_dict`` as well as in QBitOpt's.
- Activations: the post-hook quantizers sit on op outputs and are not tied to one
  layer (a tensor may feed several), so they are not allocated; they keep their bits
  and ``BOPsBudget`` counts 8-bit inputs for these layers (as for ``torch.ao``).
- The first quantized forward compiles NNCF's C++ extension (minutes on a small CPU,
  cached afterwards); set ``NNCF_EXTENSION_LOAD_TIMEOUT=0`` so the build is not cut off.
"""

from __future__ import annotations

import torch
from torch import nn

from ..protocol import ROOT, QuantTarget, unwrap
from . import LAYER_TYPES, Found, require

__all__ = ["NNCFQuantizerAdapter", "find", "targets", "FRAMEWORK", "IMPORT", "EXTRA", "IN_USE"]

FRAMEWORK, IMPORT, EXTRA = "NNCF", "nncf", "nncf"
#: Searched only when this module is imported (a prepared model implies it).
IN_USE = "nncf.torch.function_hook"
HOOKS = "__nncf_hooks"
WEIGHT_PORT = 1


class NNCFQuantizerAdapter:
    """An NNCF ``BaseQuantizer`` (symmetric or asymmetric) as a ``BitQuantizer``."""

    def __init__(self, quantizer: nn.Module) -> None:
        self.quantizer = quantizer

    @property
    def bits(self) -> int:
        """``num_bits``."""
        return int(self.quantizer.num_bits)

    @property
    def min_bits(self) -> int:
        """2."""
        return 2

    @property
    def max_bits(self) -> int:
        """8."""
        return 8

    @property
    def enabled(self) -> bool:
        """Whether quantization is enabled."""
        return bool(self.quantizer.is_enabled_quantization())

    def set_bits(self, bits: int, keep_range: bool = True) -> None:
        """Set ``num_bits`` (the learned range is kept by NNCF itself, module docstring)."""
        from ..quantizers import check_bits

        b = check_bits(bits, "signed")
        if b > self.max_bits:
            raise ValueError(f"bits: NNCF integer quantizers support 2..8 bits, got {b}")
        self.quantizer.num_bits = b

    def quant_range(self) -> torch.Tensor:
        """``input_high - input_low`` (per channel or per tensor), detached."""
        with torch.no_grad():
            low, high = self.quantizer.get_input_low_input_high()
        return (high - low).detach().float().reshape(-1)

    def __repr__(self) -> str:
        return f"NNCFQuantizerAdapter(bits={self.bits}, {type(self.quantizer).__name__})"


def _module_path(op_name: str) -> str:
    """``"features/0/0/conv2d/0"`` -> ``"features.0.0"`` (drop the op and call index)."""
    return ".".join(op_name.split("/")[:-2])


def find(model: nn.Module) -> Found:
    """Targets of every layer whose weight has an NNCF quantizer pre-hook."""
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.quantization.layers import BaseQuantizer

    model = unwrap(model)
    storage = getattr(model, HOOKS, None)
    if storage is None:
        return Found([], [])
    out, skipped, seen = [], [], set()
    for hook_name, hook in storage.named_hooks():
        kind, op_name, port = decode_hook_name(hook_name)
        if kind != "pre_hooks" or port != WEIGHT_PORT or not isinstance(hook, BaseQuantizer):
            continue
        path = _module_path(op_name)
        try:
            module = model.get_submodule(path)
        except AttributeError:
            skipped.append((hook_name, f"op {op_name!r} does not belong to a module"))
            continue
        name = path or ROOT
        if not isinstance(module, LAYER_TYPES) or name in seen:
            skipped.append((hook_name, f"op {op_name!r} is not the one weight of a "
                                       f"Linear/Conv layer"))
            continue
        seen.add(name)
        out.append(QuantTarget(name, module, module.weight, NNCFQuantizerAdapter(hook), None))
    order = {n or ROOT: i for i, (n, _) in enumerate(model.named_modules())}
    out.sort(key=lambda t: order.get(t.name, len(order)))
    return Found(out, skipped)


def targets(model: nn.Module) -> list[QuantTarget]:
    """:func:`find`'s targets, for ``QBitOpt(targets=...)``.

    Raises:
        bitalloc.MissingDependencyError: NNCF is not installed (names the extra).
    """
    require(IMPORT, EXTRA, FRAMEWORK)
    return find(model).targets
