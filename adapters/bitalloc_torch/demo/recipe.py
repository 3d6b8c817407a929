"""The folded per-tensor QAT recipe shared by ``bitalloc demo`` and ``benchmarks/qat.py``.

One recipe for every arm, so arms differ only in how bits are chosen:

1. The float checkpoint is loaded and its BatchNorms folded
   (:func:`bitalloc_torch.fold_batchnorm`), as every deployment does.
2. :func:`prepare` wraps every Conv/Linear with LSQ quantizers: **per-tensor** signed
   weights, asymmetric inputs (``act_bits``; ``None`` keeps activations float). The first
   and the last layer stay at 8 bits (weights and inputs) and outside every budget; the
   network input stays at 8 bits.
3. The arm's bits are set, *then* the quantizers are calibrated (MSE range search for the
   bits actually used) on the same calibration batches for every arm.
4. Post-training (:func:`ptq`): evaluate right there. QAT (:func:`run_qat`): SGD momentum
   0.9 with a cosine schedule for the weights, Adam (``qlr``, no weight decay) for the
   quantizer parameters, the same seeded batches for every arm.

A :class:`Budget` is a size-weighted average over the allocated weight groups and,
when ``acts`` is set, a separate one over the allocated activation groups (activation
sizes per sample). Arms (:class:`Arm`): ``uniform`` (every allocated group at the floor of
the budget, or the ceiling labelled over budget), ``pta`` (post-training allocation: FIT
once on the model at 8 bits, solved once, bits then fixed), ``qbitopt`` (starts from the
``pta`` bits, then :class:`bitalloc_torch.QBitOpt` reallocates every ``every`` steps during
the first ``fraction`` of training, ranges following changes per ``on_change``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt
from bitalloc_torch.problem import ModelGroups

from .train import Data, batches, evaluate

__all__ = ["Budget", "Arm", "prepare", "fit_allocation", "ptq", "run_qat", "budget_check",
           "calib_batches", "fit_batches", "load_folded", "DEFAULT_CANDIDATES"]

DEFAULT_CANDIDATES = (2, 3, 4, 5, 6, 7, 8)
ACT = ".input_quantizer"


@dataclass(frozen=True)
class Budget:
    """Average weight bits over the allocated weight groups; ``acts``: a separate average
    over the allocated activation groups (``None``: activations fixed, not allocated)."""

    weights: float
    acts: float | None = None

    def constraints(self) -> tuple[list[ba.Constraint], list[ba.Constraint] | None]:
        w = [ba.AverageBits(self.weights)]
        a = None if self.acts is None else [ba.AverageBits(self.acts, name="act_bits")]
        return w, a

    @property
    def label(self) -> str:
        return f"W{self.weights:g}" + ("" if self.acts is None else f"/A{self.acts:g}")


@dataclass(frozen=True)
class Arm:
    """One arm: ``kind`` ``"uniform"`` / ``"pta"`` / ``"qbitopt"``; ``over`` picks the
    uniform ceiling (over budget, labelled); ``fraction`` and ``on_change`` for QBitOpt."""

    kind: str
    fraction: float = 1.0
    on_change: str = "recalibrate"
    over: bool = False

    def label(self, budget: Budget) -> str:
        if self.kind == "uniform":
            w, a = uniform_bits(budget, self.over)
            name = f"uniform W{w}" + ("" if a is None else f"/A{a}")
            return name + (" (over budget)" if self.over else "")
        if self.kind == "pta":
            return "post-training alloc"
        extra = "" if self.on_change == "recalibrate" else f", {self.on_change} range"
        return f"QBitOpt {round(100 * self.fraction)}%{extra}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def uniform_bits(budget: Budget, over: bool = False) -> tuple[int, int | None]:
    """Uniform weight (and activation) bits for ``budget``: the floor, or the ceiling."""
    def pick(v):
        return math.ceil(v) if over and v != math.floor(v) else math.floor(v)

    return pick(budget.weights), None if budget.acts is None else pick(budget.acts)


# -- model preparation -------------------------------------------------------------------
def load_folded(net: nn.Module, path: str) -> nn.Module:
    """Load a float checkpoint (saved with its BatchNorms) into ``net`` and fold them."""
    net.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    net.eval()
    return bt.fold_batchnorm(net)


def prepare(float_model: nn.Module, act_bits: int | None = 8, per_channel: bool = False
            ) -> tuple[nn.Module, list[str]]:
    """A quantized deep copy at 8 bits (uncalibrated) and its fixed layers (first, last)."""
    q = copy.deepcopy(float_model)
    bt.quantize_model(q, bits=8, act_bits=act_bits, per_channel=per_channel)
    names = list(bt.quantized_layers(q))
    return q, [names[0], names[-1]]


def groups_of(q: nn.Module, fixed: Sequence[str], activations: bool,
              sample: torch.Tensor) -> ModelGroups:
    return bt.model_groups(q, exclude=list(fixed), activations=activations,
                           sample_input=sample if activations else None)


def set_named_bits(q: nn.Module, bits: dict[str, int]) -> None:
    """Set bits by group name (``layer`` for weights, ``layer.input_quantizer`` for inputs)."""
    layers = bt.quantized_layers(q)
    for name, b in bits.items():
        if name.endswith(ACT):
            layers[name[:-len(ACT)]].input_quantizer.set_bits(int(b))
        else:
            layers[name].weight_quantizer.set_bits(int(b))


def named_bits(groups) -> dict[str, int]:
    return dict(zip(groups.names, map(int, groups.current_bits())))


def budget_check(bits: dict[str, int], groups, budget: Budget, tol: float = 1e-9
                 ) -> dict[str, float]:
    """``{"weights": avg, "acts": avg}`` of ``bits`` over the allocated groups, and ``ok``."""
    sizes = dict(zip(groups.names, groups.sizes.tolist()))

    def avg(names):
        return sum(bits[n] * sizes[n] for n in names) / sum(sizes[n] for n in names)

    out = {"weights": avg(groups.weight_names)}
    ok = out["weights"] <= budget.weights + tol
    if budget.acts is not None:
        out["acts"] = avg(groups.act_names)
        ok = ok and out["acts"] <= budget.acts + tol
    out["ok"] = bool(ok)
    return out


def calib_batches(data: Data, seed: int, n: int = 2, batch: int = 64) -> list[torch.Tensor]:
    """Calibration images (128 by default: the MSE range search over 37 clipping ratios
    on every activation tensor is the costly part of calibration on a CPU)."""
    g = torch.Generator().manual_seed(20_000 + seed)
    return [data.x_train[torch.randint(len(data.y_train), (batch,), generator=g)]
            for _ in range(n)]


def fit_batches(data: Data, seed: int, n: int = 16, batch: int = 128) -> list[tuple]:
    g = torch.Generator().manual_seed(10_000 + seed)
    out = []
    for _ in range(n):
        idx = torch.randint(len(data.y_train), (batch,), generator=g)
        out.append((data.x_train[idx], data.y_train[idx]))
    return out


def fit_allocation(float_model: nn.Module, data: Data, budget: Budget, *, seed: int = 0,
                   candidates: Sequence[int] = DEFAULT_CANDIDATES, act_bits: int | None = 8,
                   per_channel: bool = False, n_fit: int = 8, method: str = "auto"
                   ) -> tuple[dict[str, int], dict[str, float]]:
    """Post-training allocation: FIT on the model quantized at 8 bits (calibrated, eval
    mode), solved once under ``budget`` (separate weight and activation averages).

    Returns ``(bits by group name, sensitivities)``.
    """
    q, fixed = prepare(float_model, act_bits, per_channel)
    bt.calibrate(q, calib_batches(data, seed))
    q.eval()
    acts = budget.acts is not None
    sens = bt.fit_sensitivity(q, F.cross_entropy, fit_batches(data, seed, n_fit),
                              activations=acts)
    groups = groups_of(q, fixed, acts, data.x_train[:1])
    w, a = budget.constraints()
    prob = groups.problem([sens[n] for n in groups.names], candidates, w, "uniform", a)
    res = ba.solve(prob, method=method)
    return dict(zip(prob.names, map(int, res.bits))), sens


def start_bits(arm: Arm, budget: Budget, groups, pta: dict[str, int] | None) -> dict[str, int]:
    if arm.kind == "uniform":
        wb, ab = uniform_bits(budget, arm.over)
        return {n: (ab if n.endswith(ACT) else wb) for n in groups.names}
    if pta is None:
        raise ValueError("pta: needed for the pta and qbitopt arms")
    return dict(pta)


def ptq(float_model: nn.Module, data: Data, bits: dict[str, int], *, seed: int = 0,
        act_bits: int | None = 8, per_channel: bool = False, n_test: int | None = None
        ) -> float:
    """Post-training quantization at ``bits``: calibrate (MSE), then test accuracy (%)."""
    q, _ = prepare(float_model, act_bits, per_channel)
    set_named_bits(q, bits)
    bt.calibrate(q, calib_batches(data, seed))
    x, y = (data.x_test, data.y_test) if n_test is None else (data.x_test[:n_test],
                                                               data.y_test[:n_test])
    return evaluate(q, x, y)


def run_qat(float_model: nn.Module, data: Data, arm: Arm, budget: Budget, *, steps: int,
            every: int, seed: int = 0, batch: int = 128, lr: float = 0.01, qlr: float = 1e-5,
            candidates: Sequence[int] = DEFAULT_CANDIDATES, act_bits: int | None = 8,
            per_channel: bool = False, pta: dict[str, int] | None = None,
            method: str = "auto", progress: Callable[[int, float], None] | None = None
            ) -> dict[str, Any]:
    """QAT of a copy of the (folded) ``float_model`` under ``arm`` and ``budget``.

    Returns a JSON-ready dict: ``acc`` (full test set), ``bits``, budget use and ``budget_ok``
    (checked at every allocation), ``history`` (``[[step, {group: bits}], ...]``),
    ``ranges`` (``[[step, {group: mean range}], ...]`` at each reallocation), timings.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    acts = budget.acts is not None
    q, fixed = prepare(float_model, act_bits, per_channel)
    groups = groups_of(q, fixed, acts, data.x_train[:1])
    bits0 = start_bits(arm, budget, groups, pta)
    set_named_bits(q, bits0)
    bt.calibrate(q, calib_batches(data, seed))
    qb = None
    if arm.kind == "qbitopt" and arm.fraction > 0:
        w, a = budget.constraints()
        qb = bt.QBitOpt(q, w, bits=candidates, every=every, method=method,
                        freeze_after=max(0, int(round(arm.fraction * steps)) - 1),
                        exclude=fixed, activations=acts,
                        sample_input=data.x_train[:1] if acts else None, act_constraints=a,
                        on_change=arm.on_change)
        if qb.initial is not None:  # pragma: no cover - the pta bits fit by construction
            raise RuntimeError("QBitOpt changed the starting bits")
    weights, qparams = bt.param_groups(q)
    opt_w = torch.optim.SGD(weights, lr=lr, momentum=0.9)
    opt_q = torch.optim.Adam(qparams, lr=qlr, foreach=True)  # one kernel per op, not per tensor
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=steps)
    it = batches(data.x_train, data.y_train, batch, torch.Generator().manual_seed(seed))
    history, ranges = [[0, named_bits(groups)]], []
    q.train()
    t_train = time.perf_counter()
    for step in range(1, steps + 1):
        xb, yb = next(it)
        loss = F.cross_entropy(q(xb), yb)
        opt_w.zero_grad(set_to_none=True)
        opt_q.zero_grad(set_to_none=True)
        loss.backward()
        if qb is not None:
            rec = qb.step()
            if rec is not None:
                history.append([step, dict(rec.bits)])
                ranges.append([step, dict(rec.ranges)])
        opt_w.step()
        opt_q.step()
        sched.step()
        if progress is not None:
            progress(step, float(loss.detach()))
    train_seconds = time.perf_counter() - t_train
    final = named_bits(groups)
    history.append([steps, final])
    checks = [budget_check(b, groups, budget) for _, b in history]
    if qb is not None:
        qb.remove()
    use = budget_check(final, groups, budget)
    return {"arm": arm.to_dict(), "label": arm.label(budget), "budget": asdict(budget),
            "seed": seed, "steps": steps, "every": every if qb is not None else None,
            "acc": evaluate(q, data.x_test, data.y_test), "n_test": len(data.y_test),
            "bits": final, "start_bits": bits0, "use": {k: v for k, v in use.items()
                                                        if k != "ok"},
            "budget_ok": None if arm.over else all(c["ok"] for c in checks),
            "history": history, "ranges": ranges,
            "sizes": dict(zip(groups.names, groups.sizes.tolist())),
            "train_seconds": train_seconds, "seconds": time.perf_counter() - t0}
