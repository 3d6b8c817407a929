"""Bindings of QAT frameworks: each finds a prepared model's quantizers as QuantTargets.

One module per framework, each importing its framework lazily (only when a model is
searched while that framework is already imported, or when its public functions are
called); one pip extra each:

============  ==============================  ===================  ===============
framework     binding module                  extra                tested with
============  ==============================  ===================  ===============
torchao QAT   :mod:`.torchao_qat`             ``bitalloc[torchao]``   torchao 0.18
Brevitas      :mod:`.brevitas_qat`            ``bitalloc[brevitas]``  brevitas 0.13.4
NNCF          :mod:`.nncf_qat`                ``bitalloc[nncf]``      nncf 3.4
ModelOpt      :mod:`.modelopt_qat`            ``bitalloc[modelopt]``  nvidia-modelopt 0.47
AIMET         :mod:`.aimet_qat`               ``bitalloc[aimet]``     (does not import here)
============  ==============================  ===================  ===============

``torch.ao.quantization`` (deprecated upstream) stays in :mod:`bitalloc_torch.ao`.

Every binding module offers:

- ``FRAMEWORK`` (display name), ``IMPORT`` (the framework's top-level package),
  ``EXTRA`` (the bitalloc extra that installs it), ``IN_USE`` (the framework module a
  prepared model implies is imported: discovery searches only then, so it never
  imports a framework);
- ``find(model) -> Found``: the targets and the quantizers left out (with the reason),
  used by :func:`bitalloc_torch.targets.find_targets` (which QBitOpt calls);
- ``targets(model) -> list[QuantTarget]``: the same for ``QBitOpt(targets=...)``; it
  raises :class:`bitalloc.MissingDependencyError` naming the extra when the framework
  is not installed.

The modules are named ``<framework>_qat`` so none shadows the framework it binds.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from torch import nn

from ..protocol import QuantTarget

__all__ = ["BINDINGS", "Found", "binding", "require", "LAYER_TYPES"]

#: Layers the bindings allocate: the kinds whose MACs :func:`bitalloc_torch.layer_macs`
#: counts correctly. Embeddings and transposed convolutions are left to ``targets=``.
LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: Binding modules in discovery order (relative to this package).
BINDINGS = ("torchao_qat", "brevitas_qat", "nncf_qat", "modelopt_qat", "aimet_qat")


class Found(NamedTuple):
    """What a binding found in a model.

    Attributes:
        targets: allocatable layers, in module order.
        skipped: ``(layer or quantizer name, reason)`` of quantizers that belong to the
            framework but whose bitwidth cannot change (they keep their bits).
    """

    targets: list[QuantTarget]
    skipped: list[tuple[str, str]]


def binding(name: str):
    """The binding module ``name`` (one of :data:`BINDINGS`); the framework is not imported."""
    if name not in BINDINGS:
        raise ValueError(f"name: unknown binding {name!r}; expected one of {list(BINDINGS)}")
    return importlib.import_module(f"{__name__}.{name}")


def require(module: str, extra: str, framework: str):
    """Import ``module`` or raise :class:`bitalloc.MissingDependencyError` naming ``extra``."""
    from bitalloc.errors import require as _require_module

    return _require_module(module, extra, f"the {framework} binding of bitalloc_torch")
