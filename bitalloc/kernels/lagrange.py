"""The Lagrangian function of the compiled problem and the one-hot program's matrices.

For a multiple-choice knapsack the LP relaxation of the one-hot program equals the
Lagrangian dual ``max_{lam >= 0} L(lam)`` with
``L(lam) = sum_m min_k (E[m,k] + sum_c lam_c C_c[m,k]) - sum_c lam_c limit_c``.
By weak duality ``L(lam)`` is a lower bound on the integer optimum for *any*
``lam >= 0`` (in the compiled problem's units), so a bound computed from an LP
solver's duals stays valid even when the LP solver is only accurate to its tolerance.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from ..compiled import Compiled
from ..costs import CHUNK, dense_rows
from ..errors import InfeasibleError

__all__ = ["priced", "priced_min", "lagrangian_eval", "lagrangian_value", "one_hot_matrices",
           "joint_infeasible"]


def priced(cp: Compiled, lam: np.ndarray) -> np.ndarray:
    """``E + sum_c lam_c C_c``: the errors with each budget priced at ``lam``.

    ``inf`` at disallowed options, as in ``cp.errors``; ``cp.errors`` itself (not a
    copy) when every ``lam`` is zero, so callers must not write to the result. Made in
    blocks of rows, so a rank-one cost never becomes a full table of its own (the
    entries are the same floats as ``cp.errors + lam_c * np.asarray(C_c) + ...``).
    """
    active = [(float(lc), c) for lc, c in zip(lam, cp.costs) if lc]
    if not active:
        return cp.errors
    total = np.empty(cp.errors.shape)
    m = cp.n
    for a in range(0, m, CHUNK):
        b = min(a + CHUNK, m)
        t = total[a:b]
        for i, (lc, c) in enumerate(active):
            part = lc * dense_rows(c, a, b)
            if i == 0:
                np.add(cp.errors[a:b], part, out=t)
            else:
                t += part
    if not cp.all_allowed:  # inf + (-inf) cannot occur (costs are finite); keep inf exact
        total[~cp.allowed] = np.inf
    return total


def priced_min(cp: Compiled, lam: np.ndarray,
               want_choice: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Per group, the least priced error ``min_k (E + lam . C)[m, k]`` and its option.

    The same floats as ``priced(cp, lam)`` with ``argmin`` (first least option), made
    in blocks of rows that stay in cache: no ``(M, K)`` temporary, and the minimum
    is a loop over the ``K`` columns rather than a reduction along short rows.
    Without ``want_choice`` only the minima (the option is None).
    """
    m, k = cp.errors.shape
    active = [(float(lc), c) for lc, c in zip(lam, cp.costs) if lc]
    best = np.empty(m)
    arg = np.zeros(m, dtype=np.int64) if want_choice else None
    for a in range(0, m, CHUNK):
        b = min(a + CHUNK, m)
        t = cp.errors[a:b]
        for lc, c in active:
            t = t + lc * dense_rows(c, a, b)
        if active and not cp.all_allowed:
            t[~cp.allowed[a:b]] = np.inf
        bb = best[a:b]
        bb[...] = t[:, 0]
        if arg is None:
            for j in range(1, k):
                np.minimum(bb, t[:, j], out=bb)
            continue
        ab = arg[a:b]
        for j in range(1, k):
            col = t[:, j]
            upd = col < bb
            np.copyto(bb, col, where=upd)
            ab[upd] = j
    return best, arg


def lagrangian_eval(cp: Compiled, lam) -> tuple[float, np.ndarray, np.ndarray]:
    """``L(lam)`` with its minimiser and the minimiser's usage (a subgradient oracle).

    Returns:
        ``(value, choice, usage)``: the bound ``L(lam)`` (valid for any ``lam >= 0``),
        the ``(M,)`` choice minimising ``E + lam . C`` per group, and its ``(C,)`` usage
        (``usage - limit - tol`` is a supergradient of ``L`` at ``lam``).

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([4.0, 1.0], [1, 1], bits=(2, 4), noise="exp",
        ...                                   constraints=[ba.AverageBits(3.0)])
        >>> value, choice, usage = lagrangian_eval(p.compiled(), [0.0])
        >>> choice.tolist(), usage.tolist()  # usage normalised: average 4 over scale 4
        ([1, 1], [1.0])
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float64).reshape(-1), 0.0)
    low, choice = priced_min(cp, lam)
    usage = cp.usage(choice)
    # the feasible set admits usage up to limit + tol, so the bound subtracts that
    value = float(low.sum()) - float(lam @ (cp.limits + cp.tol))
    return value, choice, usage


def lagrangian_value(cp: Compiled, lam: np.ndarray) -> float:
    """``L(lam)``: a valid lower bound on the optimum for any ``lam >= 0``.

    The value of :func:`lagrangian_eval` without its minimiser (one pass fewer).
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float64).reshape(-1), 0.0)
    low, _ = priced_min(cp, lam, want_choice=False)
    return float(low.sum()) - float(lam @ (cp.limits + cp.tol))


def one_hot_matrices(cp: Compiled):
    """Sparse one-hot program over allowed options.

    Returns:
        ``(rows, cols, c, a_eq, a_ub)``: group and option of each variable, the
        objective, the one-per-group equality matrix and the constraint matrix.
    """
    rows, cols = np.nonzero(cp.allowed)
    nvar = len(rows)
    c = cp.errors[rows, cols]
    a_eq = csr_matrix((np.ones(nvar), (rows, np.arange(nvar))), shape=(cp.n, nvar))
    if cp.costs:
        a_ub = np.vstack([cost[rows, cols] for cost in cp.costs])
        a_ub = csr_matrix(a_ub)
    else:
        a_ub = None
    return rows, cols, c, a_eq, a_ub


def joint_infeasible(cp: Compiled, proof: str) -> InfeasibleError:
    """The error for constraints each reachable alone but not all together."""
    scales = cp.scales if cp.scales is not None else np.ones(len(cp.limits))
    parts = ", ".join(f"{n} max {lim * s:.6g} (alone reachable down to {low * s:.6g})"
                      for n, lim, low, s in zip(cp.constraint_names, cp.stated(), cp.min_costs(),
                                                scales))
    names = ", ".join(cp.constraint_names)
    return InfeasibleError(
        f"{names}: each constraint is reachable on its own but no allocation meets them "
        f"all together ({proof}): {parts}", constraint=names)
