"""What QBitOpt allocates: the quantizer protocol and the quantized-layer record.

QBitOpt does not care which framework made a quantizer. A quantizer it can drive
offers three things (:class:`BitQuantizer`):

- ``bits`` (read): the current bitwidth, an ``int``;
- ``set_bits(bits, keep_range=True)``: change the bitwidth. With ``keep_range=True``
  the clipping range must stay the same (rescale the step/scale by
  ``(2**old - 1) / (2**new - 1)``); with ``False`` only the integer grid changes
  (QBitOpt uses that when restoring a checkpoint whose scales already match);
- ``quant_range()``: the current clipping range as a tensor (one value per channel,
  or a scalar), used by FIT (``sensitivity = Fisher trace * range**2``).

Optionally ``min_bits`` / ``max_bits`` (ints): candidates outside them are not
allowed for that quantizer (e.g. at most 8 for an ``int8`` fake quantizer), and
``enabled`` (bool): a disabled input quantizer means a float input (32 bits in
``BOPsBudget``) and is not an activation group.

A :class:`QuantTarget` ties one such weight quantizer to its layer: a name, the
module (for MAC counting and activation hooks), the latent float weight whose
``.grad`` FIT reads, and optionally the layer's input quantizer. Bind another
framework by building a list of targets and passing it as ``QBitOpt(targets=...)``,
or see :mod:`bitalloc_torch.targets` for the bindings found automatically.

This module is the bottom layer of the bindings: it imports neither the bindings
(:mod:`bitalloc_torch.ao`, :mod:`bitalloc_torch.frameworks`) nor the discovery
(:mod:`bitalloc_torch.targets`), which import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["BitQuantizer", "QuantTarget", "unwrap", "select", "ROOT"]

#: Group name of the root module when the model itself is one quantized layer.
ROOT = "<root>"


@runtime_checkable
class BitQuantizer(Protocol):
    """The protocol a quantizer must offer to be allocated by QBitOpt (module docstring)."""

    @property
    def bits(self) -> int: ...

    def set_bits(self, bits: int, keep_range: bool = True) -> None: ...

    def quant_range(self) -> torch.Tensor: ...


@dataclass
class QuantTarget:
    """One allocatable layer.

    Attributes:
        name: group name, the module's fully qualified name in the model.
        module: the layer (hooks for MACs and activation statistics go here).
        weight: the latent float weight (FIT reads its ``.grad``).
        quantizer: the weight quantizer (a :class:`BitQuantizer`).
        input_quantizer: the layer's input quantizer, or ``None``.

    Example (binding a quantizer from another framework):
        >>> import torch, torch.nn as nn, bitalloc as ba, bitalloc_torch as bt
        >>> from bitalloc_torch.protocol import BitQuantizer, QuantTarget
        >>> class MyQuant(nn.Module):          # anything with the three protocol members
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.bits, self.scale = 8, torch.tensor(0.01)
        ...     def set_bits(self, bits, keep_range=True):
        ...         if keep_range:
        ...             self.scale = self.scale * (2**self.bits - 1) / (2**bits - 1)
        ...         self.bits = bits
        ...     def quant_range(self):
        ...         return self.scale * (2**self.bits - 1)
        >>> layers = nn.ModuleDict({"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)})
        >>> targets = [QuantTarget(n, m, m.weight, MyQuant()) for n, m in layers.items()]
        >>> isinstance(targets[0].quantizer, BitQuantizer)
        True
        >>> qb = bt.QBitOpt(layers, [ba.AverageBits(3.0)], bits=(2, 4), targets=targets)
        >>> sorted(qb.bits.values()), qb.usage()["average_bits"]
        ([2, 4], (3.0, 3.0))
    """

    name: str
    module: nn.Module
    weight: torch.Tensor
    quantizer: BitQuantizer
    input_quantizer: BitQuantizer | None = None


def unwrap(model: nn.Module) -> nn.Module:
    """The wrapped module of ``DistributedDataParallel``/``DataParallel``, else ``model``."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def select(names: Iterable[str], spec, arg: str,
           modules: dict[str, nn.Module] | None = None) -> set[str]:
    """Names matched by ``spec``: an iterable of names or a predicate ``(name, module)``.

    Raises:
        ValueError: ``spec`` names something not in ``names`` (message starts with ``arg``).
    """
    names = list(names)
    if spec is None:
        return set()
    if callable(spec):
        pred: Callable = spec
        mods = modules or {}
        return {n for n in names if pred(n, mods.get(n))}
    if isinstance(spec, str):
        spec = [spec]
    try:
        wanted = set(spec)
    except TypeError:
        raise ValueError(f"{arg}: must be module names or a predicate, got {spec!r}") from None
    unknown = sorted(w for w in wanted if w not in set(names))
    if unknown:
        raise ValueError(f"{arg}: unknown module names {unknown}")
    return wanted
