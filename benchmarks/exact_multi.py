"""Exact proofs with several binding budgets at 2x10^4 and 10^5 groups (issue 12 item 4).

Run ``nice -n 10 python -m benchmarks.exact_multi`` (a few minutes); writes
``benchmarks/results/exact_multi.md`` unless ``--out`` says elsewhere.

Instances: the synthetic ``layers`` family (Fisher trace ``lognormal(0, 1.5)``, size
uniform in ``[1e3, 2e5]``, MACs ``size * uniform{10..2999}``, errors
``trace * size * 4**-b``), bits 2..8 (7 options). Budgets, every one binding:

* ``avg``: average 4 bits over every group;
* ``bops``: at 30 % of the way from its minimum (all 2-bit weights) to its
  maximum (all 8-bit), with 8-bit activations;
* ``mem``: memory of the first half of the groups at 3.8 bits a weight (a scoped
  budget, so it is not a multiple of ``avg``).

``--family layers``: the test family of ``tests/strategies.layer_problem`` (same
traces, sizes and MACs drawn in another order; BOPs at a MAC-weighted 4 bits, memory at
4.2 bits over every group, which does not bind beside average 4 bits), bits 2..8.

For ``exact`` and ``auto`` (default time limits): median seconds over the seeds,
statuses, worst gap, and the core left by reduced-cost fixing against the
Lagrangian answer (groups / options), measured outside the timed solve.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import bitalloc as ba
from bitalloc.solvers.exact import reduced_options
from bitalloc.solvers.lagrangian import lagrangian

RESULTS = Path(__file__).resolve().parent / "results"
BITS = (2, 3, 4, 5, 6, 7, 8)
METHODS = ("exact", "auto")


def instance(n: int, seed: int, kinds=("avg", "bops")) -> ba.Problem:
    """One instance of the family (module docstring)."""
    rng = np.random.default_rng(seed)
    trace = rng.lognormal(0.0, 1.5, n)
    sizes = np.rint(rng.uniform(1e3, 2e5, n))
    macs = sizes * rng.integers(10, 3000, n)
    lo, hi = 2 * 8 * macs.sum(), 8 * 8 * macs.sum()
    half = list(range(n // 2))
    budgets = {"avg": ba.AverageBits(4.0),
               "bops": ba.BOPsBudget(float(lo + 0.3 * (hi - lo))),
               "mem": ba.MemoryBudget(float(3.8 * sizes[: n // 2].sum() / 8), groups=half)}
    return ba.Problem.from_sensitivities(trace * sizes, sizes, bits=BITS, noise="exp", macs=macs,
                                         constraints=[budgets[k] for k in kinds])


def layers_instance(n: int, seed: int, kinds=("avg", "bops")) -> ba.Problem:
    """One instance of the test family (``tests/strategies.layer_problem``, bits 2..8)."""
    rng = np.random.default_rng(seed)
    sizes = np.rint(rng.uniform(1e3, 2e5, n))
    macs = sizes * rng.integers(10, 3000, n)
    trace = rng.lognormal(0.0, 1.5, n)
    cons = {"avg": ba.AverageBits(4.0), "bops": ba.BOPsBudget(float(4.0 * 8 * macs.sum())),
            "mem": ba.MemoryBudget(float(4.2 * sizes.sum() / 8))}
    return ba.Problem.from_sensitivities(trace * sizes, sizes, bits=BITS, noise="exp", macs=macs,
                                         constraints=[cons[k] for k in kinds])


FAMILIES = {"multi": instance, "layers": layers_instance}


def run(sizes, seeds, kinds_list, methods, time_limit, family="multi"):
    rows = []
    for n in sizes:
        for kinds in kinds_list:
            for seed in seeds:
                p = FAMILIES[family](n, seed, kinds)
                cp = p.compiled()
                core = reduced_options(cp, lagrangian(cp))
                for m in methods:
                    t = time.perf_counter()
                    r = ba.solve(p, method=m, time_limit=time_limit)
                    rows.append({"n": n, "kinds": "+".join(kinds), "seed": seed, "method": m,
                                 "family": family,
                                 "seconds": time.perf_counter() - t, "status": r.status,
                                 "via": r.method, "gap": r.gap, "objective": r.objective,
                                 "binding": all(v >= 0.999 * mx for v, mx in r.usage.values()),
                                 "core_groups": core.groups, "core_options": core.options})
                    print(rows[-1], flush=True)
    return rows


def markdown(rows, meta) -> str:
    out = ["# Exact with several binding budgets (issue 12 item 4)", "",
           f"{meta}", "",
           "| groups | budgets | method | median s | max s | statuses (via) | median gap "
           "| worst gap | all binding | core groups / options (median) |",
           "|---:|---|---|---:|---:|---|---:|---:|---|---|"]
    keys = sorted({(r["n"], r["kinds"], r["method"]) for r in rows},
                  key=lambda k: (k[0], len(k[1]), k[2] != "exact"))
    for n, kinds, m in keys:
        rs = [r for r in rows if (r["n"], r["kinds"], r["method"]) == (n, kinds, m)]
        secs = [r["seconds"] for r in rs]
        st = ", ".join(f"{r['status']} ({r['via']})" for r in rs)
        cg = int(statistics.median(r["core_groups"] for r in rs))
        co = int(statistics.median(r["core_options"] for r in rs))
        out.append(f"| {n} | {kinds} | {m} | {statistics.median(secs):.2f} | {max(secs):.2f} "
                   f"| {st} | {statistics.median(r['gap'] for r in rs):.1e} "
                   f"| {max(r['gap'] for r in rs):.1e} "
                   f"| {all(r['binding'] for r in rs)} | {cg} / {co} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--family", choices=sorted(FAMILIES), default="multi")
    ap.add_argument("--label", default="")
    ap.add_argument("--append", action="store_true", help="append to --out instead of replacing")
    ap.add_argument("--out", type=Path, default=RESULTS / "exact_multi.md")
    a = ap.parse_args(argv)
    load0 = os.getloadavg()
    rows = run([int(s) for s in a.sizes.split(",")], [int(s) for s in a.seeds.split(",")],
               [("avg", "bops"), ("avg", "bops", "mem")], a.methods.split(","), a.time_limit,
               a.family)
    load1 = os.getloadavg()
    meta = (f"{a.label}{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average (1 min) {load0[0]:.1f} at start, {load1[0]:.1f} at end; "
            f"time limit {a.time_limit or 'default'}; family {a.family}; {len(rows)} solves.")
    text = markdown(rows, meta)
    if a.out.exists() and a.append:
        text = a.out.read_text() + "\n" + text
    a.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
