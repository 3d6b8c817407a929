"""Keeping QBitOpt's decisions identical on every rank (``torch.distributed``).

QBitOpt calls :func:`all_reduce_mean` on the sensitivity vector before each solve
(weight gradients are already averaged by DDP, activation gradients and the local
data are not), so every rank solves the same problem; it then :func:`broadcast`\\ s the
chosen bits from rank 0, so even a solver that is not deterministic (an exact solver
under a time limit) cannot make ranks disagree. Both are one small collective per
reallocation, none per step.

Quantizer steps initialised lazily from each rank's first batch would differ between
ranks; call :func:`sync_quantizers` after initialisation (or :func:`~bitalloc_torch.calibrate`
on the same data everywhere) before training.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .quantizers import LSQQuantizer
from .targets import unwrap

__all__ = ["is_distributed", "all_reduce_mean", "broadcast", "sync_quantizers"]


def is_distributed(group=None) -> bool:
    """Whether a process group with more than one rank is initialised."""
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size(group) > 1)


def _comm_device(t: torch.Tensor, group=None) -> torch.device:
    backend = dist.get_backend(group)
    if backend == "nccl" and t.device.type != "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return t.device


def all_reduce_mean(t: torch.Tensor, group=None) -> torch.Tensor:
    """The mean of ``t`` over ranks (a new tensor; ``t`` itself when not distributed)."""
    if not is_distributed(group):
        return t
    out = t.detach().to(_comm_device(t, group), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
    return (out / dist.get_world_size(group)).to(t.device)


def broadcast(t: torch.Tensor, src: int = 0, group=None) -> torch.Tensor:
    """``t`` as held by rank ``src`` (a new tensor; ``t`` itself when not distributed)."""
    if not is_distributed(group):
        return t
    out = t.detach().to(_comm_device(t, group), copy=True)
    dist.broadcast(out, src=src, group=group)
    return out.to(t.device)


@torch.no_grad()
def sync_quantizers(model: nn.Module, src: int = 0, group=None) -> None:
    """Copy every LSQ quantizer's bits, step, offset and init flag from rank ``src``.

    Example:
        >>> import torch.nn as nn, bitalloc_torch as bt
        >>> bt.sync_quantizers(bt.quantize_model(nn.Linear(2, 2)))  # no-op without a group
    """
    if not is_distributed(group):
        return
    for q in unwrap(model).modules():
        if not isinstance(q, LSQQuantizer):
            continue
        bits = broadcast(torch.tensor([q.bits], device=q.step.device), src, group)
        q.set_bits(int(bits.item()), keep_range=False)
        for t in (q.step, q.offset, q.initialized):
            if t is not None:
                t.copy_(broadcast(t.float(), src, group))  # copy_ casts back (bool flag)
        q._ready = False
