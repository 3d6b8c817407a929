"""Mixed-precision PTQ of two pretrained models: allocated vs uniform bits (issues 4 and 9).

Models (offline packages, nothing downloads):

- **EfficientNet-Lite0** (ImageNet weights, 50 conv/linear layers incl. 13 depthwise).
  The stem conv and the classifier are pinned at 8 bits and left out of the budget; the
  other 48 layers share it.
- **all-MiniLM-L6-v2** (sentence embeddings): its 37 ``nn.Linear``; the pooler is not on
  the sentence-embedding path (mean pooling), so it stays float and out of the problem:
  the allocation is over the 36 encoder linears. Embeddings (not linear) stay float.

Quantization: weights only (activations stay float), per output channel, signed
symmetric, each layer's range set at its own bitwidth by the LSQ quantizers' MSE range
search (no training, no data needed for weights). Uniform and allocated models go
through the identical procedure (:class:`benchmarks.pretrained_ptq.WeightPTQ`).
Optionally followed by empirical bias correction (``+ BC`` arms, Nagel et al. 2019:
each layer's bias absorbs the mean output shift on the estimation data, sequentially),
run for uniform and the primary arm.

Sensitivity (FIT, post-training, ``bt.fit_sensitivity``): the distillation loss against
the float model has zero gradient at the float point, so FIT is taken from its curvature
instead: the gradient of ``loss(model(x), pseudo-target)`` with pseudo-targets drawn so
that its second moment is the Hessian of the distillation loss at the float point, i.e.
``E||g||**2`` = Gauss-Newton/Fisher trace of that loss. EfficientNet: labels sampled
from the float model's softmax, cross-entropy (Hessian of KL(float || quant)); MiniLM:
``eps . e(x)`` with ``eps ~ N(0, (I - t t^T) / |e_float|**2)`` (Hessian of
``1 - cos(e, e_float)``). The model is at uniform 8 bits during estimation.

Arms (error table ``errors[layer, b]`` minimised by the exact ILP under ``AverageBits``):

- ``FIT``: the adapter's convention, trace x 8-bit range**2 x (2**b-1)**-2
  (``bt.problem_from_model``);
- ``FIT-r(b)``: trace x range_b**2 x (2**b-1)**-2, with the range of the quantizer
  calibrated at each candidate ``b`` (rounding noise only);
- ``FIT-δ`` (primary, fixed before the full run): trace x the measured mean squared
  weight error at ``b`` (rounding and clipping), the second-order estimate
  ``0.5 * tr(F_l) / n_l * ||W_q - W||**2`` of the loss increase;
- ``Hutch-δ``: as ``FIT-δ`` with the Hutchinson Hessian trace of the distillation loss
  (few inputs: a double backward per probe) instead of the FIT trace.

``FIT-r(b)`` and ``Hutch-δ`` are off by default (``--all-arms`` runs them).
Re-estimation (``benchmarks.pretrained_rounds``): at the budgets in ``cfg["reest"]``, the
``FIT-δ`` allocation is applied, FIT re-estimated at that quantized point, the same
budget re-solved and evaluated, for ``cfg["rounds"]`` rounds.

Fidelity on held-out data: EfficientNet mean KL(float || quant) (primary), top-5
agreement (the float model's top-1 class among the quantized model's top 5) and top-1
agreement; MiniLM mean cosine similarity of sentence embeddings to the float model. Run
``python -m benchmarks.pretrained`` (about 20 min on 2 CPU cores); ``--quick`` for a smoke
run (< 60 s). Writes ``benchmarks/results/pretrained.{md,json,png}`` and
``examples/{efficientnet_lite0,minilm}_fit.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import bitalloc as ba
import bitalloc_torch as bt
from bitalloc.io import save_problem

from . import pretrained_models as pm
from .pretrained_arms import BITS, PRIMARY, Timer, compare, delta_problem, rounds, table_problems
from .pretrained_ptq import WeightPTQ, error_tables
from .pretrained_rounds import effnet_fit, minilm_fit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
EXAMPLES = ROOT / "examples"
#: ``arms``: allocation arms run (None: all, incl. ``FIT-r(b)`` and ``Hutch-δ``, whose
#: traces then need ``img_hutch`` / ``sent_hutch`` > 0); ``bc_arms``: arms also run with
#: bias correction (``bc_mode``, see ``pretrained_ptq.BC_MODES``) on the estimation set;
#: ``reest`` / ``rounds``: per model, the budgets and the number of re-estimation rounds of
#: the primary arm.
FULL = {"img_est": 64, "img_eval": 96, "img_hutch": 0, "sent_est": 256, "sent_eval": 256,
        "sent_hutch": 0, "budgets": (3.0, 3.5, 4.0, 5.0), "init": "mse", "reference": True,
        "arms": ("FIT", "FIT-δ"), "fractional_arms": ("FIT", "FIT-δ"),
        "bc_arms": ("uniform", "FIT-δ"), "bc_mode": "layer",
        "reest": {"efficientnet": (3.0,), "minilm": (3.0,)},
        "rounds": {"efficientnet": 1, "minilm": 2}}
ALL_ARMS = {"img_hutch": 8, "sent_hutch": 64, "arms": None}
QUICK = {"img_est": 2, "img_eval": 4, "img_hutch": 0, "sent_est": 8, "sent_eval": 16,
         "sent_hutch": 0, "budgets": (4.0,), "init": "minmax", "reference": False,
         "arms": ("FIT-δ",), "fractional_arms": (), "bc_arms": ("uniform", "FIT-δ"),
         "bc_mode": "layer", "reest": {"efficientnet": (4.0,), "minilm": (4.0,)},
         "rounds": {"efficientnet": 1, "minilm": 1}}
EFFNET_PINNED = {"_conv_stem": 8, "_fc": 8}


def export(path: Path, ptq: WeightPTQ, trace: dict, macs: dict, pinned: dict, description: str,
           model_name: str) -> None:
    """Problem file: every quantized layer, primary-arm errors, real sizes and MACs."""
    names = ptq.names
    table = error_tables(trace, ptq, names)[PRIMARY]
    n_pin = sum(ptq.sizes[names.index(n)] for n in pinned)
    total = float(ptq.sizes.sum())
    avg = round((4.0 * (total - n_pin) + 8.0 * n_pin) / total, 4)
    problem = ba.Problem(errors=table, sizes=ptq.sizes, bits=BITS, names=names,
                         macs=[macs[n] for n in names], act_bits=[8] * len(names),
                         allowed={n: [b] for n, b in pinned.items()} or None,
                         constraints=[ba.AverageBits(avg)])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    pin = (f"; {', '.join(pinned)} pinned to 8 bits via allowed_bits; average_bits {avg} equals "
           f"4 bits on the other layers" if pinned else "; average_bits 4.0")
    save_problem(problem, path, description=(
        f"{model_name}: real layer sizes and MACs; errors[i][k] = FIT trace x "
        f"12 x mean squared weight error of the per-channel MSE-calibrated quantizer at "
        f"bits[k] (FIT-δ), "
        f"FIT from {description}; act_bits 8 for BOPs{pin}. Generated {date} by "
        f"`python -m benchmarks.pretrained`."))


def run_efficientnet(cfg: dict, timer: Timer, log, seed: int = 0) -> tuple[dict, dict]:
    with timer("load"):
        model = pm.load_efficientnet()
    with timer("data"):
        x_est, x_eval, sources = pm.image_sets(cfg["img_est"], cfg["img_eval"], seed=seed)
    with torch.no_grad(), timer("float teacher"):
        t_est = torch.cat([model(x_est[i:i + 16]) for i in range(0, len(x_est), 16)])
        t_eval = torch.cat([model(x_eval[i:i + 16]) for i in range(0, len(x_eval), 16)])
    t_logp = t_eval.log_softmax(1)
    with timer("quantize + calibrate (all bits)"):
        bt.quantize_model(model, bits=8, act_bits=None, per_channel=True, init=cfg["init"])
        ptq = WeightPTQ(model, BITS)
        macs = bt.layer_macs(model, x_est[:1])
    src = np.array(sources)

    def evaluate() -> dict:
        with torch.no_grad():
            logp = torch.cat([model(x_eval[i:i + 32]) for i in range(0, len(x_eval), 32)]
                             ).log_softmax(1)
        top = t_logp.argmax(1)
        agree = (logp.argmax(1) == top).numpy()
        top5 = (logp.topk(5, dim=1).indices == top[:, None]).any(1).numpy()
        kl = (t_logp.exp() * (t_logp - logp)).sum(1).numpy()
        out = {"kl": float(kl.mean()), "top5_agreement": float(top5.mean()),
               "top1_agreement": float(agree.mean())}
        for s in ("photo", "fashion"):
            if (src == s).any():
                out[f"top1_{s}"] = float(agree[src == s].mean())
        return out

    ptq.apply(ptq.uniform(8, {}))
    with timer("FIT"):
        s8 = effnet_fit(model, x_est, t_est, seed + 7)
    trace = {n: s8[n] / ptq.range_sq(n, 8) for n in ptq.names}
    alloc_names = [n for n in ptq.names if n not in EFFNET_PINNED]
    sizes = ptq.sizes[[ptq.names.index(n) for n in alloc_names]]
    problems = {"FIT": lambda b: bt.problem_from_model(
        model, s8, [ba.AverageBits(b)], BITS, exclude=list(EFFNET_PINNED))}
    problems.update(table_problems(error_tables(trace, ptq, alloc_names), alloc_names, sizes))
    hutch = {}
    if cfg["img_hutch"]:
        def kl_loss(out, t):
            return F.kl_div(out.log_softmax(1), t.log_softmax(1), log_target=True,
                            reduction="batchmean")
        n = cfg["img_hutch"]
        ptq.apply(ptq.uniform(8, {}))
        with timer("Hutchinson"):
            sh = bt.hutchinson_sensitivity(model, kl_loss, [(x_est[i:i + 2], t_est[i:i + 2])
                                                            for i in range(0, n, 2)], seed=seed)
        hutch = {k: sh[k] / ptq.range_sq(k, 8) for k in ptq.names}
        problems["Hutch-δ"] = table_problems(
            {"h": error_tables(hutch, ptq, alloc_names, "Hutch")["Hutch-δ"]},
            alloc_names, sizes)["h"]
    log("EfficientNet-Lite0:")
    ref8 = None
    if cfg["reference"]:
        with torch.no_grad(), timer("evaluate"):
            ptq.apply(ptq.uniform(8, EFFNET_PINNED))
            ref8 = evaluate()
    def correct() -> dict:
        return ptq.bias_correct(lambda: model(x_est), cfg["bc_mode"])

    def fit_here() -> dict:
        with torch.no_grad():
            logits = torch.cat([model(x_est[i:i + 16]) for i in range(0, len(x_est), 16)])
        return effnet_fit(model, x_est, logits, seed + 7)

    def problem_at(tr: dict, budget: float) -> ba.Problem:
        return delta_problem(error_tables(tr, ptq, alloc_names)[PRIMARY], alloc_names, sizes,
                             budget)

    res = compare(ptq, problems, EFFNET_PINNED, cfg, evaluate, correct, timer, log)
    reest = rounds(ptq, res, EFFNET_PINNED, cfg, "efficientnet", fit_here, problem_at,
                   evaluate, correct, timer, log)
    n_photo = int((src == "photo").sum())
    info = {
        "layers": ptq.names, "sizes": ptq.sizes.tolist(), "pinned": EFFNET_PINNED,
        "allocated_layers": len(alloc_names), "macs": macs,
        "fit_trace": trace, "fit_sensitivity": s8, "hutchinson_trace": hutch,
        "uniform8": ref8, "results": res, "reestimation": reest,
        "data": {"estimation_images": len(x_est), "held_out_images": len(x_eval),
                 "held_out_photo_crops": n_photo, "held_out_fashion": len(src) - n_photo,
                 "hutchinson_images": cfg["img_hutch"]},
        "float_top1_confidence": float(t_logp.exp().max(1).values.mean()),
    }
    return info, {"ptq": ptq, "trace": trace, "macs": macs}


def run_minilm(cfg: dict, timer: Timer, log, seed: int = 0) -> tuple[dict, dict]:
    with timer("load"):
        model, tok = pm.load_minilm()
    with timer("data"):
        s_est, s_eval = pm.sentence_sets(cfg["sent_est"], cfg["sent_eval"], seed=seed)
        b_est, b_eval = pm.tokenize(tok, s_est, 8), pm.tokenize(tok, s_eval, 64)
        b_bc = pm.tokenize(tok, s_est, len(s_est))[0]  # one batch: sequential BC
    with torch.no_grad(), timer("float teacher"):
        t_est = [model(b) for b in b_est]
        t_eval = torch.cat([model(b) for b in b_eval])
    with timer("quantize + calibrate (all bits)"):
        bt.quantize_model(model, bits=8, act_bits=None, per_channel=True, init=cfg["init"],
                          skip=["bert.pooler.dense"])
        ptq = WeightPTQ(model, BITS)
        seq = {"input_ids": torch.full((1, 128), 1000), "attention_mask": torch.ones(1, 128,
                                                                                dtype=torch.long)}
        macs = bt.layer_macs(model, (seq,))  # one 128-token sequence

    def evaluate() -> dict:
        with torch.no_grad():
            e = torch.cat([model(b) for b in b_eval])
        cos = F.cosine_similarity(e, t_eval, dim=1).numpy()
        return {"cosine": float(cos.mean()), "cosine_p05": float(np.quantile(cos, 0.05))}

    ptq.apply(ptq.uniform(8, {}))
    with timer("FIT"):
        s8 = minilm_fit(model, b_est, t_est, seed + 11)
    trace = {n: s8[n] / ptq.range_sq(n, 8) for n in ptq.names}
    problems = {"FIT": lambda b: bt.problem_from_model(model, s8, [ba.AverageBits(b)], BITS)}
    problems.update(table_problems(error_tables(trace, ptq, ptq.names), ptq.names, ptq.sizes))
    hutch = {}
    if cfg["sent_hutch"]:
        def cos_loss(out, t):
            return (1.0 - F.cosine_similarity(out, t, dim=1)).mean()
        k = max(cfg["sent_hutch"] // 8, 1)
        with timer("Hutchinson"):
            sh = bt.hutchinson_sensitivity(model, cos_loss, list(zip(b_est[:k], t_est[:k])),
                                           seed=seed)
        hutch = {n: sh[n] / ptq.range_sq(n, 8) for n in ptq.names}
        problems["Hutch-δ"] = table_problems(
            {"h": error_tables(hutch, ptq, ptq.names, "Hutch")["Hutch-δ"]},
            ptq.names, ptq.sizes)["h"]
    log("MiniLM:")
    ref8 = None
    if cfg["reference"]:
        with timer("evaluate"):
            ptq.apply(ptq.uniform(8, {}))
            ref8 = evaluate()
    def correct() -> dict:
        return ptq.bias_correct(lambda: model(b_bc), cfg["bc_mode"],
                                mask=b_bc["attention_mask"])

    def fit_here() -> dict:
        with torch.no_grad():
            emb = [model(b) for b in b_est]
        return minilm_fit(model, b_est, emb, seed + 11)

    def problem_at(tr: dict, budget: float) -> ba.Problem:
        return delta_problem(error_tables(tr, ptq, ptq.names)[PRIMARY], ptq.names, ptq.sizes,
                             budget)

    res = compare(ptq, problems, {}, cfg, evaluate, correct, timer, log)
    reest = rounds(ptq, res, {}, cfg, "minilm", fit_here, problem_at, evaluate, correct,
                   timer, log)
    info = {
        "layers": ptq.names, "sizes": ptq.sizes.tolist(), "pinned": {},
        "allocated_layers": len(ptq.names), "macs": macs, "fit_trace": trace,
        "fit_sensitivity": s8, "hutchinson_trace": hutch, "uniform8": ref8, "results": res,
        "reestimation": reest,
        "data": {"estimation_sentences": len(s_est), "held_out_sentences": len(s_eval),
                 "hutchinson_sentences": min(cfg["sent_hutch"], len(s_est))},
    }
    return info, {"ptq": ptq, "trace": trace, "macs": macs}


def trace_change(prev: dict, new: dict) -> float:
    """Largest relative change of a float-point FIT trace between two results (inf: none)."""
    rel = [abs(new[k]["fit_trace"][n] - t) / max(abs(t), 1e-30)
           for k in ("efficientnet", "minilm") if k in prev and k in new
           for n, t in prev[k]["fit_trace"].items() if n in new[k]["fit_trace"]]
    return max(rel) if rel else float("inf")


def carry_over(prev: dict, results: dict) -> None:
    """Keep ``pretrained_diag``'s entries of the previous results file where still valid.

    ``"diagnostics"`` (one layer at a time, from the float-point FIT traces) when this
    run's traces are the same (relative change < 1e-2: thread-count rounding moves them
    by ~1e-3); ``"paired"`` when its per-arm means equal this run's metrics.
    """
    if "diagnostics" in prev:
        diff = trace_change(prev, results)
        if diff < 1e-2:
            results["diagnostics"] = prev["diagnostics"]
            results["diagnostics_date"] = prev.get("diagnostics_date", prev["date"])
            results["diagnostics_trace_change"] = diff
    if "paired" in prev and paired_still_valid(prev["paired"], results):
        results["paired"] = prev["paired"]


def paired_still_valid(paired: dict, new: dict, tol: float = 1e-6) -> bool:
    """Whether ``pretrained_diag --paired`` results match this run's arms exactly."""
    checked = 0
    for key, entry in paired.items():
        if not isinstance(entry, dict) or key not in new:
            continue
        for budget, row in entry.items():
            if not isinstance(row, dict) or "means" not in row:
                continue
            metrics = new[key]["results"].get(budget, {})
            for arm, mean in row["means"].items():
                if arm not in metrics or abs(metrics[arm]["metrics"][entry["metric"]] - mean) > tol:
                    return False
                checked += 1
    return checked > 0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few inputs, one budget")
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default benchmarks/results; --quick: no files "
                         "unless given)")
    ap.add_argument("--models", default="efficientnet,minilm")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--merge", action="store_true",
                    help="keep the other model's results from an existing pretrained.json")
    ap.add_argument("--no-export", action="store_true", help="do not write examples/")
    ap.add_argument("--all-arms", action="store_true",
                    help="also the FIT-r(b) and Hutch-δ arms (full run: ~+5 min)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = QUICK if args.quick else FULL
    if args.all_arms:
        cfg = {**cfg, **ALL_ARMS} if not args.quick else {**cfg, "arms": None}
    out_dir = args.out if (args.out or args.quick) else RESULTS
    t_start = time.perf_counter()
    results: dict = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                     "quick": args.quick, "bits": list(BITS), "primary_arm": PRIMARY,
                     "threads": args.threads, "torch": torch.__version__,
                     "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                         timespec="seconds")}
    models = args.models.split(",")
    for key, runner in (("efficientnet", run_efficientnet), ("minilm", run_minilm)):
        if key not in models:
            continue
        timer = Timer()
        info, extra = runner(cfg, timer, print)
        info["seconds"] = timer.seconds
        results[key] = info
        if not args.quick and not args.no_export:
            if key == "efficientnet":
                export(EXAMPLES / "efficientnet_lite0_fit.json", extra["ptq"], extra["trace"],
                       extra["macs"], EFFNET_PINNED, f"{cfg['img_est']} images (half crops of "
                       "scikit-learn's two sample photos, half Fashion-MNIST train upsampled "
                       "to 224 RGB), labels sampled from the float model's softmax",
                       "EfficientNet-Lite0 (ImageNet weights; MACs per 224x224 image)")
            else:
                export(EXAMPLES / "minilm_fit.json", extra["ptq"], extra["trace"],
                       extra["macs"], {}, f"{cfg['sent_est']} sentences of Python's "
                       "documentation, Gauss-Newton probes of 1 - cos to the float embedding",
                       "all-MiniLM-L6-v2 (36 encoder linears; MACs per 128-token sequence)")
    results["total_seconds"] = time.perf_counter() - t_start
    if out_dir is not None:
        from .pretrained_report import write_report
        out_dir.mkdir(parents=True, exist_ok=True)
        old = out_dir / "pretrained.json"
        prev = json.loads(old.read_text()) if old.exists() else {}
        if not args.quick:
            carry_over(prev, results)
        if args.merge and prev:
            for key in ("efficientnet", "minilm"):
                if key not in results and key in prev:
                    results[key] = prev[key]
                    results["total_seconds"] += sum(prev[key]["seconds"].values())
        (out_dir / "pretrained.json").write_text(json.dumps(results, indent=1) + "\n")
        write_report(results, out_dir)
        print(f"wrote {out_dir}/pretrained.{{json,md,png}}")
    print(f"total {results['total_seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
