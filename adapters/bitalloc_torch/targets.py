"""Finding what QBitOpt allocates: the quantized layers of a model, from any bound framework.

:func:`find_targets` is the one entry point (QBitOpt, :func:`~bitalloc_torch.layer_macs`,
:func:`~bitalloc_torch.fit_sensitivity` call it). It looks for, in this order:

- layers made by :func:`bitalloc_torch.quantize_model` (LSQ quantizers);
- ``torch.ao.quantization`` QAT layers (:mod:`bitalloc_torch.ao`, deprecated upstream);
- the QAT frameworks of :mod:`bitalloc_torch.frameworks`: torchao, Brevitas, NNCF,
  ModelOpt (and AIMET when it imports). A framework is searched only when it is
  already imported (a model cannot carry its quantizers otherwise), so finding
  targets never imports a framework.

Rules:

- A model carrying quantizers of two frameworks is refused (``ValueError`` naming
  both): one allocation drives one framework's quantizers; pass ``targets=`` to
  QBitOpt to choose explicitly.
- A quantizer whose bitwidth cannot change (a float format, a learned bitwidth, a
  fixed-format kernel) is left out with a ``UserWarning`` naming it; it keeps its bits
  and is outside the budget, like a layer in ``exclude``.

The protocol and the target record live in :mod:`bitalloc_torch.protocol` (re-exported
here); the bindings import that module, never this one, so there is no import cycle.
"""

from __future__ import annotations

import sys
import warnings

from torch import nn

from . import ao
from .frameworks import BINDINGS, Found, binding
from .protocol import ROOT, BitQuantizer, QuantTarget, select, unwrap
from .quantizers import LSQQuantizer

__all__ = ["BitQuantizer", "QuantTarget", "find_targets", "find_all", "unwrap", "select", "ROOT"]

#: Display name of quantizers made by :func:`bitalloc_torch.quantize_model`.
BITALLOC = "bitalloc (quantize_model)"


def _find_lsq(model: nn.Module) -> Found:
    out = []
    for name, module in model.named_modules():
        wq = getattr(module, "weight_quantizer", None)
        if isinstance(wq, LSQQuantizer):
            out.append(QuantTarget(name or ROOT, module, module.weight, wq,
                                   getattr(module, "input_quantizer", None)))
    return Found(out, [])


def _find_ao(model: nn.Module) -> Found:
    out = [ao.ao_target(name or ROOT, m) for name, m in model.named_modules()]
    return Found([t for t in out if t is not None], [])


def find_all(model: nn.Module) -> dict[str, Found]:
    """What every bound framework finds in ``model``: ``{framework: Found}`` for the
    frameworks with at least one quantizer (allocatable or not), in discovery order.

    Example:
        >>> import torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
        >>> list(find_all(m))
        ['bitalloc (quantize_model)']
    """
    model = unwrap(model)
    found: dict[str, Found] = {}
    for framework, finder in ((BITALLOC, _find_lsq), (ao.FRAMEWORK, _find_ao)):
        f = finder(model)
        if f.targets or f.skipped:
            found[framework] = f
    for name in BINDINGS:
        b = binding(name)
        if b.IN_USE not in sys.modules:
            continue  # not imported: the model cannot carry its quantizers
        f = b.find(model)
        if f.targets or f.skipped:
            found[b.FRAMEWORK] = f
    return found


def find_targets(model: nn.Module) -> list[QuantTarget]:
    """Every allocatable quantized layer of ``model``, in module order (module docstring).

    Raises:
        ValueError: the model carries quantizers of two or more frameworks.

    Example:
        >>> import torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
        >>> [t.name for t in find_targets(m)]
        ['0', '1']
    """
    found = find_all(model)
    if len(found) > 1:
        raise ValueError(f"model: carries quantizers of several frameworks "
                         f"({' and '.join(found)}); QBitOpt allocates one framework's "
                         f"quantizers: remove the others or pass targets=[...]")
    if not found:
        return []
    (framework, (targets, skipped)), = found.items()
    for name, reason in skipped:
        warnings.warn(f"find_targets: {framework} quantizer {name!r} cannot change its "
                      f"bitwidth ({reason}); excluded from the allocation, it keeps its bits",
                      UserWarning, stacklevel=2)
    return targets
