"""Float training and evaluation helpers for ``bitalloc demo`` and ``benchmarks/qat.py``.

- **Float model** trained to convergence (:func:`train_float`: SGD with momentum,
  learning rate halved on a validation plateau, early stopping, best checkpoint kept).
- Mini-batches (:func:`batches`), evaluation (:func:`evaluate`) and BatchNorm statistics
  re-estimation (:func:`reestimate_bn`).

The QAT recipe itself (folded BatchNorm, per-tensor weights, separate weight and
activation budgets, the study's arms) is :mod:`bitalloc_torch.demo.recipe`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Data", "batches", "train_float", "evaluate", "reestimate_bn"]


@dataclass
class Data:
    """Train / validation / test tensors (images ``(n, c, h, w)``, labels ``(n,)``)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


# -- basics ------------------------------------------------------------------------------
def batches(x: torch.Tensor, y: torch.Tensor, size: int, gen: torch.Generator):
    """Endless shuffled mini-batches (reshuffled every epoch)."""
    n = len(y)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - size + 1, size):
            idx = perm[i:i + size]
            yield x[idx], y[idx]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy in %, eval mode (the mode is restored)."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train(was)
    return 100.0 * correct / len(y)


@torch.no_grad()
def reestimate_bn(model: nn.Module, x: torch.Tensor, n_batches: int = 20, batch: int = 256,
                  seed: int = 0) -> None:
    """Recompute BatchNorm running statistics with the current (quantized) weights."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m.momentum, m.training) for m in bns]
    was = model.training
    model.train()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        idx = torch.randint(len(x), (min(batch, len(x)),), generator=g)
        model(x[idx])
    for m, (mom, _tr) in zip(bns, saved):
        m.momentum = mom
    model.train(was)


def train_float(model: nn.Module, data: Data, *, batch: int = 128, lr: float = 0.05,
                max_epochs: int = 30, patience: int = 3, min_delta: float = 0.05,
                max_seconds: float | None = None, seed: int = 0, weight_decay: float = 5e-4,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train in float until the validation accuracy stops improving; keep the best weights.

    SGD (momentum 0.9, nesterov), learning rate halved whenever validation accuracy fails
    to improve by ``min_delta`` points; stops after ``patience`` such epochs in a row
    (or ``max_epochs`` / ``max_seconds``).

    Returns:
        ``{"epochs", "val_acc", "test_acc", "seconds", "history", "stopped"}``.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                          weight_decay=weight_decay)
    steps_per_epoch = max(1, len(data.y_train) // batch)
    it = batches(data.x_train, data.y_train, batch, gen)
    best, best_state, bad, history = -1.0, None, 0, []
    t0 = time.perf_counter()
    stopped = "max_epochs"
    for epoch in range(1, max_epochs + 1):
        model.train()
        total = 0.0
        for _ in range(steps_per_epoch):
            xb, yb = next(it)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        val = evaluate(model, data.x_val, data.y_val)
        lr_now = opt.param_groups[0]["lr"]
        history.append({"epoch": epoch, "loss": total / steps_per_epoch, "val_acc": val,
                        "lr": lr_now})
        if log:
            log(f"  float epoch {epoch}: loss {total / steps_per_epoch:.4f} val {val:.2f}% "
                f"lr {lr_now:.4g}")
        if val > best + min_delta:
            best, best_state, bad = val, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            for g in opt.param_groups:
                g["lr"] *= 0.5
            if bad >= patience:
                stopped = "plateau"
                break
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            stopped = "time"
            break
    model.load_state_dict(best_state)
    return {"epochs": len(history), "val_acc": best,
            "test_acc": evaluate(model, data.x_test, data.y_test),
            "seconds": time.perf_counter() - t0, "history": history, "stopped": stopped}
