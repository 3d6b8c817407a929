"""The allocation problem: per-group errors, sizes and constraints, as arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _validate as v
from .compiled import Compiled, compile_problem
from .constraints import Constraint
from .noise import phi

__all__ = ["Problem"]


def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.setflags(write=False)
    return a


class Problem:
    """A multiple-choice bitwidth allocation problem (see DESIGN.md section 2).

    Arrays, not objects per group: the same model carries a million groups.
    Instances are immutable once built; all validation happens in the constructor.

    Args:
        errors: ``(N, K)`` table, ``errors[i, k]`` is the objective contribution of
            group ``i`` at ``bits[k]``; finite and ``>= 0``.
        sizes: ``(N,)`` number of elements of each group; finite and ``> 0``.
        bits: candidate bitwidths, strictly increasing positive integers.
        names: ``N`` unique group names (default ``g0, g1, ...``).
        macs: ``(N,)`` multiply-accumulates per group (needed by :class:`BOPsBudget`).
        act_bits: ``(N,)`` activation bitwidth per group for BOPs (default 8).
        allowed: ``{group: bitwidths}``, a group given by name or index.
        ties: list of lists of groups that must share one bitwidth.
        constraints: the budgets, e.g. ``[AverageBits(4.0)]``.

    Raises:
        ValueError: on any bad argument; the message starts with the argument name.

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem(errors=[[1.0, 0.1], [2.0, 0.5]], sizes=[10, 30], bits=(2, 4),
        ...                constraints=[ba.AverageBits(3.0)])
        >>> p.n_groups, p.bits.tolist()
        (2, [2, 4])
    """

    def __init__(self, errors, sizes, bits: Sequence[int] = v.DEFAULT_BITS, *,
                 names: Sequence[str] | None = None, macs=None, act_bits=None,
                 allowed=None, ties=None, constraints: Sequence[Constraint] = ()) -> None:
        self.bits = _readonly(v.bits_array(bits))
        self.errors = _readonly(v.float_array(errors, "errors", 2))
        n, k = self.errors.shape
        if k != len(self.bits):
            raise ValueError(f"errors: has {k} columns but there are {len(self.bits)} bits")
        self.sizes = _readonly(self._per_group(sizes, "sizes", n, positive=True))
        self.names = v.names_tuple(names, n)
        self.macs = _readonly(None if macs is None else self._per_group(macs, "macs", n))
        self.act_bits = _readonly(np.full(n, 8.0) if act_bits is None else
                                  self._per_group(act_bits, "act_bits", n, positive=True))
        self.allowed = _readonly(v.allowed_mask(allowed, self.bits, self.names))
        self.ties = v.tie_groups(ties, self.names)
        self.constraints = self._check_constraints(constraints)
        self._compiled: Compiled | None = None

    @classmethod
    def from_sensitivities(cls, sensitivity, sizes, bits: Sequence[int] = v.DEFAULT_BITS,
                           noise: str = "uniform", **kwargs) -> Problem:
        """Build a problem with ``errors[i, k] = sensitivity[i] * phi(bits[k])``.

        Args:
            sensitivity: ``(N,)`` finite, ``>= 0`` (e.g. FIT: Fisher trace x range**2).
            sizes: ``(N,)`` group sizes.
            bits: candidate bitwidths.
            noise: ``"uniform"`` (``(2**b-1)**-2``) or ``"exp"`` (``4**-b``).
            **kwargs: the keywords of :class:`Problem`.

        Example:
            >>> import bitalloc as ba
            >>> p = ba.Problem.from_sensitivities([4.0, 1.0], [100, 100], bits=(2, 4),
            ...                                   constraints=[ba.AverageBits(3.0)])
            >>> p.errors.round(4).tolist()
            [[0.4444, 0.0178], [0.1111, 0.0044]]
        """
        b = v.bits_array(bits)
        s = v.float_array(sensitivity, "sensitivity", 1)
        return cls(errors=np.outer(s, phi(b, noise)), sizes=sizes, bits=b, **kwargs)

    @property
    def n_groups(self) -> int:
        """Number of groups ``N`` (before merging ties)."""
        return self.errors.shape[0]

    def compiled(self) -> Compiled:
        """The merged (ties collapsed) array form every solver works on (cached)."""
        if self._compiled is None:
            self._compiled = compile_problem(self)
        return self._compiled

    def bit_index(self, bits) -> np.ndarray:
        """Positions in ``self.bits`` of an allocation given as bitwidths."""
        b = np.asarray(bits)
        if b.shape != (self.n_groups,):
            raise ValueError(f"bits: expected {self.n_groups} bitwidths, got shape {b.shape}")
        k = np.searchsorted(self.bits, b)
        k = np.minimum(k, len(self.bits) - 1)
        if (self.bits[k] != b).any():
            raise ValueError(f"bits: values not among candidates {self.bits.tolist()}")
        return k

    def objective(self, bits) -> float:
        """``sum_i errors[i, b_i]`` for an allocation given as bitwidths."""
        k = self.bit_index(bits)
        return float(self.errors[np.arange(self.n_groups), k].sum())

    def usage(self, bits) -> dict[str, tuple[float, float]]:
        """``{constraint name: (value, max)}`` for an allocation given as bitwidths."""
        return {c.name: (c.value(self, bits), c.limit) for c in self.constraints}

    def fits(self, bits) -> bool:
        """Whether an allocation (bitwidths) is allowed, respects ties and meets every budget.

        Uses the same tolerance as the solvers (``1e-12`` of each constraint's scale).

        Example:
            >>> import bitalloc as ba
            >>> p = ba.Problem(errors=[[1.0, 0.1], [2.0, 0.5]], sizes=[10, 30], bits=(2, 4),
            ...                constraints=[ba.AverageBits(3.0)])
            >>> p.fits([4, 2]), p.fits([2, 4])
            (True, False)
        """
        k = self.bit_index(bits)
        if not self.allowed[np.arange(self.n_groups), k].all():
            return False
        if any(len(set(k[t].tolist())) > 1 for t in self.ties):
            return False
        cp = self.compiled()
        values = np.array([c.value(self, bits) for c in self.constraints])
        return bool((values <= cp.limits + cp.tol).all())

    def _per_group(self, value, arg: str, n: int, positive: bool = False) -> np.ndarray:
        arr = v.float_array(value, arg, 1, positive=positive)
        if len(arr) != n:
            raise ValueError(f"{arg}: has {len(arr)} entries but there are {n} groups")
        return arr

    def _check_constraints(self, constraints) -> tuple[Constraint, ...]:
        if isinstance(constraints, Constraint):
            constraints = [constraints]
        out = tuple(constraints)
        seen: set[str] = set()
        for i, c in enumerate(out):
            if not isinstance(c, Constraint):
                raise ValueError(f"constraints[{i}]: not a constraint object: {c!r}")
            c.check(self, i)
            if c.name in seen:
                raise ValueError(f"constraints[{i}]: duplicate constraint name {c.name!r}")
            seen.add(c.name)
        return out

    def __repr__(self) -> str:
        return (f"Problem(groups={self.n_groups}, bits={self.bits.tolist()}, "
                f"constraints={list(self.constraints)})")
