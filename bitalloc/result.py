"""The answer of :func:`bitalloc.solve`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .validate import DefaultNames

__all__ = ["Result", "Status"]

#: ``"optimal"``: proven; ``"feasible"``: meets every budget, optimality not proven.
Status = Literal["optimal", "feasible"]


@dataclass(frozen=True)
class Result:
    """An allocation with its certificate.

    Frozen: ``bits`` is a read-only array and no field can be set.

    Attributes:
        bits: ``(N,)`` read-only int array, the bitwidth of each group in the original order.
        objective: ``sum_i errors[i, bits_i]``, recomputed from ``bits``.
        bound: a proven lower bound on the optimal objective (the LP/convex-hull
            relaxation for heuristics, the solver's proven bound for ``"ilp"``).
        gap: ``(objective - bound) / max(|objective|, 1e-300)``; 0 means proven optimal.
        status: ``"optimal"`` when optimality is proven (by the exact solver, or
            by ``gap <= 1e-9``), otherwise ``"feasible"``. Every result is feasible.
        method: the solver that produced ``bits`` (``"auto"`` resolves to one).
        seconds: wall time of the solve, including bound computation.
        usage: ``{constraint name: (value, max)}`` for every constraint; the value is
            checked exactly and never reported above ``max``.
        names: group names, aligned with ``bits``.

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([4.0, 1.0], [100, 100], bits=(2, 4),
        ...                                   constraints=[ba.AverageBits(3.0)])
        >>> r = ba.solve(p, method="greedy")
        >>> r.bits.tolist(), r.status, r.usage["average_bits"]
        ([4, 2], 'optimal', (3.0, 3.0))
    """

    bits: np.ndarray
    objective: float
    bound: float
    gap: float
    status: Status
    method: str
    seconds: float
    usage: dict[str, tuple[float, float]]
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.status not in ("optimal", "feasible"):
            raise ValueError(f"status: must be 'optimal' or 'feasible', got {self.status!r}")
        bits = np.array(self.bits, dtype=np.int64)
        bits.setflags(write=False)
        object.__setattr__(self, "bits", bits)
        if not isinstance(self.names, DefaultNames):  # those are made on demand
            object.__setattr__(self, "names", tuple(self.names))

    @property
    def bits_by_name(self) -> dict[str, int]:
        """``{group name: bitwidth}``."""
        return {n: int(b) for n, b in zip(self.names, self.bits)}

    def to_dict(self) -> dict:
        """JSON-ready dict in the format of DESIGN.md section 4."""
        return {
            "status": self.status,
            "method": self.method,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "seconds": self.seconds,
            "bits": self.bits_by_name,
            "usage": {k: {"value": v, "max": m} for k, (v, m) in self.usage.items()},
        }

    def table(self, errors: np.ndarray | None = None, max_rows: int | None = 50) -> str:
        """A readable per-group table followed by the summary lines.

        Args:
            errors: optional ``(N,)`` per-group error at the chosen bits, shown as a column.
            max_rows: show at most this many groups (``None`` for all).
        """
        rows = list(zip(self.names, self.bits.tolist()))
        shown = rows if max_rows is None else rows[:max_rows]
        width = max([len("group")] + [len(n) for n, _ in shown])
        lines = [f"{'group':<{width}}  bits" + ("  error" if errors is not None else "")]
        for i, (name, b) in enumerate(shown):
            extra = f"  {errors[i]:.6g}" if errors is not None else ""
            lines.append(f"{name:<{width}}  {b:>4}{extra}")
        if len(shown) < len(rows):
            lines.append(f"... {len(rows) - len(shown)} more groups")
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        """Status, objective, bound, gap, time and usage on a few lines."""
        out = [f"status {self.status} ({self.method}), objective {self.objective:.6g}, "
               f"bound {self.bound:.6g}, gap {self.gap:.2e}, {self.seconds:.3f} s"]
        for k, (val, mx) in self.usage.items():
            out.append(f"  {k}: {val:.6g} of max {mx:.6g}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table(max_rows=20)
