"""torchao export: an allocation ``{module: format}`` to a ``FqnToConfig``.

Consumed by ``torchao.quantization.quantize_(model, fqn_to_config(allocation))``:
each named linear gets ``IntxWeightOnlyConfig(weight_dtype=torch.int{b},
granularity=PerGroup(g), mapping_type=SYMMETRIC|ASYMMETRIC)``; ggml legacy types map to
their exact integer equivalent (Q4_0 -> int4 group 32), unquantized formats to ``None``
(left in float). torchao is imported when the function runs (it is not a dependency of
the adapter). On CPU torchao's packed kernels cover 4-bit; other widths are stored
as int8 values with per-group scales (``IntxWeightOnlyConfig``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch

from bitalloc.errors import require
from bitalloc.export import hf_name, int_equivalent
from bitalloc.formats import Format

__all__ = ["fqn_to_config"]


def fqn_to_config(allocation: Mapping[str, str | Format]):
    """A ``torchao.quantization.FqnToConfig`` for the allocation (names HF or GGUF).

    Raises:
        ValueError: a format without an integer group equivalent (naming it).
        MissingDependencyError: torchao is not installed (extra ``torchao``).
    """
    q = require("torchao.quantization", "torchao", "bitalloc_torch.export_torchao")
    granularity = require("torchao.quantization.granularity", "torchao", "fqn_to_config")
    mapping = require("torchao.quantization.quant_primitives", "torchao", "fqn_to_config")
    table: OrderedDict = OrderedDict()
    for name, f in allocation.items():
        fmt = int_equivalent(f)
        key = hf_name(name)
        if fmt.kind != "int":
            table[key] = None
            continue
        table[key] = q.IntxWeightOnlyConfig(
            weight_dtype=getattr(torch, f"int{fmt.bits}"),
            granularity=granularity.PerGroup(fmt.block),
            mapping_type=(mapping.MappingType.SYMMETRIC if fmt.symmetric
                          else mapping.MappingType.ASYMMETRIC))
    return q.FqnToConfig(fqn_to_config=table)
