"""Sensitivity-quality check for :mod:`benchmarks.pretrained`: one layer at a time.

For each allocated layer, quantize only that layer's weights at ``--bits`` (every other
layer at 8 bits) and measure the fidelity loss on held-out inputs; compare with what each
arm's error table predicts for that layer (Spearman rank correlation). Reads the FIT
traces from ``benchmarks/results/pretrained.json`` and adds a ``"diagnostics"`` entry to it.
Run after the main benchmark: ``python -m benchmarks.pretrained_diag`` (~5-8 min);
``--qk`` runs only :func:`minilm_qk_floor` (~2 min); ``--paired`` only
:func:`paired_check` (per-input paired intervals of allocated vs uniform, with and
without bias correction; ~8 min).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

import bitalloc_torch as bt

from . import pretrained_models as pm
from .pretrained import BITS, EFFNET_PINNED, RESULTS
from .pretrained_ptq import WeightPTQ, error_tables
from .pretrained_report import write_report


def _single_layer(ptq: WeightPTQ, names, pinned, bits: int, loss) -> dict[str, float]:
    base = ptq.uniform(8, {})
    ptq.apply(base)
    ref = loss()
    out = {}
    for n in names:
        ptq.apply({**base, n: bits})
        out[n] = loss() - ref
    ptq.apply(base)
    return out


def _correlate(measured: dict, traces: dict, ptq: WeightPTQ, names, bits: int) -> dict:
    m = np.array([measured[n] for n in names])
    k = ptq.bits.index(bits)
    out = {}
    for label, trace in traces.items():
        if not trace:
            continue
        prefix = "Hutch" if label == "hutchinson" else "FIT"
        tables = error_tables(trace, ptq, names, prefix)
        for arm, table in tables.items():
            out[arm] = float(spearmanr(table[:, k], m).statistic)
        if prefix == "FIT":
            t = np.array([trace[n] for n in names])
            r8 = np.array([ptq.range_sq(n, 8) for n in names])
            out["FIT"] = float(spearmanr(t * r8, m).statistic)
    out["size only"] = float(spearmanr(ptq.sizes[[ptq.names.index(n) for n in names]],
                                       m).statistic)
    return out


def minilm_qk_floor(results: dict, budgets=(3.0, 4.0), floor: int = 3) -> dict:
    """Post-hoc: the FIT-δ allocation of MiniLM with query/key layers kept >= ``floor`` bits.

    Same quantizers, traces (from the main run) and 256 held-out sentences as the main
    run; tests whether the 3-bit loss comes from 2-bit query/key pairs, whose errors
    interact through the attention logits (a product), which a per-layer additive
    second-order model cannot see.
    """
    import bitalloc as ba

    from .pretrained_ptq import solve_arm

    t0 = time.perf_counter()
    model, tok = pm.load_minilm()
    _, sents = pm.sentence_sets(256, 256, seed=0)
    batches = pm.tokenize(tok, sents, 64)
    with torch.no_grad():
        t_emb = torch.cat([model(b) for b in batches])
    bt.quantize_model(model, bits=8, act_bits=None, init="mse", skip=["bert.pooler.dense"])
    ptq = WeightPTQ(model, BITS)
    table = error_tables(results["minilm"]["fit_trace"], ptq, ptq.names)["FIT-δ"]
    qk = [n for n in ptq.names if n.endswith(("query", "key"))]
    out = {"floor": floor, "layers": qk}
    for budget in budgets:
        problem = ba.Problem(errors=table, sizes=ptq.sizes, bits=BITS, names=ptq.names,
                             allowed={n: [b for b in BITS if b >= floor] for n in qk},
                             constraints=[ba.AverageBits(budget)])
        alloc, report = solve_arm(problem)
        ptq.apply(alloc)
        with torch.no_grad():
            e = torch.cat([model(b) for b in batches])
        cos = F.cosine_similarity(e, t_emb, dim=1).numpy()
        out[f"{budget:g}"] = {"cosine": float(cos.mean()),
                              "cosine_p05": float(np.quantile(cos, 0.05)),
                              "solver": report, "bits": alloc}
        print(f"q/k >= {floor}, {budget:g} bits: cosine {cos.mean():.4f}")
    out["seconds"] = time.perf_counter() - t0
    return out


def _paired(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    """Mean of ``a - b`` (paired per input) with a 95 % percentile bootstrap interval."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(10000, len(d)))].mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": len(d)}


def _paired_minilm(mode: str):
    model, tok = pm.load_minilm()
    s_est, s_eval = pm.sentence_sets(256, 256, seed=0)
    b_eval = pm.tokenize(tok, s_eval, 64)
    b_bc = pm.tokenize(tok, s_est, len(s_est))[0]
    with torch.no_grad():
        t_emb = torch.cat([model(b) for b in b_eval])
    bt.quantize_model(model, bits=8, act_bits=None, init="mse", skip=["bert.pooler.dense"])
    ptq = WeightPTQ(model, BITS)

    def correct():
        ptq.bias_correct(lambda: model(b_bc), mode, mask=b_bc["attention_mask"])

    def per_input():
        with torch.no_grad():
            e = torch.cat([model(b) for b in b_eval])
        return F.cosine_similarity(e, t_emb, dim=1).numpy()
    return ptq, {}, "cosine", correct, per_input


def _paired_effnet(mode: str):
    model = pm.load_efficientnet()
    x_est, x_eval, _ = pm.image_sets(64, 96, seed=0)
    with torch.no_grad():
        t_logp = torch.cat([model(x_eval[i:i + 32]) for i in range(0, 96, 32)]).log_softmax(1)
    bt.quantize_model(model, bits=8, act_bits=None, init="mse")
    ptq = WeightPTQ(model, BITS)

    def correct():
        ptq.bias_correct(lambda: model(x_est), mode)

    def per_input():
        with torch.no_grad():
            lp = torch.cat([model(x_eval[i:i + 32]) for i in range(0, 96, 32)]).log_softmax(1)
        return (t_logp.exp() * (t_logp - lp)).sum(1).numpy()
    return ptq, EFFNET_PINNED, "kl", correct, per_input


def paired_check(results: dict, models=("minilm", "efficientnet"), budgets=("3", "4", "5")
                 ) -> dict:
    """Per-input paired differences, allocated vs uniform, with and without BC.

    Re-quantizes each model exactly as the main run (same data, calibration, BC mode,
    and the ``FIT-δ`` bits stored in ``results``), recomputes the per-input metric
    (MiniLM cosine, EfficientNet KL) and reports ``FIT-δ - uniform`` and
    ``FIT-δ + BC - uniform + BC`` with bootstrap intervals. The means must equal the
    main run's (checked by ``reproduced``: largest absolute difference).
    """
    cfg_mode = results["config"]["bc_mode"]
    out: dict = {}
    t0 = time.perf_counter()
    for key in models:
        if key not in results:
            continue
        setup = _paired_minilm if key == "minilm" else _paired_effnet
        ptq, pinned, metric, correct, per_input = setup(cfg_mode)
        res = results[key]["results"]
        entry: dict = {"metric": metric, "reproduced": 0.0}
        for budget in budgets:
            row = res[budget]
            vals = {}
            for arm, alloc in (("uniform", ptq.uniform(int(budget), pinned)),
                               ("FIT-δ", {**pinned, **row["FIT-δ"]["bits"]})):
                ptq.apply(alloc)
                vals[arm] = per_input()
                correct()
                vals[f"{arm} + BC"] = per_input()
            for arm, v in vals.items():
                entry["reproduced"] = max(entry["reproduced"],
                                          abs(float(v.mean()) - row[arm]["metrics"][metric]))
            entry[budget] = {"FIT-δ - uniform": _paired(vals["FIT-δ"], vals["uniform"]),
                             "FIT-δ + BC - uniform + BC": _paired(vals["FIT-δ + BC"],
                                                                  vals["uniform + BC"]),
                             "uniform + BC - FIT-δ": _paired(vals["uniform + BC"],
                                                             vals["FIT-δ"]),
                             "means": {arm: float(v.mean()) for arm, v in vals.items()}}
            print(key, budget, {k: round(v["mean"], 4) for k, v in entry[budget].items()},
                  flush=True)
        out[key] = entry
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=3)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="efficientnet,minilm")
    ap.add_argument("--qk", action="store_true",
                    help="only the MiniLM query/key floor check (added to diagnostics)")
    ap.add_argument("--paired", action="store_true",
                    help="only the paired allocated-vs-uniform intervals, with and without "
                         "bias correction (added to the results as 'paired')")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = RESULTS / "pretrained.json"
    results = json.loads(path.read_text())
    if args.paired:
        paired = paired_check(results, tuple(args.models.split(",")))
        results = json.loads(path.read_text())
        results["paired"] = paired
        path.write_text(json.dumps(results, indent=1) + "\n")
        write_report(results, RESULTS)
        return
    if args.qk:
        qk = minilm_qk_floor(results)
        results = json.loads(path.read_text())
        results.setdefault("diagnostics", {})["minilm_qk_floor"] = qk
        path.write_text(json.dumps(results, indent=1) + "\n")
        write_report(results, RESULTS)
        return
    diag: dict = {"bits": args.bits} if args.bits == 3 else {}
    suffix = "" if args.bits == 3 else f"_{args.bits}bit"
    if "efficientnet" in args.models:
        diag[f"efficientnet{suffix}"] = _efficientnet(args, results)
    if "minilm" in args.models:
        diag[f"minilm{suffix}"] = _minilm(args, results)
    results = json.loads(path.read_text())  # re-read: keep anything written meanwhile
    results["diagnostics"] = {**results.get("diagnostics", {}), **diag}
    path.write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, RESULTS)
    print(f"updated {path} and pretrained.md")


def _efficientnet(args, results: dict) -> dict:
    t0 = time.perf_counter()
    model = pm.load_efficientnet()
    _, x, _ = pm.image_sets(64, 96, seed=0)
    x = torch.cat([x[: args.images // 2], x[-(args.images - args.images // 2):]])
    with torch.no_grad():
        t_logp = model(x).log_softmax(1)
    bt.quantize_model(model, bits=8, act_bits=None, init="mse")
    ptq = WeightPTQ(model, BITS)

    def kl() -> float:
        with torch.no_grad():
            logp = model(x).log_softmax(1)
        return float((t_logp.exp() * (t_logp - logp)).sum(1).mean())

    info = results["efficientnet"]
    names = [n for n in ptq.names if n not in EFFNET_PINNED]
    measured = _single_layer(ptq, names, EFFNET_PINNED, args.bits, kl)
    out = {
        "metric": "KL increase", "inputs": len(x), "measured": measured,
        "spearman": _correlate(measured, {"fit": info["fit_trace"],
                                          "hutchinson": info.get("hutchinson_trace")},
                               ptq, names, args.bits),
        "seconds": time.perf_counter() - t0}
    print("efficientnet", out["spearman"])
    return out


def _minilm(args, results: dict) -> dict:
    t0 = time.perf_counter()
    model, tok = pm.load_minilm()
    _, sents = pm.sentence_sets(256, 256, seed=0)
    batches = pm.tokenize(tok, sents[: args.sentences], 64)
    with torch.no_grad():
        t_emb = torch.cat([model(b) for b in batches])
    bt.quantize_model(model, bits=8, act_bits=None, init="mse", skip=["bert.pooler.dense"])
    ptq = WeightPTQ(model, BITS)

    def one_minus_cos() -> float:
        with torch.no_grad():
            e = torch.cat([model(b) for b in batches])
        return float(1.0 - F.cosine_similarity(e, t_emb, dim=1).mean())

    info = results["minilm"]
    measured = _single_layer(ptq, ptq.names, {}, args.bits, one_minus_cos)
    out = {
        "metric": "1 - cosine increase", "inputs": len(sents[: args.sentences]),
        "measured": measured,
        "spearman": _correlate(measured, {"fit": info["fit_trace"],
                                          "hutchinson": info.get("hutchinson_trace")},
                               ptq, ptq.names, args.bits),
        "seconds": time.perf_counter() - t0}
    print("minilm", out["spearman"])
    return out


if __name__ == "__main__":
    main()
