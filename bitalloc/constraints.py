"""Resource constraints: each is a linear cost table over (group, bitwidth) and a limit.

Every constraint turns a problem into a cost table ``C`` of shape ``(N, K)`` and a
limit; an allocation ``b`` (one option per group) satisfies it when
``sum_i C[i, k_i] <= limit`` (up to a relative tolerance of ``1e-12`` of the
constraint's scale, which only absorbs floating-point summation order).

Like cvxpy's constraint objects, a constraint can grade an allocation:
:meth:`Constraint.value`, :meth:`Constraint.violation` and
:meth:`Constraint.min_reachable`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .problem import Problem

__all__ = ["Constraint", "AverageBits", "MemoryBudget", "BOPsBudget", "LinearBudget"]

#: Relative tolerance used by every feasibility check (summation-order noise only).
FEAS_RTOL = 1e-12


def _check_limit(value, arg: str, positive: bool = True) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{arg}: must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{arg}: must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{arg}: must be positive, got {v}")
    return v


def _pow2_scale(table: np.ndarray) -> float | None:
    for p in range(31):
        scaled = table * 2.0**p
        if np.array_equal(scaled, np.round(scaled)):
            return 2.0**p
    return None


def _integral(a: np.ndarray) -> bool:
    return bool(np.array_equal(a, np.round(a)))


class Constraint(ABC):
    """A linear budget ``sum_i cost[i, b_i] <= limit``.

    Subclasses define :meth:`cost_table`. ``name`` is the key under which the
    constraint appears in ``Result.usage``.
    """

    name: str
    limit: float

    @abstractmethod
    def cost_table(self, problem: Problem) -> np.ndarray:
        """Cost of each (group, candidate bitwidth), shape ``(N, K)``, in original group order."""

    def check(self, problem: Problem, index: int) -> None:
        """Raise ``ValueError`` if this constraint cannot apply to ``problem``."""
        return None

    def integer_scale(self, problem: Problem) -> float | None:
        """A factor ``s`` with ``cost_table * s`` integral (exact solvers use it), or None.

        The default looks for a power of two up to ``2**30``; subclasses that know
        their structure (sizes times bits) return an exact factor.
        """
        return _pow2_scale(self.cost_table(problem))

    def value(self, problem: Problem, bits) -> float:
        """Resource used by an allocation (``bits``: one bitwidth per group)."""
        k = problem.bit_index(bits)
        table = self.cost_table(problem)
        return float(table[np.arange(len(k)), k].sum())

    def violation(self, problem: Problem, bits) -> float:
        """How far ``bits`` exceeds the limit (0.0 when satisfied)."""
        return max(0.0, self.value(problem, bits) - self.limit)

    def min_reachable(self, problem: Problem) -> float:
        """Smallest value reachable under the problem's ``allowed`` and ``ties``."""
        compiled = problem.compiled()
        i = compiled.constraint_names.index(self.name)
        table = np.where(compiled.allowed, compiled.costs[i], np.inf)
        return float(table.min(axis=1).sum())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.limit!r})"


class AverageBits(Constraint):
    """Size-weighted average bitwidth: ``sum size_i*b_i <= max * sum size_i``.

    Usage is reported as the average bitwidth itself.

    Example:
        >>> AverageBits(4.0)
        AverageBits(4.0)
    """

    def __init__(self, max: float, name: str = "average_bits") -> None:  # noqa: A002
        self.limit = _check_limit(max, "AverageBits.max")
        self.name = name

    def cost_table(self, problem: Problem) -> np.ndarray:
        sizes = problem.sizes
        return np.outer(sizes / sizes.sum(), problem.bits.astype(np.float64))

    def integer_scale(self, problem: Problem) -> float | None:
        return float(problem.sizes.sum()) if _integral(problem.sizes) else None


class MemoryBudget(Constraint):
    """Weight memory in bytes: ``sum size_i*b_i / 8 <= max_bytes``.

    Example:
        >>> MemoryBudget(1e6)
        MemoryBudget(1000000.0)
    """

    def __init__(self, max_bytes: float, name: str = "memory") -> None:
        self.limit = _check_limit(max_bytes, "MemoryBudget.max_bytes")
        self.name = name

    def cost_table(self, problem: Problem) -> np.ndarray:
        return np.outer(problem.sizes, problem.bits.astype(np.float64)) / 8.0

    def integer_scale(self, problem: Problem) -> float | None:
        return 8.0 if _integral(problem.sizes) else None


class BOPsBudget(Constraint):
    """Bit operations: ``sum macs_i * b_i * act_bits_i <= max_bops``; needs ``macs``.

    Example:
        >>> BOPsBudget(1.2e9)
        BOPsBudget(1200000000.0)
    """

    def __init__(self, max_bops: float, name: str = "bops") -> None:
        self.limit = _check_limit(max_bops, "BOPsBudget.max_bops")
        self.name = name

    def check(self, problem: Problem, index: int) -> None:
        if problem.macs is None:
            raise ValueError(f"constraints[{index}]: BOPsBudget needs macs= for every group")

    def cost_table(self, problem: Problem) -> np.ndarray:
        per_bit = problem.macs * problem.act_bits
        return np.outer(per_bit, problem.bits.astype(np.float64))

    def integer_scale(self, problem: Problem) -> float | None:
        return 1.0 if _integral(problem.macs * problem.act_bits) else None


class LinearBudget(Constraint):
    """Any linear budget given as a cost table of shape ``(N, K)``.

    Args:
        costs: cost of group ``i`` at candidate bitwidth ``bits[k]``; finite numbers.
        max: the limit.
        name: key in ``Result.usage`` (default ``"linear"``).

    Example:
        >>> LinearBudget([[1, 2], [1, 2]], 3, name="latency").name
        'latency'
    """

    def __init__(self, costs, max: float, name: str = "linear") -> None:  # noqa: A002
        arr = np.array(costs, dtype=np.float64)
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"LinearBudget.costs: must be a non-empty 2-D (N, K) table, "
                             f"got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("LinearBudget.costs: must be finite (found NaN or inf)")
        arr.setflags(write=False)
        self.costs = arr
        self.limit = _check_limit(max, "LinearBudget.max", positive=False)
        if not isinstance(name, str) or not name:
            raise ValueError(f"LinearBudget.name: must be a non-empty string, got {name!r}")
        self.name = name

    def check(self, problem: Problem, index: int) -> None:
        want = (problem.n_groups, len(problem.bits))
        if self.costs.shape != want:
            raise ValueError(f"constraints[{index}].costs: LinearBudget {self.name!r} has shape "
                             f"{self.costs.shape}, expected (groups, bits) = {want}")

    def cost_table(self, problem: Problem) -> np.ndarray:
        return self.costs

    def __repr__(self) -> str:
        return f"LinearBudget(<{self.costs.shape}>, {self.limit!r}, name={self.name!r})"
