"""QBitOpt: bitwidth reallocation inside the user's own QAT loop (Peters et al., 2023).

Decisions (QBITOPT.md leaves them open):

- **Budget from step 0.** At construction the controlled quantizers' current bits are
  kept if they are candidates and meet every constraint; otherwise the problem is solved
  once with a size-proportional prior (``sensitivity_i = size_i``: every element equally
  sensitive, which gives the most uniform allocation the budget allows) and those bits are
  applied before the first training step. Every later reallocation is a solve of the same
  constraints, so the budget holds at every step; an unreachable budget raises
  :class:`bitalloc.InfeasibleError` in the constructor. Construct QBitOpt before
  :func:`~bitalloc_torch.calibrate` (or the first forward) so the initial steps are
  estimated for the starting bits.
- **Ranges after a bit change** (``on_change``). ``"recalibrate"`` (the default) re-runs
  the quantizer's range search at the new bits: on the current latent weights for a
  weight quantizer, from the next batch for an input quantizer
  (:meth:`~bitalloc_torch.LSQQuantizer.recalibrate`, ``reset_range``). ``"keep"`` keeps
  the clipping range (the step is rescaled by ``(2**old - 1) / (2**new - 1)``).
  Quantizers without those methods (other frameworks) always keep their range. Why
  recalibrate: with the paper's quantizer learning rate (Adam 1e-5) a step moves by
  about 0.002 in 200 steps, so a kept range stays the old bitwidth's range, measured at
  1.2-1.6x (median) the weight MSE of a fresh range search; the figures behind the
  default are in ``benchmarks/results/qat.md``.
- **FIT's range** (``fit_range``). ``"tensor"`` (the default) uses the latent weight's
  ``max - min`` (activations: the largest ``max - min`` seen since the last
  reallocation), which does not depend on the current bits. With ``"quantizer"`` (the
  current clipping range) a layer at low bits has an MSE-optimal range that clips hard,
  so it looks insensitive and stays low: in the folded per-tensor Fashion-MNIST study,
  10 reallocations over 200 steps changed no bit at all (``benchmarks/results/qat.md``).
- **Separate budgets.** With ``activations=True`` and ``act_constraints=[...]``,
  ``constraints`` count only the weight groups and ``act_constraints`` only the
  activation groups (constraints scoped with the core's ``groups=``); constraint names
  must be unique across both lists. Without ``act_constraints`` every constraint counts
  every group. Activation sizes are per sample.
- **Frozen and shared weights.** A layer whose weight has ``requires_grad=False`` has no
  FIT statistics; it is left out of the allocation with a warning (it keeps its bits).
  A weight tensor shared by several layers is one group, counted once, and every layer
  using it gets its bits.
- **Which quantizers.** Only the layers found in the model (``quantize_model`` layers,
  ``torch.ao`` QAT layers, or ``targets=``) minus ``exclude``. Excluded layers keep their
  bits and are outside the problem and its budgets (e.g. first/last layer at 8 bits).
- **Schedule.** ``step()`` counts calls. Reallocations happen at step ``warmup``
  (default ``every``) and every ``every`` steps after, up to the freeze step
  (``freeze_after`` steps, or that fraction of ``total_steps``); after it ``step()`` only
  counts.
- **Statistics.** FIT (see :mod:`bitalloc_torch.sensitivity`): running mean since the
  last reallocation (reset after each), or an EMA across reallocations (``ema=``).
- **NaN/inf.** A reallocation whose sensitivities are not finite (or that saw no
  gradient at all) is skipped with a warning: bits are kept, statistics are reset, the
  step is appended to :attr:`QBitOpt.skipped`.
- **Distributed.** Sensitivities are averaged over ranks before each solve and the chosen
  bits are broadcast from rank 0 (:mod:`bitalloc_torch.distributed`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import bitalloc as ba

from .distributed import all_reduce_mean, broadcast, is_distributed
from .problem import DEFAULT_BITS, constraint_list, model_groups
from .sensitivity import FITAccumulator, LossFn, fit_sensitivity, hutchinson_trace, range_sq
from .targets import QuantTarget, unwrap

__all__ = ["QBitOpt", "Reallocation"]

SENSITIVITIES = ("fit", "fit_per_sample", "hessian")
ON_CHANGE = ("recalibrate", "keep")


@dataclass(frozen=True)
class Reallocation:
    """One reallocation.

    Attributes:
        step: the ``step()`` count at which it happened.
        bits: ``{group name: bits}`` chosen (weight groups, then activation groups).
        objective: total estimated error of ``bits`` (bitalloc's objective).
        bound: bitalloc's proven lower bound for that problem.
        seconds: wall time of the reallocation (statistics, solve, applying bits).
        status: ``"optimal"`` or ``"feasible"``.
        method: the solver that produced ``bits``.
        ranges: ``{group name: mean clipping range}`` right after the bits were applied
            (an activation range reset by ``on_change="recalibrate"`` is re-estimated at
            the next forward; its value here is the old one).
    """

    step: int
    bits: dict[str, int]
    objective: float
    bound: float
    seconds: float
    status: str
    method: str
    ranges: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def _pos_int(value: Any, arg: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{arg}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _freeze_step(freeze_after: int | float | None, total_steps: int | None) -> float:
    if freeze_after is None:
        return float("inf")
    if isinstance(freeze_after, float):
        if not 0.0 <= freeze_after <= 1.0:
            raise ValueError(f"freeze_after: a fraction must be in [0, 1], got {freeze_after}")
        if total_steps is None:
            raise ValueError("total_steps: needed when freeze_after is a fraction")
        total = _pos_int(total_steps, "total_steps")
        # never at the final step: bits changed there would get no training at all
        return float(min(int(freeze_after * total), total - 1))
    return float(_pos_int(freeze_after, "freeze_after", 0))


class QBitOpt:
    """Reallocate bitwidths during QAT under hard budgets (see the module docstring).

    Args:
        model: a quantized model (:func:`quantize_model`, ``torch.ao`` ``prepare_qat``, or
            any model with ``targets=``), already on its training device;
            DDP/DataParallel wrappers are looked through.
        constraints: bitalloc constraints, e.g. ``[ba.AverageBits(4.0)]``.
        bits: candidate bitwidths.
        every: steps between reallocations (the paper's tau = 250).
        method: bitalloc solver; ``"auto"`` (the default: proven optimal at layer scale in
            milliseconds), or ``"greedy"`` (the paper's), ``"fractional"``, ``"ilp"``....
        sensitivity: ``"fit"`` (free, from the gradients of the user's backward) or
            ``"fit_per_sample"`` (the empirical Fisher from per-sample gradients on
            ``hessian_batches`` at each reallocation, model in eval mode: one backward
            per sample; see :func:`~bitalloc_torch.fit_sensitivity`), or ``"hessian"``
            (Hutchinson on ``hessian_batches`` at each reallocation, weights only).
        warmup: step of the first reallocation (default ``every``).
        freeze_after: last step at which bits may change: an int, or a float fraction of
            ``total_steps`` (a fraction never allows the final step ``total_steps``,
            where changed bits would get no training).
        total_steps: training length, for a fractional ``freeze_after``.
        ema: ``None`` (running mean since the last reallocation) or an EMA decay.
        activations: also allocate the layers' input activations (needs ``sample_input``).
        sample_input: one batch (:mod:`bitalloc_torch.batches`), for MACs (``BOPsBudget``)
            and activation sizes (per sample, whatever its batch size).
        act_constraints: constraints on the activation groups only (needs
            ``activations=True``); ``constraints`` then apply to the weight groups only.
        on_change: ``"recalibrate"`` or ``"keep"``: the range of a quantizer whose bits
            change (module docstring).
        fit_range: the range in FIT's ``EF * range**2``: ``"tensor"`` (the default: the
            tensor's ``max - min``, as the FIT reference code) or ``"quantizer"`` (the
            current clipping range; see the module docstring for why not by default).
        exclude: layers not allocated (names or a predicate ``(name, module)``).
        noise: ``"uniform"`` or ``"exp"`` error model.
        time_limit: seconds per solve (exact solvers).
        targets: explicit :class:`QuantTarget` list (other frameworks).
        loss_fn: ``loss_fn(outputs, targets)``, for ``"hessian"`` and ``"fit_per_sample"``.
        hessian_batches: ``(inputs, targets)`` batches for ``"hessian"`` and
            ``"fit_per_sample"``.
        hessian_samples: Rademacher probes per batch.
        process_group: ``torch.distributed`` group (default: the world, when initialised).

    Raises:
        ValueError: any bad argument (the message names it).
        bitalloc.InfeasibleError: the budget cannot be met with these candidates.

    Example:
        >>> import torch, torch.nn as nn, bitalloc as ba, bitalloc_torch as bt
        >>> torch.manual_seed(0) and None
        >>> model = bt.quantize_model(nn.Sequential(nn.Linear(8, 16), nn.ReLU(),
        ...                                         nn.Linear(16, 4)))
        >>> qb = bt.QBitOpt(model, [ba.AverageBits(4.0)], bits=(2, 4, 8), every=5)
        >>> qb.bits                                      # the budget holds from step 0
        {'0': 4, '2': 4}
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.01)
        >>> for _ in range(10):
        ...     loss = model(torch.randn(32, 8)).pow(2).mean()
        ...     loss.backward()
        ...     _ = qb.step()
        ...     opt.step(); opt.zero_grad()
        >>> [r.step for r in qb.history]
        [5, 10]
        >>> qb.usage()["average_bits"][0] <= 4.0
        True
    """

    def __init__(self, model: nn.Module, constraints, bits: Sequence[int] = DEFAULT_BITS,
                 every: int = 250, method: str = "auto", sensitivity: str = "fit", *,
                 warmup: int | None = None, freeze_after: int | float | None = None,
                 total_steps: int | None = None, ema: float | None = None,
                 activations: bool = False, sample_input: Any = None,
                 act_constraints: Sequence[ba.Constraint] | ba.Constraint | None = None,
                 on_change: str = "recalibrate", fit_range: str = "tensor",
                 exclude: Sequence[str] | Callable[[str, nn.Module], bool] = (),
                 noise: str = "uniform", time_limit: float | None = None,
                 targets: Sequence[QuantTarget] | None = None, loss_fn: LossFn | None = None,
                 hessian_batches: Iterable[Any] | None = None, hessian_samples: int = 1,
                 process_group: Any = None) -> None:
        self.every = _pos_int(every, "every")
        self.first = self.every if warmup is None else _pos_int(warmup, "warmup")
        self.freeze_step = _freeze_step(freeze_after, total_steps)
        if not isinstance(method, str) or method not in ba.SOLVERS:
            raise ValueError(f"method: unknown method {method!r}; expected one of "
                             f"{sorted(ba.SOLVERS)}")
        if sensitivity not in SENSITIVITIES:
            raise ValueError(f"sensitivity: must be one of {SENSITIVITIES}, got {sensitivity!r}")
        if sensitivity != "fit":
            if loss_fn is None or not callable(loss_fn):
                raise ValueError("loss_fn: a callable loss_fn(outputs, targets) is needed for "
                                 f"sensitivity={sensitivity!r}")
            if hessian_batches is None:
                raise ValueError(f"hessian_batches: needed for sensitivity={sensitivity!r}")
            hessian_batches = list(hessian_batches)
        self.model = model
        self.method, self.noise, self.time_limit = method, noise, time_limit
        self.sensitivity = sensitivity
        self.constraints = constraint_list(constraints)
        if act_constraints is not None:
            if not activations:
                raise ValueError("act_constraints: needs activations=True (activation groups "
                                 "to constrain)")
            act_constraints = constraint_list(act_constraints, "act_constraints")
            seen = [c.name for c in self.constraints]
            dup = [c.name for c in act_constraints if c.name in seen]
            if dup or len(set(seen)) != len(seen):
                raise ValueError(f"act_constraints: constraint names must be unique across "
                                 f"constraints and act_constraints; {dup or seen} repeated "
                                 f"(give the second one name=..., e.g. "
                                 f"ba.AverageBits(4.0, name='act_bits'))")
        #: Constraints on the activation groups, or ``None`` (then ``constraints`` count all).
        self.act_constraints = act_constraints
        if fit_range not in ("tensor", "quantizer"):
            raise ValueError(f"fit_range: must be 'tensor' or 'quantizer', got {fit_range!r}")
        if on_change not in ON_CHANGE:
            raise ValueError(f"on_change: must be one of {ON_CHANGE}, got {on_change!r}")
        self.on_change = on_change
        self.process_group = process_group
        self._loss_fn, self._hessian_batches = loss_fn, hessian_batches
        self._hessian_samples = _pos_int(hessian_samples, "hessian_samples")
        self.groups = model_groups(model, self.constraints, sample_input=sample_input,
                                   activations=activations, exclude=exclude, targets=targets,
                                   trainable_only=True)
        if activations and not self.groups.act_targets and act_constraints:
            raise ValueError("act_constraints: the model has no activation group (inputs that "
                             "need a gradient, with an enabled input quantizer)")
        self.candidates = tuple(int(b) for b in self._problem(self.groups.sizes, bits).bits)
        self.groups.apply(self.groups.current_bits(), keep_range=True)  # layers sharing a weight
        self._acc = (FITAccumulator(self.groups.targets, self.groups.act_targets, ema=ema,
                                    ranges=fit_range) if sensitivity == "fit" else None)
        self.step_count = 0
        #: One :class:`Reallocation` per reallocation, in order.
        self.history: list[Reallocation] = []
        #: Steps whose reallocation was skipped (non-finite or missing statistics).
        self.skipped: list[int] = []
        #: The allocation applied at construction, or ``None`` if the current bits fit.
        self.initial: Reallocation | None = self._initial_allocation()

    # -- public state --------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Group names (weight groups, then activation groups)."""
        return list(self.groups.names)

    @property
    def bits(self) -> dict[str, int]:
        """``{module name: weight bits}`` of the controlled layers (layers sharing a
        weight included)."""
        out = {t.name: int(t.quantizer.bits) for t in self.groups.targets}
        for alias in self.groups.aliases:
            out.update({t.name: int(t.quantizer.bits) for t in alias})
        return out

    @property
    def act_bits(self) -> dict[str, int]:
        """``{module name: input bits}`` of the controlled layers that have input quantizers."""
        return {t.name: int(t.input_quantizer.bits) for t in self.groups.targets
                if t.input_quantizer is not None}

    def usage(self) -> dict[str, tuple[float, float]]:
        """``{constraint name: (value, max)}`` of the current bits."""
        p = self._problem(self.groups.sizes)
        cur = self.groups.current_bits()
        return {c.name: (c.value(p, cur), c.limit) for c in p.constraints}

    # -- the loop ------------------------------------------------------------------------
    def step(self) -> Reallocation | None:
        """Call once per optimizer step, after ``backward()`` (gradients unscaled, before
        ``zero_grad``). Accumulates FIT; on a reallocation step solves and applies bits.

        Returns:
            The :class:`Reallocation` when one happened at this step, else ``None``.
        """
        self.step_count += 1
        t = self.step_count
        if t > self.freeze_step:
            if self._acc is not None:
                self._acc.remove()  # frozen: no more activation hooks in backward
            return None
        if self._acc is not None:
            self._acc.accumulate()
        if t >= self.first and (t - self.first) % self.every == 0:
            return self.reallocate()
        return None

    def reallocate(self) -> Reallocation | None:
        """Solve with the current statistics and apply the bits now (``step()`` does this on
        schedule). Returns ``None`` when skipped (see the module docstring)."""
        t0 = time.perf_counter()
        sens = all_reduce_mean(self._local_sensitivity(), self.process_group)
        values = sens.detach().cpu().numpy()
        bad = None
        if not np.isfinite(values).all():
            bad = "non-finite statistics"
        elif not values.sum() > 0:
            bad = "no gradient statistics"
        if bad is not None:
            warnings.warn(f"QBitOpt: step {self.step_count}: {bad}; reallocation skipped, "
                          "bits kept", RuntimeWarning, stacklevel=3)
            self.skipped.append(self.step_count)
            if self._acc is not None:
                self._acc.reset()
            return None
        rec = self._solve_and_apply(values, self.step_count, t0)
        self.history.append(rec)
        if self._acc is not None and self._acc.ema is None:
            self._acc.reset()
        return rec

    # -- internals -----------------------------------------------------------------------
    def _problem(self, sensitivity, bits: Sequence[int] | None = None) -> ba.Problem:
        return self.groups.problem(sensitivity, self.candidates if bits is None else bits,
                                   self.constraints, self.noise, self.act_constraints)

    def _apply(self, bits: Sequence[int], keep_range: bool = True) -> None:
        changed = self.groups.apply(bits, keep_range=keep_range)
        if self.on_change != "recalibrate" or not keep_range:
            return
        n_w = len(self.groups.targets)
        for i in changed:
            if i < n_w:
                t = self.groups.targets[i]
                for u in [t, *(self.groups.aliases[i] if self.groups.aliases else [])]:
                    if hasattr(u.quantizer, "recalibrate"):
                        u.quantizer.recalibrate(u.weight.detach())
            else:
                q = self.groups.act_targets[i - n_w].input_quantizer
                if hasattr(q, "reset_range"):
                    q.reset_range()

    def _local_sensitivity(self) -> torch.Tensor:
        if self._acc is not None:
            if self._acc.count == 0:
                return torch.zeros(len(self.groups.names), dtype=torch.float64)
            return self._acc.sensitivity()
        if self.sensitivity == "fit_per_sample":
            model = unwrap(self.model)
            was = model.training
            model.eval()
            try:
                s = fit_sensitivity(model, self._loss_fn, self._hessian_batches,
                                    activations=bool(self.groups.act_targets), per_sample=True)
            finally:
                model.train(was)
            return torch.tensor([s.get(n, 0.0) for n in self.groups.names], dtype=torch.float64)
        trace = hutchinson_trace(unwrap(self.model), self._loss_fn, self._hessian_batches,
                                 self.groups.targets, self._hessian_samples,
                                 seed=self.step_count).clamp_min(0)
        return trace * range_sq([t.quantizer for t in self.groups.targets]).cpu()

    def _solve_and_apply(self, values: np.ndarray, step: int, t0: float) -> Reallocation:
        problem = self._problem(values)
        res = ba.solve(problem, method=self.method, time_limit=self.time_limit)
        chosen = res.bits
        objective = res.objective
        if is_distributed(self.process_group):
            chosen = broadcast(torch.as_tensor(chosen), 0, self.process_group).numpy()
            if not np.array_equal(chosen, res.bits):
                objective = problem.objective(chosen)
        self._apply(chosen)
        ranges = {n: float(q.quant_range().detach().float().mean())
                  for n, q in zip(problem.names, self.groups.quantizers)}
        return Reallocation(step=step, bits=dict(zip(problem.names, map(int, chosen))),
                            objective=float(objective), bound=float(res.bound),
                            seconds=time.perf_counter() - t0, status=res.status,
                            method=res.method, ranges=ranges)

    def _initial_allocation(self) -> Reallocation | None:
        prior = self.groups.sizes
        problem = self._problem(prior)
        current = self.groups.current_bits()
        if _fits(problem, current):
            return None
        return self._solve_and_apply(prior, 0, time.perf_counter())

    # -- checkpointing -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to make the same future decisions."""
        return {"version": 1, "step": self.step_count, "names": self.names,
                "bits": dict(zip(self.names, self.groups.current_bits().tolist())),
                "stats": None if self._acc is None else self._acc.state_dict(),
                "history": [r.to_dict() for r in self.history],
                "skipped": list(self.skipped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Load the model's own ``state_dict`` first: bits are set here without rescaling
        steps (``keep_range=False``), because the model checkpoint already holds the steps
        that belong to them.

        Raises:
            ValueError: the state is for other groups or another sensitivity kind, or its
                bits are not candidates or break a constraint.
        """
        if not isinstance(state, dict) or "names" not in state:
            raise ValueError("state_dict: not a QBitOpt state_dict")
        if list(state["names"]) != self.names:
            raise ValueError(f"state_dict: groups {list(state['names'])} do not match "
                             f"{self.names}")
        if (state["stats"] is None) != (self._acc is None):
            raise ValueError("state_dict: saved with a different sensitivity kind")
        try:
            bits = np.array([int(state["bits"][n]) for n in self.names], dtype=np.int64)
        except (KeyError, TypeError, ValueError):
            raise ValueError("state_dict: 'bits' must map every group to an integer") from None
        problem = self._problem(self.groups.sizes)
        if not _fits(problem, bits):
            over = {c.name: (round(c.value(problem, bits), 6), c.limit)
                    for c in problem.constraints
                    if set(bits.tolist()) <= set(self.candidates)
                    and c.violation(problem, bits) > 0}
            raise ValueError(f"state_dict: bits {dict(zip(self.names, bits.tolist()))} are not "
                             f"allowed candidates {list(self.candidates)} within the budget"
                             + (f" (over: {over})" if over else ""))
        self.groups.apply(bits.tolist(), keep_range=False)
        if self._acc is not None:
            self._acc.load_state_dict(state["stats"])
        self.step_count = int(state["step"])
        self.history = [Reallocation(**r) for r in state["history"]]
        self.skipped = [int(s) for s in state["skipped"]]

    def remove(self) -> None:
        """Remove the activation hooks (QBitOpt is inert afterwards for activations)."""
        if self._acc is not None:
            self._acc.remove()

    def __repr__(self) -> str:
        return (f"QBitOpt(groups={len(self.names)}, bits={list(self.candidates)}, "
                f"every={self.every}, method={self.method!r}, step={self.step_count})")


def _fits(problem: ba.Problem, bits: np.ndarray) -> bool:
    """Whether ``bits`` are allowed candidates that meet every constraint (bitalloc's own
    feasibility test and tolerance; these problems have no ties, so choice = bit index)."""
    try:
        choice = problem.bit_index(bits)
    except ValueError:
        return False
    return problem.compiled().fits(choice)
