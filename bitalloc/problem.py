"""The allocation problem: per-group errors, sizes and constraints, as arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import validate as v
from .compiled import Compiled, compile_problem
from .constraints import Constraint
from .noise import phi

__all__ = ["Problem"]


def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.setflags(write=False)
    return a


def _finite_total(abs_total: float, arg: str) -> None:
    with np.errstate(over="ignore"):
        total = abs_total * 64.0  # times the largest bitwidth
    if not np.isfinite(total):
        raise ValueError(f"{arg}: the total overflows (values too large to add up)")


class _Owned:
    """A table built for one new problem (by :meth:`Problem.from_sensitivities`): used as
    is, without the defensive copy a caller's array gets."""

    __slots__ = ("table",)

    def __init__(self, table: np.ndarray) -> None:
        self.table = table


class Problem:
    """A multiple-choice bitwidth allocation problem (see DESIGN.md section 2).

    Arrays, not objects per group: the same model carries a million groups.
    Instances are immutable (read-only arrays, tuples, immutable constraints; setting an
    attribute raises); all validation happens in the constructor, and the compiled
    form (:meth:`compiled`) is a pure function of these immutable inputs.

    Construction makes one read-only copy of ``errors`` and checks it with two
    whole-array reductions (``min`` and ``sum``); without ``names`` the default names
    are made on demand (:class:`bitalloc.validate.DefaultNames`), without ``allowed``
    the mask is a read-only broadcast of ``True`` and without ``act_bits`` a broadcast
    of 8, so a million groups cost one table pass.

    Attributes (besides the arguments): ``error_total``, the sum of every entry of
    ``errors`` (``inf`` when that overflows a float); ``all_allowed``, whether every
    option of every group is allowed.

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
        setf = object.__setattr__
        setf(self, "_compiled", None)
        setf(self, "_index", None)
        setf(self, "bits", _readonly(v.bits_array(bits)))
        if isinstance(errors, _Owned):  # a table made for this problem: no second copy
            table, total = v.float_array_sum(errors.table, "errors", 2, copy=False)
        else:
            table, total = v.float_array_sum(errors, "errors", 2)
        setf(self, "errors", _readonly(table))
        n, k = self.errors.shape
        if k != len(self.bits):
            raise ValueError(f"errors: has {k} columns but there are {len(self.bits)} bits")
        if not np.isfinite(total):  # the sum of all entries overflows: decide on row maxima
            with np.errstate(over="ignore"):
                if not np.isfinite(self.errors.max(axis=1).sum()):
                    raise ValueError("errors: the total error overflows (values too large to "
                                     "add up)")
        setf(self, "error_total", total)
        sizes, size_total = self._per_group(sizes, "sizes", n, positive=True)
        setf(self, "sizes", _readonly(sizes))
        _finite_total(size_total, "sizes")
        setf(self, "names", v.names_tuple(names, n))
        setf(self, "macs", _readonly(None if macs is None else self._per_group(macs, "macs", n)[0]))
        setf(self, "act_bits", np.broadcast_to(np.float64(8.0), (n,)) if act_bits is None else
             _readonly(self._per_group(act_bits, "act_bits", n, positive=True)[0]))
        if self.macs is not None:
            with np.errstate(over="ignore"):
                _finite_total(float(np.abs(self.macs * self.act_bits).sum()), "macs")
        index = self.index_of if (allowed or ties) else None
        mask = v.allowed_mask(allowed, self.bits, self.names, index)
        setf(self, "allowed", _readonly(mask) if mask.flags.writeable else mask)
        setf(self, "all_allowed", allowed is None or bool(mask.all()))
        setf(self, "ties", v.tie_groups(ties, self.names, index))
        setf(self, "constraints", self._check_constraints(constraints))

    def __setattr__(self, key, value) -> None:
        raise AttributeError(f"Problem is immutable; build a new Problem (cannot set {key!r})")

    @property
    def index_of(self) -> dict[str, int]:
        """``{group name: position}`` (built on first use)."""
        if self._index is None:
            object.__setattr__(self, "_index", {nm: i for i, nm in enumerate(self.names)})
        return self._index

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
        return cls(errors=_Owned(np.outer(s, phi(b, noise))), sizes=sizes, bits=b, **kwargs)

    @property
    def n_groups(self) -> int:
        """Number of groups ``N`` (before merging ties)."""
        return self.errors.shape[0]

    def compiled(self) -> Compiled:
        """The merged, normalised array form every solver works on.

        :func:`bitalloc.compiled.compile_problem` of this problem, kept after the first
        call: every input it depends on is immutable, so it never goes stale.
        """
        if self._compiled is None:
            object.__setattr__(self, "_compiled", compile_problem(self))
        return self._compiled

    def with_limit(self, constraint: str, value: float) -> Problem:
        """The same problem with constraint ``constraint`` (a name) at limit ``value``.

        Shares every array with this problem; the compiled form is reused with the
        one normalised limit changed.

        Example:
            >>> import bitalloc as ba
            >>> p = ba.Problem.from_sensitivities([1.0], [1], bits=(2, 4),
            ...                                   constraints=[ba.AverageBits(3.0)])
            >>> p.with_limit("average_bits", 4.0).constraints
            (AverageBits(4.0),)
        """
        names = [c.name for c in self.constraints]
        if constraint not in names:
            raise ValueError(f"constraint: unknown constraint {constraint!r}; the problem has "
                             f"{names}")
        i = names.index(constraint)
        new = object.__new__(Problem)
        for k, val in vars(self).items():
            object.__setattr__(new, k, val)
        cons = list(self.constraints)
        cons[i] = cons[i].with_limit(value)
        object.__setattr__(new, "constraints", tuple(cons))
        if self._compiled is not None:
            cp = self._compiled
            limits, stated = cp.limits.copy(), cp.stated().copy()
            limits[i] = cp.limit_for(i, cons[i].limit)
            stated[i] = cons[i].limit / (float(cp.scales[i]) if cp.scales is not None else 1.0)
            object.__setattr__(new, "_compiled", cp.with_limits(limits, stated=stated))
        return new

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

        Checked exactly (:func:`bitalloc.certify.violated`), as every answer of
        :func:`bitalloc.solve` is.

        Example:
            >>> import bitalloc as ba
            >>> p = ba.Problem(errors=[[1.0, 0.1], [2.0, 0.5]], sizes=[10, 30], bits=(2, 4),
            ...                constraints=[ba.AverageBits(3.0)])
            >>> p.fits([4, 2]), p.fits([2, 4])
            (True, False)
        """
        from .certify import violated

        k = self.bit_index(bits)
        if not self.allowed[np.arange(self.n_groups), k].all():
            return False
        if any(len(set(k[list(t)].tolist())) > 1 for t in self.ties):
            return False
        return not violated(self, k)

    def _per_group(self, value, arg: str, n: int,
                   positive: bool = False) -> tuple[np.ndarray, float]:
        arr, total = v.float_array_sum(value, arg, 1, positive=positive)
        if len(arr) != n:
            raise ValueError(f"{arg}: has {len(arr)} entries but there are {n} groups")
        return arr, total

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
                raise ValueError(f"constraints[{i}]: duplicate constraint name {c.name!r}; "
                                 f"names are unique within a problem (give name=)")
            seen.add(c.name)
        return out

    def __repr__(self) -> str:
        return (f"Problem(groups={self.n_groups}, bits={self.bits.tolist()}, "
                f"constraints={list(self.constraints)})")
