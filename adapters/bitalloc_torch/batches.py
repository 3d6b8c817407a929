"""The one batch convention of the adapter.

Wherever the adapter takes data (``calibrate``'s batches, ``sample_input`` of
``layer_macs`` / ``model_groups`` / ``QBitOpt``, the batches of ``fit_sensitivity`` and
``hutchinson_trace``), a batch is one of:

- a tensor: the model's input, called as ``model(x)``;
- a tuple or list ``(inputs, targets, ...)``: the first item is the input (a tensor, or a
  dict of keyword arguments), the second the targets where a loss needs them;
- a dict: keyword arguments, called as ``model(**batch)``.

A model with several positional inputs takes them as a dict of keyword arguments.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["batch_inputs", "batch_targets", "run_batch", "leading_batch"]


def batch_inputs(batch: Any, arg: str = "batches") -> Any:
    """The model input of ``batch`` (a tensor or a dict of keyword arguments)."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError(f"{arg}: an empty tuple is not a batch")
        batch = batch[0]
    if isinstance(batch, (torch.Tensor, dict)):
        return batch
    raise ValueError(f"{arg}: each batch must be a tensor, an (inputs, targets) pair or a "
                     f"dict of model arguments, got {type(batch).__name__}")


def batch_targets(batch: Any, arg: str = "batches") -> Any:
    """The targets of an ``(inputs, targets, ...)`` batch."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[1]
    raise ValueError(f"{arg}: each batch must be an (inputs, targets) pair, "
                     f"got {type(batch).__name__}")


def run_batch(model: nn.Module, batch: Any, arg: str = "batches") -> Any:
    """``model(x)`` or ``model(**x)`` for the input ``x`` of ``batch``."""
    x = batch_inputs(batch, arg)
    return model(**x) if isinstance(x, dict) else model(x)


def leading_batch(batch: Any, arg: str = "sample_input") -> int:
    """Size of the leading (batch) dimension of the first tensor in ``batch``'s input."""
    x = batch_inputs(batch, arg)
    tensors = [x] if isinstance(x, torch.Tensor) else [v for v in x.values()
                                                       if isinstance(v, torch.Tensor)]
    if not tensors or tensors[0].dim() == 0:
        raise ValueError(f"{arg}: needs a tensor with a leading batch dimension")
    return int(tensors[0].shape[0])
