"""The peers' own allocators on our instances: ``python -m benchmarks.solvers --peers``.

Each peer runs in its own venv (``make peer-venvs`` builds ``.venvs-peers/{modelopt,mct,
autoround}``) as a subprocess, :mod:`benchmarks.peers_worker`, with the instance passed
as a JSON file; PuLP/CBC and HiGHS (``scipy.optimize.milp``) run the same way from our
own interpreter. A worker imports once and then solves its instances one by one; a run
that does not finish within the per-run timeout is killed (its process group, CBC
included) and the worker restarts on the remaining instances.

Every answer is graded here, by bitalloc's own arithmetic: the objective against the
proven optimum (``method="exact"``, status ``"optimal"``), each budget's usage against
its limit, and a flag ``FALSE-OPTIMAL`` where a solver claims a proven optimum (PuLP's
``"Optimal"``, HiGHS status 0) for an answer above the proven optimum. Seconds are the
worker's build + solve time (imports excluded). Writes ``peers.md``, ``peers.json`` and
``peers.png`` in the output folder.

Instances: the synthetic ``layers`` family (one average-bits budget; average bits and
BOPs at 30 % of their range, where the second budget binds; three budgets) and the
shipped real instances (``examples/*.json``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bitalloc as ba
from bitalloc.io import load_problem

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venvs-peers"
WORKER = Path(__file__).resolve().parent / "peers_worker.py"
#: solver -> venv under .venvs-peers (None: this interpreter)
PEERS = {"modelopt_lps": "modelopt", "mct_ilp": "mct", "autoround_dp": "autoround",
         "pulp_cbc": None, "highs": None, "highs_default": None}
#: largest merged-group count a solver is given (AutoRound's DP: small sizes and one
#: budget only)
CAPS = {"autoround_dp": 60}
TIMEOUT = 120.0
#: per-run timeouts above the default: MCT's own CBC limit is 60 s, and building its
#: PuLP model takes as long again at 5000 groups, so it gets room to reach its claim
TIMEOUTS = {"mct_ilp": 300.0}
REL_TOL = 1e-9


def python_for(solver: str) -> Path | None:
    """The interpreter that runs ``solver``, or None when its venv is not built."""
    venv = PEERS[solver]
    if venv is None:
        return Path(sys.executable)
    py = VENVS / venv / "bin" / "python"
    return py if py.exists() else None


def instance(problem: ba.Problem) -> tuple[dict, list[np.ndarray]]:
    """The compiled MCKP as the worker reads it, and each group's allowed candidates."""
    cp = problem.compiled()
    idx = [np.flatnonzero(cp.allowed[i]) for i in range(cp.n)]
    # back to the problem's own units (the core divides by powers of two: exact), as the
    # peers' tools would be given them; their tolerances are absolute
    scales = np.ones(len(cp.costs)) if cp.scales is None else np.asarray(cp.scales, float)
    costs = [np.asarray(c, dtype=float) * sc for c, sc in zip(cp.costs, scales)]
    errors = np.asarray(cp.errors, dtype=float) * float(cp.e_scale)
    ints = getattr(cp, "int_scales", ()) or [None] * len(costs)
    inst = {"errors": [errors[i, k].tolist() for i, k in enumerate(idx)],
            "costs": [[c[i, k].tolist() for i, k in enumerate(idx)] for c in costs],
            "limits": [float(x) * sc for x, sc in zip(cp.limits, scales)],
            "names": list(cp.constraint_names),
            # per budget, the factor that makes its costs integral (size x bits for the
            # bit budgets) or None: AutoRound's DP counts integer bits
            "int_scale": [None if f is None else float(f) / sc for f, sc in zip(ints, scales)]}
    return inst, idx


def cases(quick: bool = False) -> list[tuple[str, str, int, ba.Problem]]:
    """``(case, constraints, n, problem)`` for the peers run."""
    from .solvers import EXAMPLES, P1_BITS, WIDE_BITS, layers

    fam = {"avg": [10, 30, 100, 1000] if quick else [10, 30, 100, 1000, 5000],
           "avg+bops30": [10, 100] if quick else [10, 30, 100, 1000, 2000],
           "avg+bops+mem": [] if quick else [1000]}
    out = []
    for kinds, sizes in fam.items():
        for n in sizes:
            ks = tuple(kinds.split("+"))
            out.append(("layers", kinds, n,
                        layers(n, 0, bits=WIDE_BITS if "mem" in ks else P1_BITS, kinds=ks)))
    for f in sorted(EXAMPLES.glob("*.json")):
        p = load_problem(str(f))
        out.append((f"file:{f.stem}", "+".join(c.name for c in p.constraints), p.n_groups, p))
    return out


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker's own group: CBC dies with it
    except ProcessLookupError:
        pass
    proc.wait()


def run_worker(solver: str, files: list[str], timeout: float, startup: float = 120.0,
               python: Path | None = None) -> dict[str, dict]:
    """Results by instance file; a run past ``timeout`` is killed and marked ``timeout``."""
    python = python or python_for(solver)
    results: dict[str, dict] = {}
    todo = list(files)
    while todo:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.jsonl"
            cmd = [str(python), str(WORKER), solver, str(out), "--time-limit",
                   str(max(timeout - 10, 1)), *todo]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    start_new_session=True, text=True)
            seen, deadline, ready = 0, time.monotonic() + startup, False
            while True:
                time.sleep(0.05)
                lines = out.read_text().splitlines() if out.exists() else []
                lines = [json.loads(x) for x in lines if x.endswith("}")]
                if lines and not ready:
                    ready, deadline = True, time.monotonic() + timeout
                done = [x for x in lines if "instance" in x]
                if len(done) > seen:
                    seen, deadline = len(done), time.monotonic() + timeout
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
            timed_out = proc.poll() is None
            if timed_out:
                _kill(proc)
            err = proc.stderr.read() if proc.stderr else ""
            for x in done:
                results[x["instance"]] = x
            todo = todo[len(done):]
            if todo:  # the current one hung, or the worker died: record and go on
                what = "timeout" if timed_out and ready else (
                    "startup timeout" if timed_out else f"worker died: {err.strip()[-200:]}")
                stuck = todo if not ready else todo[:1]  # no start: none of them runs
                for f in stuck:
                    results[f] = {"instance": f, "solver": solver, "choice": None,
                                  "status": what, "claims_optimal": False,
                                  "seconds": timeout if timed_out and ready else float("nan")}
                todo = todo[len(stuck):]
    return results


def grade(problem: ba.Problem, idx: list[np.ndarray], res: dict, optimum: float) -> dict:
    """Objective, gap to the proven optimum, budget violations and the false-optimal flag."""
    row = {"solver": res["solver"], "status": res["status"], "seconds": res["seconds"],
           "claims_optimal": res["claims_optimal"], "objective": None, "excess": None,
           "violations": None, "flag": ""}
    if res["choice"] is None:
        row["flag"] = "n/a" if res["status"].startswith("n/a") else "no answer"
        return row
    cp = problem.compiled()
    k = np.array([idx[i][p] for i, p in enumerate(res["choice"])])
    bits = cp.expand(k)
    obj = problem.objective(bits)
    over = []
    for c in problem.constraints:
        v = c.value(problem, bits)
        if v > c.limit * (1 + REL_TOL) + 1e-9:
            over.append(f"{c.name} +{(v - c.limit) / abs(c.limit):.1e}")
    excess = (obj - optimum) / max(abs(optimum), 1e-300)
    row.update(objective=obj, excess=excess, violations=over)
    flags = []
    if over:
        flags.append("OVER BUDGET")
    if res["claims_optimal"] and excess > REL_TOL and not over:
        flags.append("FALSE-OPTIMAL")
    row["flag"] = ", ".join(flags)
    return row


def _timed(fn, reps: int = 3):
    """Result and median seconds over ``reps`` calls (ours are fast; the peers run once)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, sorted(times)[len(times) // 2]


def run(quick: bool = False, timeout: float = TIMEOUT, solvers: list[str] | None = None,
        sizes_cap: int | None = None, progress=print) -> dict:
    """Every available peer on every case; returns rows and what was skipped."""
    solvers = solvers or list(PEERS)
    missing = [s for s in solvers if python_for(s) is None]
    solvers = [s for s in solvers if s not in missing]
    rows, meta = [], {"missing": {s: str(VENVS / PEERS[s]) for s in missing},
                      "timeout": timeout}
    ba.solve(cases(True)[0][3], method="exact")  # warm-up: imports, first CP-SAT call
    with tempfile.TemporaryDirectory() as tmp:
        insts = []
        for j, (case, kinds, n, problem) in enumerate(cases(quick)):
            if sizes_cap and n > sizes_cap:
                continue
            inst, idx = instance(problem)
            path = str(Path(tmp) / f"inst{j}.json")
            Path(path).write_text(json.dumps(inst), encoding="utf-8")
            ref, ours = _timed(lambda p=problem: ba.solve(p, method="exact"))
            auto, auto_s = _timed(lambda p=problem: ba.solve(p))
            insts.append({"problem": problem, "idx": idx, "path": path, "ref": ref,
                          "ours": ours, "auto": auto, "auto_s": auto_s,
                          "base": {"case": case, "constraints": kinds, "n": n,
                                   "optimum": ref.objective, "optimum_status": ref.status}})
            progress(f"instance {case} {kinds} N={n}: optimum {ref.objective:.10g} "
                     f"({ref.status}, {ours:.2f} s)")
        for solver in solvers:
            files = [x["path"] for x in insts if x["base"]["n"] <= CAPS.get(solver, 10**9)
                     and (solver != "autoround_dp" or len(x["problem"].constraints) == 1)]
            t0 = time.perf_counter()
            limit = max(timeout, TIMEOUTS.get(solver, 0.0))
            res = run_worker(solver, files, limit) if files else {}
            progress(f"{solver}: {len(files)} instances in {time.perf_counter() - t0:.0f} s")
            for x in insts:
                if x["path"] in res:
                    rows.append(dict(x["base"], **grade(x["problem"], x["idx"], res[x["path"]],
                                                        x["ref"].objective)))
        for x in insts:
            ref = x["ref"]
            for name, r, sec in (("bitalloc exact", ref, x["ours"]),
                                 ("bitalloc auto", x["auto"], x["auto_s"])):
                ex = (r.objective - ref.objective) / max(abs(ref.objective), 1e-300)
                rows.append(dict(x["base"], solver=name, status=f"{r.status}({r.method})",
                                 seconds=sec, claims_optimal=r.status == "optimal",
                                 objective=r.objective, excess=ex, violations=[], flag=""))
    order = {s: i for i, s in enumerate(["bitalloc auto", "bitalloc exact", *PEERS])}
    rows.sort(key=lambda r: (r["case"] != "layers", r["constraints"], r["n"],
                             order[r["solver"]]))
    return {"rows": rows, "meta": meta}


def _f(x, spec):
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return format(x, spec)


def markdown(res: dict, machine: str, seconds: float) -> str:
    """The committed results table."""
    m = res["meta"]
    out = ["# Peers' own allocators on bitalloc's instances", "",
           f"Machine: {machine}, measured under load (2 cores shared with other jobs); "
           f"{seconds:.0f} s in all; per-run timeout {m['timeout']:.0f} s (MCT "
           f"{max(m['timeout'], TIMEOUTS['mct_ilp']):.0f} s). Each peer in its "
           "own venv as a subprocess (`benchmarks/peers_worker.py`); seconds = build + solve "
           "inside the worker, imports excluded, one run each (bitalloc's: median of 3). "
           "`excess` = (objective - proven optimum) / optimum, the optimum from "
           "`method=\"exact\"`. **FALSE-OPTIMAL**: the solver "
           "claims a proven optimum for a worse answer. OVER BUDGET: a budget exceeded "
           f"(relative {REL_TOL:g}).", ""]
    if m["missing"]:
        out += ["Not run (venv absent): " + ", ".join(f"{s} ({p})" for s, p in
                                                      m["missing"].items()), ""]
    out += ["| case | constraints | N | solver | status | claims optimal | objective | "
            "excess | seconds | flag |", "|" + "---|" * 10]
    for r in res["rows"]:
        viol = "; ".join(r["violations"] or [])
        flag = ", ".join(x for x in (r["flag"], viol) if x)
        out.append(f"| {r['case']} | {r['constraints']} | {r['n']} | {r['solver']} | "
                   f"{r['status']} | {'yes' if r['claims_optimal'] else 'no'} | "
                   f"{_f(r['objective'], '.10g')} | {_f(r['excess'], '.1e')} | "
                   f"{_f(r['seconds'], '.3f')} | {flag} |")
    flagged = [r for r in res["rows"] if "FALSE-OPTIMAL" in r["flag"]]
    out += ["", f"False-optimal claims: {len(flagged)}"
            + (": " + "; ".join(f"{r['solver']} on {r['case']} {r['constraints']} N={r['n']} "
                                f"(+{r['excess']:.1e})" for r in flagged) if flagged else ""),
            "", "Reproduce: `make bench-peers` (builds the peer venvs, then "
            "`python -m benchmarks.solvers --peers`).", ""]
    return "\n".join(out)


def plot(res: dict, path: Path) -> None:
    """Seconds against N per synthetic family, one line per solver (timeouts at the top)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["constraints"] for r in res["rows"] if r["case"] == "layers"}, key=len)
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for s in ["bitalloc auto", "bitalloc exact", *PEERS]:
            pts = sorted((r["n"], r["seconds"]) for r in res["rows"] if r["case"] == "layers"
                         and r["constraints"] == kind and r["solver"] == s
                         and r["objective"] is not None)
            if pts:
                ax.loglog(*zip(*pts), "o-", ms=3, label=s)
            bad = [r["n"] for r in res["rows"] if r["case"] == "layers" and r["solver"] == s
                   and r["constraints"] == kind and r["objective"] is None]
            if bad:
                ax.plot(bad, [res["meta"]["timeout"]] * len(bad), "x", color="k")
        ax.set_title(f"layers, {kind} (x: no answer)")
        ax.set_xlabel("groups N")
        ax.set_ylabel("seconds")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(out: Path, quick: bool = False, timeout: float = TIMEOUT,
         solvers: list[str] | None = None, sizes_cap: int | None = None) -> int:
    """Run, write ``peers.md``, ``peers.json`` and ``peers.png`` to ``out``."""
    import platform

    t0 = time.perf_counter()
    res = run(quick, timeout, solvers, sizes_cap)
    seconds = time.perf_counter() - t0
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "peers.md").write_text(markdown(res, machine, seconds), encoding="utf-8")
    clean = json.loads(json.dumps(res, default=float).replace("NaN", "null"))
    (out / "peers.json").write_text(json.dumps(clean, indent=1), encoding="utf-8")
    try:
        plot(res, out / "peers.png")
    except ImportError:  # pragma: no cover - matplotlib is in the bench extra
        pass
    print(f"wrote {out / 'peers.md'}, peers.json, peers.png")
    return 0
