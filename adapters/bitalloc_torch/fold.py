"""Fold BatchNorm into the convolution before it: the first step of the QAT recipe.

Deployed integer kernels have no BatchNorm: its per-channel affine map is folded into
the preceding convolution's weight and bias. Quantizing a convolution *with* a
BatchNorm after it lets the BatchNorm absorb a per-channel scale, so per-tensor weight
quantization behaves almost per-channel and the measured accuracy is optimistic. Fold
first, then :func:`~bitalloc_torch.quantize_model`.

For a convolution ``y = W * x + b`` followed by ``BN(y) = g * (y - mu) / sqrt(var + eps)
+ beta`` (running statistics, i.e. eval mode), the fold is per output channel ``c``::

    W'_c = W_c * g_c / sqrt(var_c + eps)
    b'_c = (b_c - mu_c) * g_c / sqrt(var_c + eps) + beta_c

and the BatchNorm is replaced by ``nn.Identity`` (module names are kept, so a checkpoint
of the float model still loads before folding). The folded model computes the
eval-mode output of the original one; in training mode it has no BatchNorm at all.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .targets import unwrap

__all__ = ["fold_batchnorm"]

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, CONVS) and isinstance(bn, NORMS)
            and bn.track_running_stats and bn.running_mean is not None
            and bn.num_features == conv.out_channels)


@torch.no_grad()
def _fold_pair(conv: nn.Module, bn: nn.Module) -> None:
    w = conv.weight
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(var)
    new_w = w.double() * scale.reshape((-1,) + (1,) * (w.dim() - 1))
    new_b = (bias - mean) * scale + beta
    w.copy_(new_w.to(w.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_b.to(dtype=w.dtype, device=w.device))
    else:
        conv.bias.copy_(new_b.to(conv.bias.dtype))


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, module)


def _sequential_pairs(root: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, mod in root.named_modules():
        if not isinstance(mod, nn.Sequential):
            continue
        children = list(mod.named_children())
        for (n1, a), (n2, b) in zip(children, children[1:]):
            if _foldable(a, b):
                prefix = f"{name}." if name else ""
                pairs.append((prefix + n1, prefix + n2))
    return pairs


def _fx_pairs(root: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) pairs where the BN's only input is the conv's output and the conv's
    output feeds nothing else; ``[]`` when the model does not trace."""
    try:
        import torch.fx

        graph = torch.fx.symbolic_trace(root).graph
    except Exception:  # noqa: BLE001 - any tracing failure: fall back to nn.Sequential pairs
        return []
    modules = dict(root.named_modules())
    uses: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            uses[node.target] = uses.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module"
                and len(src.users) == 1):
            continue
        conv, bn = modules.get(src.target), modules.get(node.target)
        if (conv is not None and bn is not None and _foldable(conv, bn)
                and uses[src.target] == 1 and uses[node.target] == 1):
            pairs.append((src.target, node.target))
    return pairs


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution into it, in place.

    Pairs are found as neighbours in an ``nn.Sequential`` and, when the model traces
    with ``torch.fx``, as a convolution whose only consumer is a BatchNorm (each module
    called once). A BatchNorm after anything else (a Linear, a pooling, an addition) or
    after a convolution whose output is also used elsewhere is left alone, as are
    transposed convolutions, and BatchNorms without running statistics. Each folded
    BatchNorm becomes ``nn.Identity``; the convolution gains a bias if it had none.

    Args:
        model: a float model (DDP/DataParallel wrappers are looked through). Fold
            before :func:`~bitalloc_torch.quantize_model` and before building the
            optimizer (a new bias parameter may be created).

    Returns:
        ``model`` itself. Eval-mode outputs are unchanged (up to float rounding).

    Warns:
        UserWarning: nothing was folded (the model is returned unchanged).

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
        >>> _ = m[1].running_mean.uniform_(-1, 1), m[1].running_var.uniform_(0.5, 2)
        >>> x = torch.randn(2, 3, 8, 8)
        >>> y = m(x)
        >>> m = bt.fold_batchnorm(m)
        >>> type(m[1]).__name__, bool(torch.allclose(m(x), y, atol=1e-5))
        ('Identity', True)
    """
    root = unwrap(model)
    pairs = list(dict.fromkeys(_sequential_pairs(root) + _fx_pairs(root)))
    done: set[str] = set()
    for conv_name, bn_name in pairs:
        if bn_name in done or conv_name in done:
            continue
        _fold_pair(root.get_submodule(conv_name), root.get_submodule(bn_name))
        _set_module(root, bn_name, nn.Identity())
        done.update((conv_name, bn_name))
    if not done:
        warnings.warn("fold_batchnorm: no BatchNorm directly follows a convolution; the model "
                      "is returned unchanged", UserWarning, stacklevel=2)
    return model
