"""A :class:`bitalloc.Problem` from a quantized model: groups, sizes, MACs, act bits.

- Weight groups: one per quantized layer, named by the module's fully qualified name,
  ``size`` = weight numel.
- MACs: counted in one forward pass of ``sample_input`` with hooks (quantizers bypassed,
  eval mode, training mode restored), ``output.numel() * weight[0].numel()`` per call
  (Linear and every Conv, grouped/depthwise included). Counts are for the sample given:
  pass a batch of one for per-sample MACs.
- Activation bits for ``BOPsBudget``: each layer's input quantizer bits (32 when that
  quantizer is disabled, i.e. float input; 8 when the layer has none, as for
  ``torch.ao`` eager models).
- ``activations=True`` adds one group per layer input (``"<layer>.input_quantizer"``,
  ``size`` = input numel *per sample*: the numel seen in ``sample_input`` divided by its
  leading batch dimension, so the budget does not depend on the sample's batch size)
  whose input needs a gradient (the network input has no FIT statistics and keeps its
  bits). Without ``act_constraints`` size-based budgets (``AverageBits``,
  ``MemoryBudget``) count weights and activations together; with them (a list) the
  weight budgets are scoped to the weight groups and ``act_constraints`` to the
  activation groups (:func:`scope`). ``BOPsBudget`` is bilinear in weight and
  activation bits, so it is refused with activation groups.
- A weight tensor shared by several layers is one group (counted once); every layer
  that uses it gets its bits. Its MACs are the sum over the layers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import bitalloc as ba

from .batches import leading_batch, run_batch
from .quantizers import LSQQuantizer
from .sensitivity import act_name
from .targets import QuantTarget, find_targets, select, unwrap

__all__ = ["ModelGroups", "model_groups", "layer_macs", "problem_from_model", "DEFAULT_BITS",
           "constraint_list", "scope"]

DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)


@contextlib.contextmanager
def bypass_quantizers(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in float: LSQ quantizers disabled, ``torch.ao`` fake quant and
    observers off; everything restored on exit."""
    try:
        from torch.ao.quantization.fake_quantize import FakeQuantizeBase
    except ImportError:  # pragma: no cover
        FakeQuantizeBase = ()
    saved: list[tuple[Any, ...]] = []
    for m in unwrap(model).modules():
        if isinstance(m, LSQQuantizer):
            saved.append((m, m.enabled))
            m.enabled = False
        elif isinstance(m, FakeQuantizeBase):
            saved.append((m, m.fake_quant_enabled.clone(), m.observer_enabled.clone()))
            m.fake_quant_enabled.fill_(0)
            m.observer_enabled.fill_(0)
    try:
        yield
    finally:
        for m, *state in saved:
            if isinstance(m, LSQQuantizer):
                m.enabled = state[0]
            else:
                m.fake_quant_enabled.copy_(state[0])
                m.observer_enabled.copy_(state[1])


@dataclass
class _Trace:
    macs: int = 0
    in_numel: int = 0
    in_grad: bool = False


def _trace(model: nn.Module, targets: Sequence[QuantTarget], sample_input: Any,
           grad: bool) -> list[_Trace]:
    traces = [_Trace() for _ in targets]

    def hook(i: int, w: torch.Tensor, module: nn.Module, args: tuple, out: Any) -> None:
        t = traces[i]
        if isinstance(out, torch.Tensor):
            t.macs += out.numel() * (w.numel() // max(w.shape[0], 1))
        if args and isinstance(args[0], torch.Tensor):
            t.in_numel = max(t.in_numel, args[0].numel())
            t.in_grad = t.in_grad or args[0].requires_grad

    handles = [t.module.register_forward_hook(
        lambda m, a, o, i=i, w=t.weight: hook(i, w, m, a, o)) for i, t in enumerate(targets)]
    model = unwrap(model)  # not through DDP: no collectives, no pending reduction
    was_training = model.training
    model.eval()
    try:
        with bypass_quantizers(model), torch.set_grad_enabled(grad):
            run_batch(model, sample_input, "sample_input")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return traces


def layer_macs(model: nn.Module, sample_input: Any) -> dict[str, int]:
    """Multiply-accumulates of each quantized layer for one forward of ``sample_input``.

    ``sample_input`` follows the adapter's batch convention (:mod:`bitalloc_torch.batches`:
    a tensor, an ``(inputs, targets)`` tuple whose first item is used, or a dict of
    keyword arguments). The counts are for the whole sample: pass a batch of one for
    per-sample MACs.

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(),
        ...                                     nn.Linear(8 * 4 * 4, 10)))
        >>> bt.layer_macs(m, torch.zeros(1, 3, 4, 4))
        {'0': 3456, '2': 1280}
    """
    targets = find_targets(model)
    return {t.name: tr.macs for t, tr in zip(targets, _trace(model, targets, sample_input, False))}


def _act_bits_of(t: QuantTarget) -> float:
    q = t.input_quantizer
    if q is None:
        return 8.0
    return float(q.bits) if getattr(q, "enabled", True) else 32.0


def constraint_list(constraints, arg: str = "constraints") -> list[ba.Constraint]:
    """``constraints`` as a list (one constraint or an iterable of them)."""
    if isinstance(constraints, ba.Constraint):
        return [constraints]
    try:
        out = list(constraints)
    except TypeError:
        raise ValueError(f"{arg}: must be a bitalloc constraint or a list of them, "
                         f"got {constraints!r}") from None
    bad = [c for c in out if not isinstance(c, ba.Constraint)]
    if bad:
        raise ValueError(f"{arg}: not a bitalloc constraint: {bad[0]!r}")
    return out


def scope(c: ba.Constraint, names: Sequence[str], sizes: np.ndarray, all_names: Sequence[str],
          bits: Sequence[int], macs: np.ndarray | None, act_bits: Sequence[float]
          ) -> ba.Constraint:
    """``c`` restricted to the groups ``names`` (a constraint the user already scoped is
    kept). ``AverageBits`` / ``MemoryBudget`` / ``BOPsBudget`` are rebuilt with the core's
    ``groups=``; any other constraint becomes the equivalent ``LinearBudget`` whose costs
    are zero outside ``names``."""
    if getattr(c, "groups", None) is not None:
        return c
    if type(c) in (ba.AverageBits, ba.MemoryBudget, ba.BOPsBudget):
        return type(c)(c.limit, name=c.name, groups=tuple(names))
    index = [list(all_names).index(n) for n in names]
    sub = ba.Problem.from_sensitivities(
        np.ones(len(index)), sizes[index], bits=bits, names=list(names),
        macs=None if macs is None else macs[index], act_bits=[act_bits[i] for i in index])
    table = np.zeros((len(all_names), len(sub.bits)))
    table[index] = c.cost_table(sub)
    return ba.LinearBudget(table, c.limit, name=c.name)


@dataclass
class ModelGroups:
    """The allocatable groups of a model, fixed once (sizes, MACs); bits read live.

    Attributes:
        targets: weight groups, in order (one per distinct weight tensor).
        act_targets: layers whose input quantizer is an activation group.
        names: weight group names, then activation group names.
        sizes: group sizes (weight numel, then input numel *per sample*).
        macs: MACs per group (activation groups 0), or ``None`` when not counted.
        aliases: per weight group, the other layers that share its weight tensor (their
            weight quantizers always get the group's bits; the weight counts once).
    """

    targets: list[QuantTarget]
    act_targets: list[QuantTarget]
    names: list[str]
    sizes: np.ndarray
    macs: np.ndarray | None
    aliases: list[list[QuantTarget]] = dataclasses.field(default_factory=list)
    act_bits: list[float] = dataclasses.field(default_factory=list)

    @property
    def weight_names(self) -> list[str]:
        """Names of the weight groups."""
        return self.names[:len(self.targets)]

    @property
    def act_names(self) -> list[str]:
        """Names of the activation groups."""
        return self.names[len(self.targets):]

    @property
    def quantizers(self) -> list[Any]:
        """The quantizer of every group, aligned with :attr:`names`."""
        return [t.quantizer for t in self.targets] + [t.input_quantizer for t in self.act_targets]

    def current_bits(self) -> np.ndarray:
        """Bits of every group now."""
        return np.array([int(q.bits) for q in self.quantizers], dtype=np.int64)

    def apply(self, bits: Sequence[int], keep_range: bool = True) -> list[int]:
        """Set every group's bitwidth (aliases too); returns the indices that changed."""
        changed = []
        alias = self.aliases or [[] for _ in self.targets]
        for i, (q, b) in enumerate(zip(self.quantizers, bits)):
            if int(q.bits) != int(b):
                changed.append(i)
            q.set_bits(int(b), keep_range=keep_range)
            if i < len(self.targets):
                for t in alias[i]:
                    if int(t.quantizer.bits) != int(b):
                        t.quantizer.set_bits(int(b), keep_range=keep_range)
        return changed

    def allowed(self, bits: Sequence[int]) -> dict[str, list[int]]:
        """Candidates each quantizer accepts (``min_bits``/``max_bits``), where restricted."""
        out = {}
        for name, q in zip(self.names, self.quantizers):
            lo, hi = getattr(q, "min_bits", 1), getattr(q, "max_bits", 64)
            ok = [int(b) for b in bits if lo <= b <= hi]
            if not ok:
                raise ValueError(f"bits: no candidate in {list(bits)} fits group {name!r} "
                                 f"(accepts {lo}..{hi})")
            if len(ok) < len(bits):
                out[name] = ok
        return out

    def _act_bits(self) -> list[float]:
        if self.act_bits:
            return list(self.act_bits)
        return [_act_bits_of(t) for t in self.targets] + [8.0] * len(self.act_targets)

    def problem(self, sensitivity, bits: Sequence[int], constraints: Sequence[ba.Constraint],
                noise: str = "uniform",
                act_constraints: Sequence[ba.Constraint] | None = None) -> ba.Problem:
        """The :class:`bitalloc.Problem` for per-group ``sensitivity``.

        With ``act_constraints`` (a list, possibly empty) ``constraints`` count only the
        weight groups and ``act_constraints`` only the activation groups; with ``None``
        every constraint counts every group.
        """
        act_bits = self._act_bits()
        constraints = list(constraints)
        if act_constraints is not None:
            cand = tuple(sorted(int(b) for b in bits))
            args = (self.sizes, self.names, cand, self.macs, act_bits)
            constraints = ([scope(c, self.weight_names, *args) for c in constraints]
                           + [scope(c, self.act_names, *args) for c in act_constraints])
        return ba.Problem.from_sensitivities(
            np.asarray(sensitivity, dtype=np.float64), self.sizes, bits=bits, noise=noise,
            names=self.names, macs=self.macs, act_bits=act_bits,
            allowed=self.allowed(bits) or None, constraints=constraints)


def _frozen(targets: list[QuantTarget]) -> list[QuantTarget]:
    frozen = [t for t in targets if isinstance(t.weight, torch.Tensor)
              and not t.weight.requires_grad]
    if frozen:
        warnings.warn(
            f"QBitOpt: {len(frozen)} layer(s) have weights with requires_grad=False and get "
            f"no gradient statistics: {[t.name for t in frozen][:5]}; they keep their bits and "
            f"are left out of the allocation and its budgets (pass them in exclude= to "
            f"silence this)", RuntimeWarning, stacklevel=3)
    return [t for t in targets if t not in frozen]


def model_groups(model: nn.Module, constraints=(), *, sample_input: Any = None,
                 activations: bool = False,
                 exclude: Sequence[str] | Callable[[str, nn.Module], bool] = (),
                 targets: Sequence[QuantTarget] | None = None,
                 trainable_only: bool = False) -> ModelGroups:
    """Collect the groups of ``model`` (see the module docstring).

    ``trainable_only=True`` (QBitOpt) leaves out, with a warning, layers whose weight has
    ``requires_grad=False``: they have no gradient, so FIT would call them insensitive.

    Example:
        >>> import torch, torch.nn as nn, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        >>> g = bt.model_groups(m, activations=True, sample_input=torch.zeros(5, 4))
        >>> g.names, g.sizes.tolist(), g.current_bits().tolist()
        (['0', '2', '2.input_quantizer'], [32.0, 16.0, 8.0], [8, 8, 8])

    Raises:
        ValueError: no quantized layers; ``exclude`` names an unknown layer; a
            ``BOPsBudget`` or ``activations=True`` without ``sample_input``;
            ``BOPsBudget`` with ``activations=True``.
    """
    constraints = constraint_list(constraints)
    all_targets = list(targets) if targets is not None else find_targets(model)
    if not all_targets:
        raise ValueError("model: has no quantized layers (call quantize_model first)")
    names = [t.name for t in all_targets]
    if len(set(names)) != len(names):
        raise ValueError("targets: group names must be unique")
    excluded = select(names, exclude, "exclude", {t.name: t.module for t in all_targets})
    kept = [t for t in all_targets if t.name not in excluded]
    if trainable_only:
        kept = _frozen(kept)
    if not kept:
        raise ValueError("exclude: excludes every quantized layer")
    bops = any(isinstance(c, ba.BOPsBudget) for c in constraints)
    if bops and activations:
        raise ValueError("constraints: BOPsBudget is bilinear in weight and activation bits "
                         "and cannot be used with activations=True")
    if (bops or activations) and sample_input is None:
        what = "BOPsBudget (MACs)" if bops else "activations=True (activation sizes)"
        raise ValueError(f"sample_input: needed for {what}")
    traces = _trace(model, kept, sample_input, activations) if sample_input is not None else None
    # one weight group per distinct weight tensor; layers sharing it are its aliases
    first: dict[int, int] = {}
    groups: list[list[int]] = []
    for i, t in enumerate(kept):
        key = id(t.weight)
        if key in first:
            groups[first[key]].append(i)
        else:
            first[key] = len(groups)
            groups.append([i])
    wt = [kept[g[0]] for g in groups]
    act = []
    per_sample = 1
    if activations:
        per_sample = leading_batch(sample_input)
        act = [(t, tr) for t, tr in zip(kept, traces)
               if t.input_quantizer is not None and getattr(t.input_quantizer, "enabled", True)
               and tr.in_grad and tr.in_numel > 0]
    sizes = [t.weight.numel() for t in wt] + [tr.in_numel / per_sample for _, tr in act]
    macs = None
    act_bits = [_act_bits_of(t) for t in wt] + [8.0] * len(act)
    if traces is not None:
        macs = np.array([sum(traces[i].macs for i in g) for g in groups] + [0] * len(act),
                        dtype=np.float64)
        for j, g in enumerate(groups):
            if len(g) > 1 and macs[j] > 0:  # BOPs of every use: sum_l macs_l * abits_l
                act_bits[j] = sum(traces[i].macs * _act_bits_of(kept[i]) for i in g) / macs[j]
    return ModelGroups(targets=wt, act_targets=[t for t, _ in act],
                       names=[t.name for t in wt] + [act_name(t.name) for t, _ in act],
                       sizes=np.array(sizes, dtype=np.float64), macs=macs,
                       aliases=[[kept[i] for i in g[1:]] for g in groups], act_bits=act_bits)


def problem_from_model(model: nn.Module, sensitivity: Mapping[str, float], constraints,
                       bits: Sequence[int] = DEFAULT_BITS, *, sample_input: Any = None,
                       activations: bool = False, noise: str = "uniform",
                       exclude: Sequence[str] | Callable[[str, nn.Module], bool] = ()
                       ) -> ba.Problem:
    """Build the allocation problem of a quantized model.

    Args:
        model: a quantized model.
        sensitivity: ``{group name: sensitivity}``, e.g. from :func:`fit_sensitivity`
            (with ``activations=True`` for activation groups).
        constraints: bitalloc constraints (``AverageBits``, ``MemoryBudget``,
            ``BOPsBudget``, ``LinearBudget``).
        bits: candidate bitwidths.
        sample_input: one input batch, needed for MACs (``BOPsBudget``) and activations.
        activations: add the layers' input activations as groups.
        noise: ``"uniform"`` or ``"exp"`` (DESIGN.md section 2).
        exclude: layers left out of the problem (names or a predicate).

    Returns:
        A :class:`bitalloc.Problem` whose group names are the module names.

    Raises:
        ValueError: ``sensitivity`` misses a group, or any error of :func:`model_groups`
            or :class:`bitalloc.Problem`.

    Example:
        >>> import torch, torch.nn as nn, bitalloc as ba, bitalloc_torch as bt
        >>> m = bt.quantize_model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        >>> p = bt.problem_from_model(m, {"0": 1.0, "2": 0.1}, [ba.BOPsBudget(2000)],
        ...                           bits=(2, 4, 8), sample_input=torch.zeros(1, 4))
        >>> p.names, p.macs.tolist()
        (('0', '2'), [32.0, 16.0])
        >>> ba.solve(p).bits.tolist()
        [4, 4]
    """
    groups = model_groups(model, constraints, sample_input=sample_input,
                          activations=activations, exclude=exclude)
    if not isinstance(sensitivity, Mapping):
        raise ValueError("sensitivity: must map group names to numbers")
    missing = [n for n in groups.names if n not in sensitivity]
    if missing:
        raise ValueError(f"sensitivity: missing groups {missing}")
    values = [sensitivity[n] for n in groups.names]
    return groups.problem(values, bits, constraint_list(constraints), noise)
