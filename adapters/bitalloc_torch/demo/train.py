"""Shared float / QAT training helpers for ``bitalloc demo`` and ``benchmarks/qat.py``.

One QAT recipe for every arm, so the arms differ only in how bits are chosen:

- **Float model** trained to convergence first (:func:`train_float`: SGD with momentum,
  learning rate halved on a validation plateau, early stopping, best checkpoint kept).
- **QAT** (:func:`run_qat`) starts from that float checkpoint: every Conv/Linear is
  wrapped by :func:`bitalloc_torch.quantize_model` (per-channel LSQ weights, 8-bit
  asymmetric inputs), the first and the last layer stay at 8 bits and out of every
  budget, the chosen bits are set, *then* the quantizers are calibrated (MSE ranges for
  the bits actually used). Weights: SGD momentum 0.9, cosine schedule; quantizer
  parameters: Adam 1e-5, no weight decay (the paper's pipeline, QBITOPT.md). BatchNorm
  statistics are re-estimated before every evaluation.
- **Arms** (:class:`Arm`): ``float``; ``uniform`` (every allocated layer at ``bits``);
  ``pta`` (post-training allocation: FIT once on the converged model quantized at 8 bits,
  with the quantizers' own per-channel ranges, solved once under the budget, then QAT
  with those bits fixed); ``qbitopt`` (starts from the same allocation as ``pta``, then
  :class:`bitalloc_torch.QBitOpt` reallocates every ``every`` steps from FIT gathered
  inside QAT, during the first ``fraction`` of training; ``fraction=0`` is ``pta``).
  Reallocations happen strictly before ``fraction * steps`` so a run never ends on a
  freshly changed bitwidth.

Budgets are size-weighted average weight bits over the *allocated* layers (all but the
first and last); :func:`bit_stats` also reports the average over all layers and BOPs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt

__all__ = ["Arm", "Data", "train_float", "evaluate", "reestimate_bn", "run_qat", "bit_stats",
           "first_last", "DEFAULT_CANDIDATES"]

DEFAULT_CANDIDATES = (2, 3, 4, 5, 6, 7, 8)


@dataclass
class Data:
    """Train / validation / test tensors (images ``(n, c, h, w)``, labels ``(n,)``)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Arm:
    """One study arm.

    Attributes:
        kind: ``"float"``, ``"uniform"``, ``"pta"`` or ``"qbitopt"``.
        budget: average weight bits over the allocated layers (``None`` for float).
        bits: the uniform bitwidth (``kind="uniform"``).
        fraction: share of training with reallocation (``kind="qbitopt"``).
        over_budget: a uniform arm that deliberately breaks ``budget`` (labelled as such).
    """

    kind: str
    budget: float | None = None
    bits: int | None = None
    fraction: float = 1.0
    over_budget: bool = False

    @property
    def label(self) -> str:
        if self.kind == "float":
            return "float"
        if self.kind == "uniform":
            return f"uniform {self.bits}-bit" + (" (over budget)" if self.over_budget else "")
        if self.kind == "pta":
            return "post-training alloc (0%)"
        return f"QBitOpt ({round(100 * self.fraction)}% realloc)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


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


# -- quantized models --------------------------------------------------------------------
def first_last(model: nn.Module) -> tuple[str, str]:
    """Names of the first and the last quantized layer (kept at 8 bits)."""
    names = list(bt.quantized_layers(model))
    return names[0], names[-1]


def bit_stats(model: nn.Module, macs: dict[str, int], allocated: Sequence[str],
              act_bits: int) -> dict[str, Any]:
    """Per-layer weight bits, size-weighted averages (allocated / all layers) and BOPs."""
    layers = bt.quantized_layers(model)
    bits = {n: int(m.weight_quantizer.bits) for n, m in layers.items()}
    sizes = {n: m.weight.numel() for n, m in layers.items()}

    def avg(names):
        return sum(bits[n] * sizes[n] for n in names) / sum(sizes[n] for n in names)

    abits = {n: (int(m.input_quantizer.bits) if m.input_quantizer.enabled else 32)
             for n, m in layers.items()}
    bops = sum(macs[n] * bits[n] * abits[n] for n in layers)
    return {"bits": bits, "avg_bits": avg(list(allocated)), "avg_bits_all": avg(list(bits)),
            "bops": float(bops), "act_bits": act_bits}


def quantized_copy(model: nn.Module, bits: int, act_bits: int,
                   per_channel: bool = True) -> nn.Module:
    """A deep copy of a float model with LSQ quantizers (uncalibrated)."""
    q = copy.deepcopy(model)
    bt.quantize_model(q, bits=bits, act_bits=act_bits, per_channel=per_channel)
    return q


def set_bits(model: nn.Module, bits: dict[str, int]) -> None:
    layers = bt.quantized_layers(model)
    for name, b in bits.items():
        layers[name].weight_quantizer.set_bits(int(b))


def pta_allocation(float_model: nn.Module, data: Data, budget: float,
                   candidates: Sequence[int], act_bits: int, *, n_batches: int = 16,
                   batch: int = 128, seed: int = 0, method: str = "greedy",
                   calib: list | None = None, per_channel: bool = True
                   ) -> tuple[dict[str, int], dict[str, float]]:
    """Post-training allocation: FIT on the converged model quantized at 8 bits, solved once.

    FIT uses the quantizers' own per-channel ranges after MSE calibration
    (:func:`bitalloc_torch.fit_sensitivity`), the model in eval mode.

    Returns:
        ``(bits per allocated layer, sensitivities)``.
    """
    q = quantized_copy(float_model, 8, act_bits, per_channel)
    first, last = first_last(q)
    g = torch.Generator().manual_seed(10_000 + seed)
    calib = calib if calib is not None else _calib_batches(data, seed)
    bt.calibrate(q, calib)
    q.eval()
    fit_batches = []
    for _ in range(n_batches):
        idx = torch.randint(len(data.y_train), (batch,), generator=g)
        fit_batches.append((data.x_train[idx], data.y_train[idx]))
    sens = bt.fit_sensitivity(q, F.cross_entropy, fit_batches)
    prob = bt.problem_from_model(q, sens, [ba.AverageBits(budget)], bits=candidates,
                                 exclude=[first, last])
    res = ba.solve(prob, method=method)
    return dict(zip(prob.names, map(int, res.bits))), sens


def _calib_batches(data: Data, seed: int, n: int = 8, batch: int = 256) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(20_000 + seed)
    return [data.x_train[torch.randint(len(data.y_train), (batch,), generator=g)]
            for _ in range(n)]


def run_qat(float_model: nn.Module, data: Data, arm: Arm, *, steps: int, every: int,
            candidates: Sequence[int] = DEFAULT_CANDIDATES, act_bits: int = 8,
            batch: int = 128, lr: float = 0.01, qlr: float = 1e-5, seed: int = 0,
            method: str = "greedy", fit_batches: int = 16, bn_batches: int = 20,
            progress: Callable[[int, float], None] | None = None, per_channel: bool = True,
            pta: tuple[dict[str, int], dict[str, float]] | None = None) -> dict[str, Any]:
    """QAT of a copy of ``float_model`` for ``steps`` steps under ``arm``.

    Args:
        float_model: the converged float model (not modified).
        data: the data; QAT samples mini-batches of ``data.x_train`` (seeded).
        arm: what chooses the bits (:class:`Arm`).
        steps: QAT steps; ``every``: reallocation period tau for QBitOpt.
        per_channel: per-output-channel weight steps (else one step per tensor).
        pta: a precomputed :func:`pta_allocation` (it depends only on the float model,
            the budget and ``seed``), to share between arms.
        progress: ``progress(step, loss)`` after every step.

    Returns:
        A JSON-ready dict: accuracy, bit statistics (:func:`bit_stats`), budget check,
        bits history (``[[step, {layer: bits}], ...]``), reallocations, timings.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    sample = data.x_train[:1]
    out: dict[str, Any] = {"arm": arm.to_dict(), "seed": seed, "steps": steps,
                           "every": every if arm.kind == "qbitopt" else None}
    if arm.kind == "float":
        m = copy.deepcopy(float_model)  # its own BatchNorm statistics (float training)
        q = quantized_copy(float_model, 8, act_bits)  # only for names and MACs
        macs = bt.layer_macs(q, sample)
        first, last = first_last(q)
        sizes = {n: mod.weight.numel() for n, mod in bt.quantized_layers(q).items()}
        out.update(acc=evaluate(m, data.x_test, data.y_test), avg_bits=32.0, avg_bits_all=32.0,
                   bops=float(sum(macs.values()) * 32 * 32), bits={n: 32 for n in sizes},
                   budget_ok=True, history=[], reallocations=[],
                   seconds=time.perf_counter() - t0)
        return out

    model = quantized_copy(float_model, 8, act_bits, per_channel)
    first, last = first_last(model)
    allocated = [n for n in bt.quantized_layers(model) if n not in (first, last)]
    macs = bt.layer_macs(model, sample)
    calib = _calib_batches(data, seed)
    qb = None
    if arm.kind == "uniform":
        set_bits(model, {n: arm.bits for n in allocated})
    elif arm.kind in ("pta", "qbitopt"):
        if pta is None:
            pta = pta_allocation(float_model, data, arm.budget, candidates, act_bits,
                                 n_batches=fit_batches, seed=seed, method=method, calib=calib,
                                 per_channel=per_channel)
        set_bits(model, pta[0])
        out["pta_bits"], out["fit"] = pta[0], pta[1]
    else:
        raise ValueError(f"arm.kind: unknown {arm.kind!r}")
    if arm.kind == "qbitopt" and arm.fraction > 0:
        freeze = max(0, int(round(arm.fraction * steps)) - 1)
        # the allocation above fits the budget, so QBitOpt keeps it at step 0
        qb = bt.QBitOpt(model, [ba.AverageBits(arm.budget)], bits=candidates, every=every,
                        method=method, freeze_after=freeze, exclude=[first, last])
        assert qb.initial is None
    bt.calibrate(model, calib)  # MSE ranges for the starting bits
    weights, qparams = bt.param_groups(model)
    opt_w = torch.optim.SGD(weights, lr=lr, momentum=0.9)
    opt_q = torch.optim.Adam(qparams, lr=qlr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    it = batches(data.x_train, data.y_train, batch, gen)
    history = [[0, {n: int(b) for n, b in bit_stats(model, macs, allocated,
                                                       act_bits)["bits"].items()}]]
    model.train()
    t_train = time.perf_counter()
    loss_sum = 0.0
    for step in range(1, steps + 1):
        xb, yb = next(it)
        loss = F.cross_entropy(model(xb), yb)
        opt_w.zero_grad(set_to_none=True)
        opt_q.zero_grad(set_to_none=True)
        loss.backward()
        if qb is not None:
            rec = qb.step()
            if rec is not None:
                history.append([step, {n: int(b) for n, b in
                                       bit_stats(model, macs, allocated, act_bits)["bits"]
                                       .items()}])
        opt_w.step()
        opt_q.step()
        sched.step()
        lval = float(loss.detach())
        loss_sum += lval
        if progress is not None:
            progress(step, lval)
    train_seconds = time.perf_counter() - t_train
    history.append([steps, {n: int(b) for n, b in
                            bit_stats(model, macs, allocated, act_bits)["bits"].items()}])
    reestimate_bn(model, data.x_train, bn_batches, seed=seed)
    stats = bit_stats(model, macs, allocated, act_bits)
    budget = arm.budget
    ok = budget is None or stats["avg_bits"] <= budget + 1e-9
    # every intermediate allocation too
    sizes = {n: mod.weight.numel() for n, mod in bt.quantized_layers(model).items()}
    for _, bits in history:
        avg = sum(bits[n] * sizes[n] for n in allocated) / sum(sizes[n] for n in allocated)
        ok = ok and (budget is None or avg <= budget + 1e-9)
    out.update(acc=evaluate(model, data.x_test, data.y_test), **stats,
               budget_ok=bool(ok) if not arm.over_budget else None,
               allocated=allocated, fixed=[first, last], history=history,
               reallocations=[] if qb is None else [r.to_dict() for r in qb.history],
               final_loss=loss_sum / max(steps, 1), train_seconds=train_seconds,
               seconds=time.perf_counter() - t0)
    if qb is not None:
        qb.remove()
    return out


def summarize(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
