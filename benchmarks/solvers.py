"""Solver benchmark: every method against the PuLP/CBC baseline other tools use.

Run ``python -m benchmarks.solvers`` (about 12 minutes) or ``--quick`` (under 2).
``--peers`` runs the peers' own allocators instead (ModelOpt, MCT, AutoRound, PuLP/CBC,
HiGHS, each in its own venv: :mod:`benchmarks.peers`, ``make bench-peers``; about 15
minutes), writing ``peers.md``, ``peers.json`` and ``peers.png``.
Writes ``benchmarks/results/solvers.md``, ``solvers.json`` and ``solvers.png``
(log-log seconds against groups) unless ``--out`` says elsewhere.

Instances:

* ``layers``: synthetic per-layer data: Fisher trace ``lognormal(0, 1.5)``, size an
  integer uniform in ``[1e3, 2e5]``, MACs ``size * uniform{10..2999}``, errors
  ``trace * size * 4**-b``. Budgets: average 4 bits; BOPs at a MAC-weighted 4 bits
  of weights x 8-bit activations; memory at 4.2 bits a weight; ``bops30``: BOPs at 30 %
  of the way from their minimum to their maximum (with ``avg``, the second budget binds).
* ``file``: problems exported from real models (``examples/*.json``).

Baselines, built the way NVIDIA ModelOpt, Sony MCT and HAWQ build theirs (binary
one-hot variables, one equality per layer, one row per budget): PuLP + CBC, and
cvxpy's MILP through HiGHS. Times include model building, as in those tools. Their
status is the solver's own claim (HiGHS stops at its default relative MIP gap, so
"says optimal" can be slightly above the optimum); they return no bound. Each
time is the median of several runs (fewer for slow ones); peak memory is traced in
one extra run (Python and numpy allocations; CBC's own process is not included).

Targets (issues 5 and 12) are checked in the same run and reported at the end of the
table. ``--p2-only`` reruns just the P2 measurement (the first solve at 10^6 groups:
construction + solve from raw arrays against one ``errors.min(axis=1)`` pass, and peak
memory) and updates its line in an existing ``solvers.md``/``solvers.json``, keeping
the rest of the table and saying in the file which part was rerun and when.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

import bitalloc as ba
from bitalloc.compiled import compile_problem
from bitalloc.io import load_problem

RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
P1_BITS = (2, 3, 4, 6, 8)
WIDE_BITS = (2, 3, 4, 5, 6, 7, 8)
OURS = ("lagrangian", "auto", "exact", "ilp", "greedy", "fractional")
BASELINES = ("pulp_cbc", "cvxpy_highs")
#: largest merged-group count each method is run at, by number of constraints (1, 2+)
CAPS = {"lagrangian": (10**7, 10**7), "auto": (10**7, 10**7), "exact": (10**5, 10**4),
        "ilp": (5000, 1000), "greedy": (10**5, 10**5), "fractional": (10**4, 10**4),
        "pulp_cbc": (5000, 5000), "cvxpy_highs": (5000, 1000)}
#: the same in ``--quick`` mode (CBC keeps P1; the slow exact models stay small)
CAPS_QUICK = dict(CAPS, ilp=(1000, 100), cvxpy_highs=(1000, 100), pulp_cbc=(5000, 1000),
                  greedy=(5000, 1000), fractional=(1000, 1000))
TIME_LIMIT = 120.0


def layers(n: int, seed: int = 0, bits=P1_BITS, kinds=("avg",)) -> ba.Problem:
    """The synthetic ``layers`` family (module docstring)."""
    rng = np.random.default_rng(seed)
    trace = rng.lognormal(0.0, 1.5, n)
    sizes = np.rint(rng.uniform(1e3, 2e5, n))
    macs = sizes * rng.integers(10, 3000, n)
    lo, hi = min(bits) * 8 * macs.sum(), max(bits) * 8 * macs.sum()
    budgets = {"avg": ba.AverageBits(4.0), "bops": ba.BOPsBudget(float(4.0 * 8 * macs.sum())),
               "mem": ba.MemoryBudget(float(4.2 * sizes.sum() / 8)),
               "bops30": ba.BOPsBudget(float(lo + 0.3 * (hi - lo)))}
    return ba.Problem.from_sensitivities(trace * sizes, sizes, bits=bits, noise="exp", macs=macs,
                                         constraints=[budgets[k] for k in kinds])


def pulp_cbc(problem: ba.Problem, time_limit: float):
    """ModelOpt/MCT/HAWQ-style binary one-hot MCKP in PuLP, solved by CBC."""
    with warnings.catch_warnings():  # PuLP 3 deprecates the 2.x API those tools use
        warnings.simplefilter("ignore", DeprecationWarning)
        return _pulp_cbc(problem, time_limit)


def _pulp_cbc(problem: ba.Problem, time_limit: float):
    import pulp

    cp = problem.compiled()
    m, k = cp.errors.shape
    model = pulp.LpProblem("mixed_precision", pulp.LpMinimize)
    x = [[pulp.LpVariable(f"x_{i}_{j}", cat="Binary") if cp.allowed[i, j] else None
          for j in range(k)] for i in range(m)]
    model += pulp.lpSum(float(cp.errors[i, j]) * x[i][j] for i in range(m) for j in range(k)
                        if x[i][j] is not None)
    for i in range(m):
        model += pulp.lpSum(v for v in x[i] if v is not None) == 1
    for cost, lim in zip(cp.costs, cp.limits):
        model += pulp.lpSum(float(cost[i, j]) * x[i][j] for i in range(m) for j in range(k)
                            if x[i][j] is not None) <= float(lim)
    status = model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
    choice = np.array([max((j for j in range(k) if x[i][j] is not None),
                           key=lambda j: x[i][j].value() or 0.0) for i in range(m)])
    return cp.expand(choice), pulp.LpStatus[status] == "Optimal"


def cvxpy_highs(problem: ba.Problem, time_limit: float):
    """The same one-hot MILP through cvxpy, solved by HiGHS."""
    import cvxpy

    cp = problem.compiled()
    x = cvxpy.Variable(cp.errors.shape, boolean=True)
    err = np.where(cp.allowed, cp.errors, 0.0)
    cons = [cvxpy.sum(x, axis=1) == 1, x[~cp.allowed] == 0] if not cp.allowed.all() else \
        [cvxpy.sum(x, axis=1) == 1]
    cons += [cvxpy.sum(cvxpy.multiply(c, x)) <= lim for c, lim in zip(cp.costs, cp.limits)]
    prob = cvxpy.Problem(cvxpy.Minimize(cvxpy.sum(cvxpy.multiply(err, x))), cons)
    prob.solve(solver=cvxpy.HIGHS, time_limit=time_limit)
    choice = np.argmax(np.asarray(x.value), axis=1)
    return cp.expand(choice), prob.status == "optimal"


def feasible(problem: ba.Problem, bits) -> bool:
    """Independent check: allowed bits and every budget (up to summation rounding)."""
    k = problem.bit_index(bits)
    if not problem.allowed[np.arange(problem.n_groups), k].all():
        return False
    return all(c.value(problem, bits) <= c.limit + 1e-12 * max(
        abs(c.limit), float(np.abs(c.cost_table(problem)).max(axis=1).sum()))
        for c in problem.constraints)


def _once(problem: ba.Problem, method: str, time_limit: float):
    t0 = time.perf_counter()
    if method in BASELINES:  # no certificate comes back: no bound, the solver's own word
        bits, proven = globals()[method](problem, time_limit)
        sec = time.perf_counter() - t0
        said = "says optimal" if proven else "not optimal"
        return sec, problem.objective(bits), float("nan"), bits, said
    r = ba.solve(problem, method=method, time_limit=time_limit)
    return time.perf_counter() - t0, r.objective, r.bound, r.bits, f"{r.status}({r.method})"


def run_method(problem: ba.Problem, method: str, reps: int, time_limit: float,
               trace_below: float = 10.0) -> dict:
    """Median seconds over up to ``reps`` runs, plus one traced run for peak memory.

    The traced run happens only when a run takes under ``trace_below`` seconds and
    never for the baselines (their solvers run in their own processes or C code).
    """
    times, res = [], None
    for i in range(reps):
        sec, obj, bound, bits, status = _once(problem, method, time_limit)
        times.append(sec)
        res = (obj, bound, bits, status)
        if sum(times) > 20 or (i == 0 and sec > 5):  # slow: fewer repeats
            break
    peak = float("nan")
    if statistics.median(times) < trace_below and method not in BASELINES:
        tracemalloc.start()
        _once(problem, method, time_limit)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    obj, bound, bits, status = res
    gap = (obj - bound) / max(abs(obj), 1e-300) if np.isfinite(bound) else float("nan")
    return {"method": method, "objective": obj, "bound": bound, "gap": gap,
            "seconds": statistics.median(times), "runs": len(times), "peak_mib": peak,
            "feasible": feasible(problem, bits), "status": status}


def cases(quick: bool, sizes: list[int] | None) -> list[tuple[str, str, int, ba.Problem | None]]:
    """``(case, constraints, n, problem or None to build lazily)``."""
    a = sizes or ([10, 100, 1000, 5000] if quick else [10, 100, 1000, 5000, 10**4, 10**5, 10**6])
    b = sizes or ([100, 1000] if quick else [100, 1000, 5000, 10**4, 10**5])
    c = sizes or ([1000, 10**4] if quick else [1000, 10**4, 10**5])
    out = [("layers", "avg", n, None) for n in a]
    out += [("layers", "avg+bops", n, None) for n in b]
    out += [("layers", "avg+bops+mem", n, None) for n in c]
    if not sizes:
        for f in sorted(EXAMPLES.glob("*.json")):
            p = load_problem(str(f))
            out.append((f"file:{f.stem}", "+".join(x.name for x in p.constraints), p.n_groups, p))
    return out


def build(case: str, kinds: str, n: int, problem):
    if problem is not None:
        return problem
    short = {"average_bits": "avg", "bops": "bops", "memory": "mem"}
    ks = tuple(short.get(k, k) for k in kinds.split("+"))
    return layers(n, 0, bits=WIDE_BITS if "mem" in ks else P1_BITS, kinds=ks)


def _median_time(fn, reps: int = 5) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _p2_inputs(n: int):
    """The P2 instance as raw arrays: a float64 ``(n, 7)`` C-ordered error table and sizes."""
    p = layers(n, 0, bits=WIDE_BITS)
    return np.ascontiguousarray(p.errors, dtype=np.float64).copy(), p.sizes.copy()


def _p2_cold(errors, sizes, method: str | None, reps: int) -> dict:
    """Construction alone and construction + first solve from raw arrays, each run as a
    ratio to the mean of the ``errors.min(axis=1)`` passes timed just before and after
    it (ratios taken run by run, then the median: robust to a shared machine's load)."""
    build_r, total_r, passes, res = [], [], [], None
    kw = {} if method is None else {"method": method}
    for _ in range(reps):
        t0 = time.perf_counter()
        errors.min(axis=1)
        t1 = time.perf_counter()
        p = ba.Problem(errors=errors, sizes=sizes, bits=WIDE_BITS,
                       constraints=[ba.AverageBits(4.0)])
        t2 = time.perf_counter()
        res = ba.solve(p, **kw)
        t3 = time.perf_counter()
        errors.min(axis=1)
        t4 = time.perf_counter()
        mp = 0.5 * ((t1 - t0) + (t4 - t3))
        passes.append(mp)
        build_r.append((t2 - t1) / mp)
        total_r.append((t3 - t1) / mp)
        del p
    return {"min_pass_s": statistics.median(passes), "construct_ratio": statistics.median(build_r),
            "cold_ratio": statistics.median(total_r), "gap": res.gap, "status": res.status,
            "method_used": res.method, "runs": reps}


def _p2_peak(errors, sizes, method: str | None) -> float:
    """Peak traced memory of construction + first solve over ``errors.nbytes``."""
    kw = {} if method is None else {"method": method}
    tracemalloc.start()
    try:
        p = ba.Problem(errors=errors, sizes=sizes, bits=WIDE_BITS,
                       constraints=[ba.AverageBits(4.0)])
        ba.solve(p, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / errors.nbytes


def p2_measurement(n: int, reps: int) -> dict:
    """P2 (issue 12): the first solve at ``n`` groups from raw arrays.

    A float64 ``(n, 7)`` error table already in memory, sizes and one ``AverageBits``:
    ``Problem(...)`` alone and ``Problem(...)`` + ``ba.solve`` (``lagrangian``; ``auto``,
    the default method, for information) as ratios to one ``errors.min(axis=1)`` pass,
    and the peak traced memory (numpy allocations included) of construction + solve over
    the table's size. Also the issue-5 figures: the solver alone on the compiled form
    and a repeated solve on a built problem.
    """
    from bitalloc.solvers import SOLVERS

    errors, sizes = _p2_inputs(n)
    out = {"n": n, "table_mib": errors.nbytes / 2**20}
    lag = _p2_cold(errors, sizes, "lagrangian", max(reps, 5))
    out.update({k: lag[k] for k in ("min_pass_s", "construct_ratio", "cold_ratio", "gap")})
    out["peak_ratio"] = _p2_peak(errors, sizes, "lagrangian")
    auto = _p2_cold(errors, sizes, None, min(reps, 3))
    out.update({"auto_cold_ratio": auto["cold_ratio"], "auto_status": auto["status"],
                "auto_method": auto["method_used"], "auto_gap": auto["gap"],
                "auto_peak_ratio": _p2_peak(errors, sizes, None)})
    p = ba.Problem(errors=errors, sizes=sizes, bits=WIDE_BITS, constraints=[ba.AverageBits(4.0)])
    cp = p.compiled()
    min_pass = _median_time(lambda: errors.min(axis=1), max(reps, 5))
    solver = _median_time(lambda: SOLVERS["lagrangian"](cp, None), reps)
    warm = _median_time(lambda: ba.solve(p, method="lagrangian"), reps)
    compile_s = _median_time(lambda: compile_problem(p), min(reps, 3))
    out.update({"solver_ratio": solver / min_pass, "solve_warm_ratio": warm / min_pass,
                "compile_ratio": compile_s / min_pass})
    return out


def targets(rows: list[dict], p2: dict | None) -> dict:
    """Issue-5 targets from this run's rows (ratios measured in the same process)."""
    def row(kinds, n, method):
        return next((r for r in rows if r["case"] == "layers" and r["constraints"] == kinds
                     and r["n"] == n and r["method"] == method), None)

    out = {}
    for key, kinds, factor in (("P1", "avg", 30), ("P1_bops", "avg+bops", 10)):
        cbc = row(kinds, 5000, "pulp_cbc")
        for m in ("auto", "exact"):
            r = row(kinds, 5000, m)
            if r is None or cbc is None:
                continue
            # an over-budget CBC answer (it uses its feasibility tolerance) is no yardstick
            cbc_ok = cbc.get("feasible", True)
            ok = (r["status"].startswith("optimal") and r["seconds"] * factor <= cbc["seconds"]
                  and (not cbc_ok or r["objective"] <= cbc["objective"] * (1 + 1e-12)))
            out[f"{key}:{m}"] = {"seconds": r["seconds"], "cbc_seconds": cbc["seconds"],
                                 "speedup": cbc["seconds"] / r["seconds"], "need": factor,
                                 "objective": r["objective"], "cbc_objective": cbc["objective"],
                                 "status": r["status"], "cbc_feasible": cbc_ok,
                                 "pass": bool(ok)}
    if p2:
        ok = (p2["gap"] <= 1e-6 and p2["construct_ratio"] <= 1.0 and p2["cold_ratio"] <= 5.0
              and p2["peak_ratio"] <= 3.0)
        out["P2"] = dict(p2, need="issue 12: gap <= 1e-6, construction <= 1 min-pass, "
                                  "construction + first lagrangian solve <= 5 min-passes, "
                                  "peak <= 3x the table", **{"pass": bool(ok)})
    for m in ("lagrangian", "auto"):
        r = row("avg+bops+mem", 10**4, m)
        if r:
            out[f"P3:{m}"] = {"seconds": r["seconds"], "gap": r["gap"],
                              "pass": bool(r["gap"] <= 1e-4 and r["seconds"] <= 2.0)}
    paper = row("avg", 1000, "fractional")
    if paper:
        out["paper_fractional_1000"] = {k: paper[k] for k in ("seconds", "gap", "objective")}
    return out


def _fmt(x, spec: str) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def markdown(rows: list[dict], tgt: dict, meta: dict) -> str:
    """The results table and the targets, as Markdown."""
    out = ["# Solver benchmark", "", f"Machine: {meta['machine']}; {meta['mode']} run, "
           f"{meta['seconds']:.0f} s in all. Seconds are medians over `runs`; peak memory is "
           "traced Python/numpy allocations. `—`: not measured or no bound.", "",
           "| case | constraints | N | method | status | objective | bound | gap | seconds | "
           "runs | peak MiB | feasible |", "|" + "---|" * 12]
    for r in rows:
        out.append(f"| {r['case']} | {r['constraints']} | {r['n']} | {r['method']} | "
                   f"{r['status']} | {_fmt(r['objective'], '.10g')} | {_fmt(r['bound'], '.10g')} "
                   f"| {_fmt(r['gap'], '.1e')} | {_fmt(r['seconds'], '.4f')} | {r['runs']} | "
                   f"{_fmt(r['peak_mib'], '.1f')} | {'yes' if r['feasible'] else 'NO'} |")
    if meta.get("p2_rerun"):
        out[2] += f" {meta['p2_rerun']}"
    out += ["", "## Targets (issues 5 and 12)", ""]
    for key, t in tgt.items():
        flag = {True: "PASS", False: "FAIL"}.get(t.get("pass"), "")
        body = ", ".join(f"{k}={_fmt(v, '.4g') if isinstance(v, float) else v}"
                         for k, v in t.items() if k != "pass")
        out.append(f"- **{key}** {flag}: {body}")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Log-log seconds against N, one panel per constraint set of the ``layers`` family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["constraints"] for r in rows if r["case"] == "layers"}, key=len)
    fig, axes = plt.subplots(1, max(len(kinds), 1), figsize=(5 * max(len(kinds), 1), 4),
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for m in OURS + BASELINES:
            pts = sorted((r["n"], r["seconds"]) for r in rows if r["case"] == "layers"
                         and r["constraints"] == kind and r["method"] == m)
            if pts:
                ax.loglog(*zip(*pts), "o-", ms=3, label=m)
        ax.set_title(f"layers, {kind}")
        ax.set_xlabel("groups N")
        ax.set_ylabel("seconds (median)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, numpy {np.__version__}")


def _p2_only(out: Path, reps: int, n: int = 10**6) -> int:
    """``--p2-only``: measure P2 alone and update it in the existing results."""
    import datetime

    path = out / "solvers.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    rows, tgt = old.get("rows", []), dict(old.get("targets", {}))
    meta = dict(old.get("meta", {"machine": _machine(), "mode": "none", "seconds": 0.0}))
    t0 = time.perf_counter()
    tgt["P2"] = targets([], p2_measurement(n, reps))["P2"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta["p2_rerun"] = (f"The P2 target was rerun alone (`--p2-only`, {reps} runs, "
                        f"{time.perf_counter() - t0:.0f} s) on {when} ({_machine()}); "
                        f"the rows and the other targets are from the {meta['mode']} run.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "solvers.md").write_text(markdown(rows, tgt, meta), encoding="utf-8")
    clean = json.loads(json.dumps({"meta": meta, "rows": rows, "targets": tgt},
                                  default=float).replace("NaN", "null"))
    path.write_text(json.dumps(clean, indent=1), encoding="utf-8")
    print(markdown([], {"P2": tgt["P2"]}, meta).split("## Targets")[1])
    return 0


def main(argv=None) -> int:
    """Command line entry (``python -m benchmarks.solvers --help``)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.solvers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    ap.add_argument("--out", default=str(RESULTS), help="output folder")
    ap.add_argument("--sizes", default=None, help="comma-separated N (overrides the families)")
    ap.add_argument("--methods", default=None, help="comma-separated methods and baselines")
    ap.add_argument("--reps", type=int, default=None, help="runs per timing (default 5, quick 3)")
    ap.add_argument("--no-targets", action="store_true", help="skip the P2 measurement")
    ap.add_argument("--p2-only", action="store_true",
                    help="rerun only the P2 measurement; update its line in the existing "
                         "solvers.md/json (the rows and other targets stay)")
    ap.add_argument("--p2-n", type=int, default=10**6, help="groups in the P2 measurement")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT, help="seconds per solve")
    ap.add_argument("--peers", action="store_true",
                    help="run the peers' own allocators instead (benchmarks/peers.py; "
                         "`make peer-venvs` first)")
    ap.add_argument("--peer-solvers", default=None, help="comma-separated, with --peers")
    args = ap.parse_args(argv)
    if args.peers:
        from . import peers

        return peers.main(Path(args.out), quick=args.quick,
                          solvers=args.peer_solvers.split(",") if args.peer_solvers else None)
    if args.p2_only:
        return _p2_only(Path(args.out), args.reps or 7, args.p2_n)
    t0 = time.perf_counter()
    sizes = [int(float(s)) for s in args.sizes.split(",")] if args.sizes else None
    methods = args.methods.split(",") if args.methods else list(OURS + BASELINES)
    avail = {"pulp_cbc": _have("pulp"), "cvxpy_highs": _have("cvxpy"),
             "fractional": _have("cvxpy"), "ilp": _have("ortools"), "exact": _have("ortools")}
    methods = [m for m in methods if avail.get(m, True)]
    reps = args.reps or (3 if args.quick else 5)
    jobs = []
    for case, kinds, n, prob in cases(args.quick, sizes):
        multi = kinds.count("+") > 0
        for m in methods:
            cap = (CAPS_QUICK if args.quick else CAPS).get(m, (10**7, 10**7))[1 if multi else 0]
            if n <= cap:
                jobs.append((case, kinds, n, prob, m))
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the bench extra
        def tqdm(x, **_):
            return x
    rows, built = [], {}
    bar = tqdm(jobs, desc="solvers", unit="run")
    for case, kinds, n, prob, m in bar:
        key = (case, kinds, n)
        if key not in built:
            built = {key: build(case, kinds, n, prob)}  # keep one instance in memory
            built[key].compiled()
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{kinds} N={n} {m}")
        r = run_method(built[key], m, reps, args.time_limit, 1.0 if args.quick else 10.0)
        rows.append({"case": case, "constraints": kinds, "n": n, **r})
    built.clear()
    p2 = None
    if not args.no_targets and "lagrangian" in methods:
        p2 = p2_measurement(args.p2_n, reps)
    tgt = targets(rows, p2)
    meta = {"machine": _machine(),
            "mode": "quick" if args.quick else "full", "seconds": time.perf_counter() - t0}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "solvers.md").write_text(markdown(rows, tgt, meta), encoding="utf-8")
    clean = json.loads(json.dumps({"meta": meta, "rows": rows, "targets": tgt},
                                  default=float).replace("NaN", "null"))
    (out / "solvers.json").write_text(json.dumps(clean, indent=1), encoding="utf-8")
    if _have("matplotlib"):
        plot(rows, out / "solvers.png")
    print(markdown([], tgt, meta).split("## Targets")[1] if tgt else "no targets measured")
    print(f"wrote {out / 'solvers.md'}, solvers.json, solvers.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
