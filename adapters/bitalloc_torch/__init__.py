"""bitalloc_torch: the torch adapter of bitalloc (quantizers, FIT, QBitOpt, bindings).

Install with ``pip install 'bitalloc[torch]'``. The contract is DESIGN.md section 5::

    import bitalloc as ba, bitalloc_torch as bt

    model = bt.fold_batchnorm(model)                                # in place
    model = bt.quantize_model(model, bits=8, act_bits=8, skip=())   # in place
    qb = bt.QBitOpt(model, constraints=[ba.AverageBits(3.0)], bits=(2, 3, 4, 5, 6, 7, 8),
                    every=250, method="auto")
    for x, y in loader:                      # the user's own loop, any optimizers
        loss = loss_fn(model(x), y)
        loss.backward()
        qb.step()                            # accumulates FIT; every `every` steps solves
        opt.step(); opt.zero_grad()

Modules: :mod:`~bitalloc_torch.fold` (fold_batchnorm, the first step of the recipe),
:mod:`~bitalloc_torch.quantizers` (LSQ fake quantizers),
:mod:`~bitalloc_torch.model` (quantize_model, calibrate, param_groups),
:mod:`~bitalloc_torch.sensitivity` (FIT, Hutchinson), :mod:`~bitalloc_torch.problem`
(problems and MACs from a model), :mod:`~bitalloc_torch.qbitopt` (QBitOpt),
:mod:`~bitalloc_torch.targets` (the quantizer protocol for other frameworks),
:mod:`~bitalloc_torch.ao` (torch.ao binding), :mod:`~bitalloc_torch.distributed` (DDP).
"""

from .ao import AOFakeQuantizeAdapter
from .distributed import sync_quantizers
from .fold import fold_batchnorm
from .model import (
    QuantConv1d,
    QuantConv2d,
    QuantConv3d,
    QuantLinear,
    apply_bits,
    calibrate,
    param_groups,
    quantize_model,
    quantized_layers,
)
from .problem import layer_macs, model_groups, problem_from_model
from .qbitopt import QBitOpt, Reallocation
from .quantizers import LSQQuantizer
from .sensitivity import (
    FITAccumulator,
    fit_sensitivity,
    hutchinson_sensitivity,
    hutchinson_trace,
)
from .targets import BitQuantizer, QuantTarget, find_targets

__all__ = [
    "fold_batchnorm", "quantize_model", "calibrate", "param_groups", "quantized_layers",
    "apply_bits",
    "LSQQuantizer", "QuantLinear", "QuantConv1d", "QuantConv2d", "QuantConv3d",
    "fit_sensitivity", "hutchinson_sensitivity", "hutchinson_trace", "FITAccumulator",
    "problem_from_model", "layer_macs", "model_groups",
    "QBitOpt", "Reallocation",
    "BitQuantizer", "QuantTarget", "find_targets", "AOFakeQuantizeAdapter",
    "sync_quantizers",
]
