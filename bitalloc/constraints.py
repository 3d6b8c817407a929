"""Resource constraints: each is a linear cost table over (group, bitwidth) and a limit.

Every constraint turns a problem into a cost table ``C`` of shape ``(N, K)`` and a
limit; an allocation ``b`` (one option per group) satisfies it when
``sum_i C[i, k_i] <= limit``, checked exactly (see :mod:`bitalloc.numeric`).

Every constraint takes ``name=`` (the key in ``Result.usage``; unique within a
problem) and ``groups=`` (names or indices: the constraint then counts only those
groups; :class:`AverageBits` then averages over the scoped groups' sizes).

Constraints are immutable: a changed limit is a new object (:meth:`Constraint.with_limit`).
Like cvxpy's constraint objects, a constraint can grade an allocation:
:meth:`Constraint.value`, :meth:`Constraint.violation` and
:meth:`Constraint.min_reachable`.

Example:
    >>> import bitalloc as ba
    >>> w = ba.AverageBits(3.0, name="weights", groups=["a", "b"])
    >>> p = ba.Problem.from_sensitivities([1.0, 2.0, 4.0], [10, 10, 10], bits=(2, 4, 8),
    ...                                   names=["a", "b", "x"], constraints=[w])
    >>> w.value(p, [2, 4, 8])  # the average over a and b only
    3.0
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from .numeric import exact_sum

if TYPE_CHECKING:  # pragma: no cover
    from .problem import Problem

__all__ = ["Constraint", "AverageBits", "MemoryBudget", "BOPsBudget", "LinearBudget"]


def _check_limit(value, arg: str, positive: bool = True) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{arg}: must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{arg}: must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{arg}: must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{arg}: must be positive, got {v}")
    return v


def _check_name(name, arg: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{arg}: must be a non-empty string, got {name!r}")
    return name


def _check_groups(groups, arg: str) -> tuple | None:
    if groups is None:
        return None
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable):
        raise ValueError(f"{arg}: must be a list of group names or indices, got {groups!r}")
    out = []
    for g in groups:
        if isinstance(g, (int, np.integer)) and not isinstance(g, (bool, np.bool_)):
            out.append(int(g))
        elif isinstance(g, str) and g:
            out.append(g)
        else:
            raise ValueError(f"{arg}: a group is a name or an integer index, got {g!r}")
    if not out:
        raise ValueError(f"{arg}: must name at least one group")
    return tuple(out)


def _integral(a: np.ndarray) -> bool:
    return bool(np.array_equal(a, np.round(a)))


class Constraint(ABC):
    """A linear budget ``sum_i cost[i, b_i] <= limit`` over the groups in its scope.

    Subclasses define :meth:`cost_table` (and, for speed and exactness, the rank-one
    ones define :meth:`weights`). ``name`` is the key under which the constraint
    appears in ``Result.usage``; ``groups`` is ``None`` (every group) or the tuple of
    names or indices it counts. Instances are immutable.
    """

    name: str
    limit: float
    groups: tuple | None = None

    def __setattr__(self, key, value) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one "
                             f"(for a new limit: .with_limit(value))")

    def _init(self, **fields) -> None:
        for k, val in fields.items():
            object.__setattr__(self, k, val)

    # -- scope ------------------------------------------------------------------------
    def scope(self, problem: Problem) -> np.ndarray | None:
        """Sorted positions of the groups this constraint counts, or None for all.

        Raises:
            ValueError: ``groups`` names a group the problem does not have (all of
                them are named), or gives one group twice.
        """
        if self.groups is None:
            return None
        index = problem.index_of
        n = problem.n_groups
        unknown = [g for g in self.groups
                   if (g not in index if isinstance(g, str) else not 0 <= g < n)]
        if unknown:
            raise ValueError(f"{self.name}.groups: unknown groups {unknown} "
                             f"(the problem has {n} groups)")
        pos = np.array([index[g] if isinstance(g, str) else g for g in self.groups],
                       dtype=np.int64)
        uniq, counts = np.unique(pos, return_counts=True)
        if (counts > 1).any():
            dup = problem.names[int(uniq[np.argmax(counts > 1)])]
            raise ValueError(f"{self.name}.groups: group {dup!r} is given more than once")
        return uniq

    def _mask(self, problem: Problem) -> np.ndarray | None:
        s = self.scope(problem)
        if s is None:
            return None
        m = np.zeros(problem.n_groups, dtype=bool)
        m[s] = True
        return m

    # -- the table --------------------------------------------------------------------
    def weights(self, problem: Problem) -> np.ndarray | None:
        """``(N,)`` weights ``w`` when ``cost[i, k] = w[i] * bits[k]`` (0 off scope), else None."""
        return None

    def factors(self, problem: Problem) -> tuple[np.ndarray, np.ndarray] | None:
        """``(w, f)`` with ``cost_table(problem)[i, k] == w[i] * f[k]`` exactly, or None.

        The rank-one constraints return their weights over the divisor and the
        bitwidths; the compiled form keeps these two vectors instead of the table
        (:class:`bitalloc.costs.RankOneCost`). A full table (:class:`LinearBudget`)
        returns None.
        """
        return None

    @abstractmethod
    def cost_table(self, problem: Problem) -> np.ndarray:
        """Cost of each (group, candidate bitwidth), shape ``(N, K)``, in original group order."""

    def check(self, problem: Problem, index: int) -> None:
        """Raise ``ValueError`` if this constraint cannot apply to ``problem``."""
        self.scope(problem)

    def integer_scale(self, problem: Problem) -> float | None:
        """A factor ``s`` with ``cost_table * s`` integral (exact solvers use it), or None.

        The default looks for a power of two up to ``2**30``.
        """
        table = self.cost_table(problem)
        for p in range(31):
            scaled = table * 2.0**p
            if np.array_equal(scaled, np.round(scaled)):
                return 2.0**p
        return None

    # -- grading ----------------------------------------------------------------------
    def exact_value(self, problem: Problem, bits) -> Fraction:
        """The resource used by ``bits``, computed exactly (a ``Fraction``)."""
        k = problem.bit_index(bits)
        w = self.weights(problem)
        if w is not None:
            per = [exact_sum(w[k == j]) * int(b) for j, b in enumerate(problem.bits.tolist())]
            return sum(per, Fraction(0)) / self.exact_divisor(problem)
        table = self.cost_table(problem)
        return exact_sum(table[np.arange(len(k)), k])

    def exact_divisor(self, problem: Problem) -> Fraction:
        """``usage = sum_i w_i b_i / divisor`` for rank-one constraints, exactly."""
        return Fraction(1)

    def divisor(self, problem: Problem) -> float:
        """The divisor of :meth:`exact_divisor` in floating point."""
        return 1.0

    def value(self, problem: Problem, bits) -> float:
        """Resource used by an allocation (``bits``: one bitwidth per group).

        Rounded correctly from the exact value, so an allocation within the limit
        never reports a value above it.
        """
        return float(self.exact_value(problem, bits))

    def violation(self, problem: Problem, bits) -> float:
        """How far ``bits`` exceeds the limit (0.0 when satisfied)."""
        return float(max(Fraction(0), self.exact_value(problem, bits) - Fraction(self.limit)))

    def min_reachable(self, problem: Problem) -> float:
        """Smallest value reachable under the problem's ``allowed`` and ``ties``."""
        compiled = problem.compiled()
        i = compiled.constraint_names.index(self.name)
        return float(compiled.min_costs()[i] * compiled.scales[i])

    def with_limit(self, value: float) -> Constraint:
        """A copy of this constraint with another limit."""
        new = object.__new__(type(self))
        for k, val in vars(self).items():
            object.__setattr__(new, k, val)
        object.__setattr__(new, "limit", _check_limit(value, f"{self.name}.max",
                                                      positive=False))
        return new

    def _scope_repr(self) -> str:
        return "" if self.groups is None else f", groups={list(self.groups)!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.limit!r})"


class _RankOne(Constraint):
    """``cost[i, k] = w[i] * bits[k]`` over the scope (0 elsewhere)."""

    _default_name = ""

    def _base_weights(self, problem: Problem) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def weights(self, problem: Problem) -> np.ndarray:
        w = self._base_weights(problem)
        mask = self._mask(problem)
        return w if mask is None else np.where(mask, w, 0.0)

    def factors(self, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
        w, d = self.weights(problem), self.divisor(problem)
        bits = problem.bits.astype(np.float64)
        if math.frexp(d)[0] == 0.5:  # a power of two divides exactly: keep w (no copy)
            return w, bits / d
        return w / d, bits

    def cost_table(self, problem: Problem) -> np.ndarray:
        """The dense ``(N, K)`` table ``np.outer(*factors)``, built on each call."""
        return np.outer(*self.factors(problem))

    def __repr__(self) -> str:
        extra = "" if self.name == self._default_name else f", name={self.name!r}"
        return f"{type(self).__name__}({self.limit!r}{extra}{self._scope_repr()})"


class AverageBits(_RankOne):
    """Size-weighted average bitwidth: ``sum size_i*b_i <= max * sum size_i``.

    With ``groups=``, both sums run over those groups only. Usage is reported as
    the average bitwidth itself.

    Example:
        >>> AverageBits(4.0)
        AverageBits(4.0)
        >>> AverageBits(4.0, name="acts", groups=[3, 4])
        AverageBits(4.0, name='acts', groups=[3, 4])
    """

    _default_name = "average_bits"

    def __init__(self, max: float, name: str = "average_bits", groups=None) -> None:  # noqa: A002
        self._init(limit=_check_limit(max, "AverageBits.max"),
                   name=_check_name(name, "AverageBits.name"),
                   groups=_check_groups(groups, "AverageBits.groups"))

    def _base_weights(self, problem: Problem) -> np.ndarray:
        return problem.sizes

    def exact_divisor(self, problem: Problem) -> Fraction:
        return exact_sum(self.weights(problem))

    def divisor(self, problem: Problem) -> float:
        return float(self.weights(problem).sum())

    def integer_scale(self, problem: Problem) -> float | None:
        w = self.weights(problem)
        return float(w.sum()) if _integral(w) else None


class MemoryBudget(_RankOne):
    """Weight memory in bytes: ``sum size_i*b_i / 8 <= max_bytes`` (over ``groups``).

    Example:
        >>> MemoryBudget(1e6)
        MemoryBudget(1000000.0)
    """

    _default_name = "memory"

    def __init__(self, max_bytes: float, name: str = "memory", groups=None) -> None:
        self._init(limit=_check_limit(max_bytes, "MemoryBudget.max_bytes"),
                   name=_check_name(name, "MemoryBudget.name"),
                   groups=_check_groups(groups, "MemoryBudget.groups"))

    def _base_weights(self, problem: Problem) -> np.ndarray:
        return problem.sizes

    def exact_divisor(self, problem: Problem) -> Fraction:
        return Fraction(8)

    def divisor(self, problem: Problem) -> float:
        return 8.0

    def integer_scale(self, problem: Problem) -> float | None:
        return 8.0 if _integral(self.weights(problem)) else None


class BOPsBudget(_RankOne):
    """Bit operations: ``sum macs_i * b_i * act_bits_i <= max_bops``; needs ``macs``.

    ``macs_i * act_bits_i`` is taken as one (floating-point) weight per group.

    Example:
        >>> BOPsBudget(1.2e9)
        BOPsBudget(1200000000.0)
    """

    _default_name = "bops"

    def __init__(self, max_bops: float, name: str = "bops", groups=None) -> None:
        self._init(limit=_check_limit(max_bops, "BOPsBudget.max_bops"),
                   name=_check_name(name, "BOPsBudget.name"),
                   groups=_check_groups(groups, "BOPsBudget.groups"))

    def check(self, problem: Problem, index: int) -> None:
        if problem.macs is None:
            raise ValueError(f"constraints[{index}]: BOPsBudget needs macs= for every group")
        super().check(problem, index)

    def _base_weights(self, problem: Problem) -> np.ndarray:
        return problem.macs * problem.act_bits

    def integer_scale(self, problem: Problem) -> float | None:
        return 1.0 if _integral(self.weights(problem)) else None


class LinearBudget(Constraint):
    """Any linear budget given as a cost table of shape ``(N, K)``.

    Args:
        costs: cost of group ``i`` at candidate bitwidth ``bits[k]``; finite numbers.
        max: the limit.
        name: key in ``Result.usage`` (default ``"linear"``).
        groups: count only these groups (the other rows of ``costs`` are ignored).

    Example:
        >>> LinearBudget([[1, 2], [1, 2]], 3, name="latency").name
        'latency'
    """

    def __init__(self, costs, max: float, name: str = "linear", groups=None) -> None:  # noqa: A002
        try:
            arr = np.array(costs, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("LinearBudget.costs: must be a 2-D table of numbers") from None
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"LinearBudget.costs: must be a non-empty 2-D (N, K) table, "
                             f"got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("LinearBudget.costs: must be finite (found NaN or inf)")
        arr.setflags(write=False)
        self._init(costs=arr, limit=_check_limit(max, "LinearBudget.max", positive=False),
                   name=_check_name(name, "LinearBudget.name"),
                   groups=_check_groups(groups, "LinearBudget.groups"))

    def check(self, problem: Problem, index: int) -> None:
        want = (problem.n_groups, len(problem.bits))
        if self.costs.shape != want:
            raise ValueError(f"constraints[{index}].costs: LinearBudget {self.name!r} has shape "
                             f"{self.costs.shape}, expected (groups, bits) = {want}")
        super().check(problem, index)

    def cost_table(self, problem: Problem) -> np.ndarray:
        mask = self._mask(problem)
        if mask is None:
            return self.costs
        return np.where(mask[:, None], self.costs, 0.0)

    def __repr__(self) -> str:
        return (f"LinearBudget(<{self.costs.shape}>, {self.limit!r}, name={self.name!r}"
                f"{self._scope_repr()})")
