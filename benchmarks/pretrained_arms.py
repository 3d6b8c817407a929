"""Arms of :mod:`benchmarks.pretrained`: uniform vs allocated at each budget, with and without
bias correction (:func:`compare`), and re-estimation rounds of the primary arm (:func:`rounds`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

import bitalloc as ba

from .pretrained_ptq import WeightPTQ, solve_arm
from .pretrained_rounds import reestimate

__all__ = ["BITS", "PRIMARY", "Timer", "compare", "rounds", "table_problems", "delta_problem"]

BITS = (2, 3, 4, 5, 6, 7, 8)
PRIMARY = "FIT-δ"


class Timer:
    """Seconds per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0


def compare(ptq: WeightPTQ, problems: dict, pinned: dict[str, int], cfg: dict, evaluate,
            correct, timer: Timer, log) -> dict:
    """Uniform (integer budgets) and the arms' allocations at each budget, evaluated.

    ``cfg["arms"]`` limits the arms (None: all); at non-integer budgets (where uniform
    cannot fit exactly) only ``cfg["fractional_arms"]`` run. Arms in ``cfg["bc_arms"]``
    are also evaluated after ``correct()`` (bias correction of the applied allocation),
    as ``"<arm> + BC"``, with the identical bits.
    """
    if cfg["arms"] is not None:
        problems = {a: p for a, p in problems.items() if a in cfg["arms"]}
    out = {}

    def with_bc(row: dict, arm: str, budget: float) -> None:
        if arm not in cfg["bc_arms"]:
            return
        with timer("bias correction"):
            size = correct()
        with timer("evaluate"):
            row[f"{arm} + BC"] = {**row[arm], "metrics": evaluate(),
                                  "bc_rms": float(np.sqrt(np.mean(np.square(
                                      list(size.values())))))}
        log(f"  {budget:g} bits {arm} + BC: {row[f'{arm} + BC']['metrics']}")

    for budget in cfg["budgets"]:
        row: dict[str, dict] = {}
        if float(budget).is_integer():
            with timer("evaluate"):
                ptq.apply(ptq.uniform(int(budget), pinned))
                row["uniform"] = {"metrics": evaluate(), "average_bits": float(budget)}
            log(f"  {budget:g} bits uniform: {row['uniform']['metrics']}")
            with_bc(row, "uniform", budget)
        for arm, make in problems.items():
            if not float(budget).is_integer() and arm not in cfg["fractional_arms"]:
                continue
            with timer("solve"):
                alloc, report = solve_arm(make(budget))
            with timer("evaluate"):
                ptq.apply({**pinned, **alloc})
                row[arm] = {"metrics": evaluate(), "solver": report, "bits": alloc,
                            "average_bits": report["average_bits"]}
            log(f"  {budget:g} bits {arm}: {row[arm]['metrics']} ({report['status']}, "
                f"gap {report['gap']:.1e})")
            with_bc(row, arm, budget)
        out[f"{budget:g}"] = row
    return out


def rounds(ptq: WeightPTQ, res: dict, pinned: dict, cfg: dict, key: str, fit_here,
           problem_at, evaluate, correct, timer: Timer, log) -> dict:
    """Re-estimation rounds of the primary arm at the budgets ``cfg["reest"][key]``.

    The last round's allocation is also evaluated with bias correction
    (``"metrics_bc"``) when the primary arm is in ``cfg["bc_arms"]``.
    """
    out = {}
    for budget in cfg["reest"].get(key, ()):
        start = res.get(f"{budget:g}", {}).get(PRIMARY)
        n = cfg["rounds"].get(key, 0)
        if not start or n < 1:
            continue
        with timer("re-estimation"):
            steps = reestimate(ptq, start["bits"], pinned, fit_here,
                               lambda trace, b=budget: problem_at(trace, b), evaluate, n, log)
        if PRIMARY in cfg["bc_arms"]:  # the last round's allocation is still applied
            with timer("bias correction"):
                correct()
            with timer("evaluate"):
                steps[-1]["metrics_bc"] = evaluate()
            log(f"  last round + BC: {steps[-1]['metrics_bc']}")
        out[f"{budget:g}"] = steps
    return out


def table_problems(tables: dict[str, np.ndarray], names, sizes) -> dict:
    def maker(table):
        return lambda budget: delta_problem(table, names, sizes, budget)
    return {arm: maker(t) for arm, t in tables.items()}


def delta_problem(table: np.ndarray, names, sizes, budget: float) -> ba.Problem:
    """The allocation problem of one error table under ``AverageBits(budget)``."""
    return ba.Problem(errors=table, sizes=sizes, bits=BITS, names=names,
                      constraints=[ba.AverageBits(budget)])
