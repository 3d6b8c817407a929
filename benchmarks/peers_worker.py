"""One peer allocator on one instance file, in whatever venv runs this script.

``python benchmarks/peers_worker.py SOLVER RESULTS.jsonl [--time-limit S] INSTANCE.json...``

Standalone on purpose: it imports only numpy, json and the peer's own package, so it
runs from each peer's venv (``.venvs-peers/<peer>``, see ``make peer-venvs``) without
bitalloc. The instance (written by :mod:`benchmarks.peers`) is the compiled MCKP: per
group the allowed candidates, their errors and, per budget, their costs and the limit.
The result holds, per group, the chosen candidate's position in the group's *allowed*
list, the solver's own status word, whether the solver claims a proven optimum, and the
seconds spent building and solving (imports excluded).

Solvers (each called the way its tool calls it):

- ``modelopt_lps``: NVIDIA ModelOpt ``modelopt.torch.opt.searcher.LPS`` (PuLP + CBC, as
  shipped: no time limit of its own).
- ``mct_ilp``: Sony MCT ``MixedPrecisionIntegerLPSolver`` (PuLP + CBC with MCT's own
  60 s limit); budgets go to the resource targets WEIGHTS, BOPS, ACTIVATION, TOTAL in
  order (each is one linear row ``<= limit``, as MCT builds it).
- ``autoround_dp``: AutoRound's exact dynamic program
  ``auto_round.auto_scheme.delta_loss.choose_bits_per_layer_with_path`` (one integer
  budget only, made integral by the instance's ``int_scale``: size x bits for an
  average-bits budget; ``max_states=None``, i.e. exact).
- ``pulp_cbc``: the one-hot model in PuLP, CBC with ``gapRel=0``.
- ``highs``: ``scipy.optimize.milp`` (HiGHS) with ``mip_rel_gap=0``: a proven optimum.
- ``highs_default``: the same with HiGHS' default options (relative MIP gap 1e-4).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        inst = json.load(f)
    inst["errors"] = [np.asarray(e, dtype=float) for e in inst["errors"]]
    inst["costs"] = [[np.asarray(c, dtype=float) for c in per] for per in inst["costs"]]
    return inst


def modelopt_lps(inst: dict, time_limit: float):
    from modelopt.torch.opt.searcher import LPS

    names = [f"b{j}" for j in range(len(inst["limits"]))]
    lps = LPS(name="bitalloc", constraints=dict(zip(names, inst["limits"])),
              constraints_to_candidate_costs={n: [c.tolist() for c in inst["costs"][j]]
                                              for j, n in enumerate(names)},
              candidate_scores=[e.tolist() for e in inst["errors"]], objective_type="minimize")
    choice, status = lps()
    return [int(c) for c in choice], status, status == "Optimal"


def mct_ilp(inst: dict, time_limit: float):
    from model_compression_toolkit.core.common.mixed_precision.resource_utilization_tools.\
        resource_utilization import RUTarget
    from model_compression_toolkit.core.common.mixed_precision.search_methods.\
        linear_programming import MixedPrecisionIntegerLPSolver

    targets = [RUTarget.WEIGHTS, RUTarget.BOPS, RUTarget.ACTIVATION, RUTarget.TOTAL]
    if len(inst["limits"]) > len(targets):
        raise ValueError("mct_ilp: more budgets than MCT resource targets")
    sens = {i: e.tolist() for i, e in enumerate(inst["errors"])}
    ru = {t: np.concatenate(inst["costs"][j])[:, None] for j, t in
          zip(range(len(inst["limits"])), targets)}
    cons = {t: np.array([lim]) for t, lim in zip(targets, inst["limits"])}
    solver = MixedPrecisionIntegerLPSolver(sens, ru, cons)
    try:
        cfg = solver.run()  # raises unless PuLP reports "Optimal"
    except (RuntimeError, ValueError) as e:
        return None, f"error: {e}"[:200], False
    return [int(cfg[i]) for i in range(len(sens))], "Optimal", True


def autoround_dp(inst: dict, time_limit: float):
    from auto_round.auto_scheme.delta_loss import choose_bits_per_layer_with_path

    if len(inst["limits"]) != 1:
        return None, "n/a: one budget only", False
    scale = (inst.get("int_scale") or [None])[0] or 1.0
    cost = [c * scale for c in inst["costs"][0]]
    if not all(np.allclose(c, np.rint(c), rtol=0, atol=1e-6) for c in cost):
        return None, "n/a: integer costs only", False
    layers = {f"g{i}": [(j, int(np.rint(c[j])), float(e[j]), f"g{i}") for j in range(len(e))]
              for i, (e, c) in enumerate(zip(inst["errors"], cost))}
    limit = int(np.floor(inst["limits"][0] * scale + 1e-6))
    loss, path = choose_bits_per_layer_with_path(layers, limit)
    if path is None:
        return None, "infeasible", False
    return [int(scheme) for _, scheme in path], "optimal (exact DP)", True


def _one_hot(inst: dict):
    sizes = [len(e) for e in inst["errors"]]
    start = np.concatenate([[0], np.cumsum(sizes)])
    return sizes, start, np.concatenate(inst["errors"])


def _decode(x, sizes, start):
    return [int(np.argmax(x[start[i]:start[i] + k])) for i, k in enumerate(sizes)]


def pulp_cbc(inst: dict, time_limit: float):
    import warnings

    import pulp

    sizes, start, c = _one_hot(inst)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pulp.LpProblem("mckp", pulp.LpMinimize)
        x = [pulp.LpVariable(f"x{t}", cat="Binary") for t in range(len(c))]
        m += pulp.lpSum(float(c[t]) * x[t] for t in range(len(c)))
        for i, k in enumerate(sizes):
            m += pulp.lpSum(x[start[i]:start[i] + k]) == 1
        for per, lim in zip(inst["costs"], inst["limits"]):
            a = np.concatenate(per)
            m += pulp.lpSum(float(a[t]) * x[t] for t in range(len(c))) <= float(lim)
        status = m.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0))
        vals = np.array([v.value() or 0.0 for v in x])
    word = pulp.LpStatus[status]
    return _decode(vals, sizes, start), word, word == "Optimal"


def _highs(inst: dict, time_limit: float, options: dict):
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    sizes, start, c = _one_hot(inst)
    n, m = len(c), len(sizes)
    rows = np.repeat(np.arange(m), sizes)
    eq = csr_array((np.ones(n), (rows, np.arange(n))), shape=(m, n))
    a = csr_array(np.stack([np.concatenate(per) for per in inst["costs"]]))
    cons = [LinearConstraint(eq, 1, 1),
            LinearConstraint(a, -np.inf, np.asarray(inst["limits"], dtype=float))]
    res = milp(c, integrality=np.ones(n), bounds=Bounds(0, 1), constraints=cons,
               options=dict(options, time_limit=time_limit))
    word = f"status {res.status}: {res.message.split('(')[-1].rstrip(')')}"
    if res.x is None:
        return None, word, False
    return _decode(res.x, sizes, start), word, res.status == 0


def highs(inst: dict, time_limit: float):
    return _highs(inst, time_limit, {"mip_rel_gap": 0.0})


def highs_default(inst: dict, time_limit: float):
    return _highs(inst, time_limit, {})


SOLVERS = {f.__name__: f for f in (modelopt_lps, mct_ilp, autoround_dp, pulp_cbc, highs,
                                   highs_default)}
#: imported before the clock starts (the seconds are build + solve only)
IMPORTS = {"modelopt_lps": "modelopt.torch.opt.searcher",
           "mct_ilp": "model_compression_toolkit.core.common.mixed_precision.search_methods."
                      "linear_programming",
           "autoround_dp": "auto_round.auto_scheme.delta_loss", "pulp_cbc": "pulp",
           "highs": "scipy.optimize", "highs_default": "scipy.optimize"}


def main(argv: list[str]) -> int:
    """``SOLVER RESULTS.jsonl [--time-limit S] INSTANCE.json...``: one JSON line per instance.

    A first line ``{"ready": ...}`` is written once the imports are done, then one line
    per instance, flushed, so the caller can time each run and kill a stuck one.
    """
    if len(argv) < 3 or argv[0] not in SOLVERS:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    solver, out_path, rest = argv[0], argv[1], argv[2:]
    time_limit = 120.0
    if rest[0] == "--time-limit":
        time_limit, rest = float(rest[1]), rest[2:]
    import importlib

    importlib.import_module(IMPORTS[solver])
    with open(out_path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"ready": solver}) + "\n")
        out.flush()
        for inst_path in rest:
            inst = _load(inst_path)
            t0 = time.perf_counter()
            try:
                choice, status, claims = SOLVERS[solver](inst, time_limit)
            except Exception as e:  # a peer's own failure is a result, not a crash
                choice, status, claims = None, f"error: {type(e).__name__}: {e}"[:300], False
            out.write(json.dumps({"instance": inst_path, "solver": solver, "choice": choice,
                                  "status": status, "claims_optimal": bool(claims),
                                  "seconds": time.perf_counter() - t0}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
