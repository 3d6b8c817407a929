"""Fashion-MNIST QAT study: does QBitOpt beat fixed precision and post-training allocation?

Issue 4, story 2. Two networks (a MobileNetV2-style network with inverted residual blocks
and depthwise convolutions, and a plain VGG-style CNN), first and last layer at 8 bits,
budgets of average 2.5, 3 and 4 weight bits over the allocated layers. Arms (all share one
QAT recipe, :mod:`bitalloc_torch.demo.train`):

- ``float``: the converged float model (trained once per network, cached);
- ``uniform b-bit``: every allocated layer at b bits; at 2.5 both the 2-bit arm (within
  budget) and the 3-bit arm (over budget, labelled);
- ``post-training alloc (0%)``: FIT once on the converged model (quantized at 8 bits,
  quantizers' own per-channel ranges), solved once under the budget, then QAT with those
  bits fixed (the paper's 0 % ablation point);
- ``QBitOpt (f% realloc)``: starts from the same allocation, then reallocates every tau
  steps from FIT gathered inside QAT during the first f of training (f = 100 % at every
  budget; the ablation 25 % and 50 % at 3 bits, ``--ablation-budgets``).

Every QAT arm: same steps, batch order (per seed), optimizers (SGD momentum 0.9 cosine for
weights, Adam 1e-5 for quantizer parameters) and BatchNorm re-estimation before the test
evaluation on the full 10k test set. The budget is checked at every allocation of every
arm. Results are appended to ``benchmarks/results/qat.json`` as each run finishes
(a rerun resumes, skipping finished runs); ``--report`` rebuilds ``qat.md`` and ``qat.png``
from the JSON alone.

Run ``python -m benchmarks.qat`` (about 40 minutes on 2 shared cores; the committed results
add ``--nets mobilenetv2 --budgets 2.25,2.5 --ablation-budgets 2.5``, 5 more minutes) or
``--quick`` (a smoke run, under a minute, written to a temporary folder unless ``--out``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
NETS = ("mobilenetv2", "plaincnn")
FLOAT_KEYS = ("n_train", "n_val", "n_test", "float_epochs", "patience", "float_seconds", "quick")
ANALYSIS_BEGIN, ANALYSIS_END = "<!-- analysis -->", "<!-- /analysis -->"


def _setup_torch() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def make_net(name: str):
    from bitalloc_torch.demo.models import PlainCNN, TinyMobileNetV2

    return {"mobilenetv2": TinyMobileNetV2, "plaincnn": PlainCNN}[name]()


def load_data(n_train: int, n_val: int, n_test: int | None):
    import torch

    from bitalloc_torch.demo.data import fashion_mnist
    from bitalloc_torch.demo.train import Data

    xtr, ytr, xte, yte = fashion_mnist()
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:n_train], perm[n_train:n_train + n_val]
    if n_test is not None:
        xte, yte = xte[:n_test], yte[:n_test]
    return Data(xtr[tr].contiguous(), ytr[tr], xtr[va].contiguous(), ytr[va], xte, yte)


def arms_for(budgets: list[float], ablation_budget: float | list[float] | None) -> list[Any]:
    """The runs: one uniform arm per bitwidth (its budget is its own bits; the report
    shows it under every budget it serves, labelled over budget where it breaks one),
    then post-training allocation and QBitOpt per budget (plus the ablation)."""
    import math

    from bitalloc_torch.demo.train import Arm

    ubits = sorted({u for b in budgets for u in
                    ([math.floor(b)] if math.floor(b) == b else [math.floor(b),
                                                                 math.floor(b) + 1])})
    arms = [Arm("uniform", budget=float(u), bits=u) for u in ubits]
    for b in budgets:
        arms.append(Arm("pta", budget=b))
        arms.append(Arm("qbitopt", budget=b, fraction=1.0))
        ablate = (ablation_budget if isinstance(ablation_budget, list | tuple)
                  else [ablation_budget])
        if b in ablate:
            arms += [Arm("qbitopt", budget=b, fraction=f) for f in (0.25, 0.5)]
    return arms


def run_key(net: str, seed: int, arm: dict[str, Any]) -> str:
    extra = f"@{arm['fraction']}" if arm["kind"] == "qbitopt" else ""
    return f"{net}|{seed}|{arm['kind']}|{arm['budget']}|{arm['bits']}{extra}"


# -- workers -----------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _worker_init(cfg: dict[str, Any]) -> None:
    _setup_torch()
    _W["cfg"] = cfg
    _W["data"] = load_data(cfg["n_train"], cfg["n_val"], cfg["n_test"])
    _W["models"] = {}


def _float_model(net: str):
    import torch

    if net not in _W["models"]:
        m = make_net(net)
        m.load_state_dict(torch.load(_W["cfg"]["ckpt"][net], weights_only=True))
        _W["models"][net] = m
    return _W["models"][net]


def _run_task(task: tuple[str, int, dict[str, Any]]) -> dict[str, Any]:
    from bitalloc_torch.demo.train import Arm, run_qat

    net, seed, arm_d = task
    cfg = _W["cfg"]
    arm = Arm(**{k: v for k, v in arm_d.items() if k != "label"})
    res = run_qat(_float_model(net), _W["data"], arm, steps=cfg["steps"][net],
                  every=cfg["every"][net], candidates=cfg["candidates"],
                  act_bits=cfg["act_bits"], batch=cfg["batch"], lr=cfg["lr"], seed=seed,
                  per_channel=cfg.get("per_channel", True))
    res["net"] = net
    res["key"] = run_key(net, seed, arm_d)
    return res


def _train_float_task(args: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    import torch

    from bitalloc_torch.demo.train import train_float

    net, cfg, prev = args
    _setup_torch()
    data = load_data(cfg["n_train"], cfg["n_val"], cfg["n_test"])
    m = make_net(net)
    lines: list[str] = []
    lr = 0.05
    if prev is not None:  # a time-capped run: continue from its checkpoint, lower lr
        m.load_state_dict(torch.load(cfg["ckpt"][net], weights_only=True))
        lr = 0.02
        lines.append(f"  continuing from the checkpoint after {prev['epochs']} epochs "
                     f"(stopped: {prev['stopped']}), lr {lr}")
    info = train_float(m, data, lr=lr, max_epochs=cfg["float_epochs"], patience=cfg["patience"],
                       max_seconds=cfg["float_seconds"], seed=len(prev["history"]) if prev
                       else 0, log=lines.append)
    torch.save(m.state_dict(), cfg["ckpt"][net])
    if prev is not None:
        info["history"] = prev["history"] + info["history"]
        info["epochs"] += prev["epochs"]
        info["seconds"] += prev["seconds"]
        info["stopped"] = f"{prev['stopped']}, then {info['stopped']} after resuming"
    info["net"] = net
    info["log"] = lines
    return info


# -- main --------------------------------------------------------------------------------
def _load_json(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"config": None, "float": {}, "runs": []}


def _save_json(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke configuration (< 60 s)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--budgets", default="2.5,3,4")
    ap.add_argument("--steps", type=int, default=None, help="QAT steps (all nets)")
    ap.add_argument("--every", type=int, default=None, help="tau (default steps/10)")
    ap.add_argument("--act-bits", type=int, default=0,
                    help="activation bits; 0 = weight-only QAT (default, see the results)")
    ap.add_argument("--ablation-nets", default="mobilenetv2",
                    help="networks that also get the 25/50%% reallocation ablation")
    ap.add_argument("--ablation-budgets", default="3",
                    help="budgets at which the ablation runs (default 3)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel processes (1 thread each)")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    ap.add_argument("--per-tensor", action="store_true",
                    help="one weight step per tensor (the paper's setting); results go to "
                         "qat.pertensor.{json,md,png}")
    ap.add_argument("--report", action="store_true", help="only rebuild qat.md/png from JSON")
    args = ap.parse_args(argv)
    _setup_torch()

    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="qat_quick_"))
                                           if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    stem = "qat.pertensor" if args.per_tensor else "qat"
    jpath = out / f"{stem}.json"
    if args.report:
        state = _load_json(jpath)
        write_report(state, out, stem)
        print(f"wrote {out / (stem + '.md')}")
        return 0

    from bitalloc_torch.demo.data import DataUnavailable

    try:
        load_data(10, 10, 10)
    except DataUnavailable as e:
        print(f"SKIP: {e}")
        return 0

    nets = [n for n in args.nets.split(",") if n]
    budgets = [float(b) for b in args.budgets.split(",") if b]
    if args.quick:
        cfg = dict(n_train=1000, n_val=500, n_test=500, float_epochs=1, patience=1,
                   float_seconds=20, batch=64, lr=0.01,
                   steps={n: args.steps or 8 for n in NETS})
        seeds = list(range(min(args.seeds, 1)))
        budgets = budgets if args.budgets != "2.5,3,4" else [3.0]
        ablation = None
    else:
        default_steps = {"mobilenetv2": 200, "plaincnn": 150}
        cfg = dict(n_train=20000, n_val=5000, n_test=None, float_epochs=20, patience=2,
                   float_seconds=540, batch=128, lr=0.01,
                   steps={n: args.steps or default_steps[n] for n in NETS})
        seeds = list(range(args.seeds))
        ablation = [float(b) for b in args.ablation_budgets.split(",") if b]
    cfg["every"] = {n: args.every or max(1, cfg["steps"][n] // 10) for n in NETS}
    cfg["candidates"] = [2, 3, 4, 5, 6, 7, 8]
    cfg["act_bits"] = args.act_bits or None
    cfg["quick"] = args.quick
    if args.per_tensor:
        cfg["per_channel"] = False
    cfg["ckpt"] = {n: str(out / f"qat_float_{n}{'_quick' if args.quick else ''}.pt")
                   for n in NETS}
    state = _load_json(jpath)
    public_cfg = {k: v for k, v in cfg.items() if k != "ckpt"}
    if state["config"] is not None and state["config"] != public_cfg:
        old = state["config"]
        same_float = all(old.get(k) == public_cfg.get(k) for k in FLOAT_KEYS)
        print("note: the QAT configuration differs from the one in the JSON; dropping its "
              f"runs{' (keeping the float models)' if same_float else ''}")
        state = {"config": None, "float": state["float"] if same_float else {}, "runs": []}
    state["config"] = public_cfg
    main_json = out / "qat.json"  # the per-tensor study reuses the float models
    if jpath != main_json and main_json.exists():
        for n, f in _load_json(main_json)["float"].items():
            if n in nets and n not in state["float"] and Path(cfg["ckpt"][n]).exists():
                state["float"][n] = f
    t_all = time.perf_counter()
    ctx = mp.get_context("spawn")

    # 1. float models (cached checkpoints)
    def resumable(n):  # stopped by the time cap (not by a plateau): train on
        f = state["float"].get(n)
        return f if (f and Path(cfg["ckpt"][n]).exists()
                     and f["stopped"].split(",")[-1].strip().startswith("time")) else None

    todo = [n for n in nets if not (Path(cfg["ckpt"][n]).exists() and n in state["float"])
            or resumable(n)]
    if todo:
        print(f"training float models: {todo}", flush=True)
        with ctx.Pool(min(args.jobs, len(todo))) as pool:
            for info in pool.imap_unordered(_train_float_task,
                                            [(n, cfg, resumable(n)) for n in todo]):
                print("\n".join(info.pop("log")), flush=True)
                print(f"float {info['net']}: test {info['test_acc']:.2f}% after "
                      f"{info['epochs']} epochs ({info['stopped']}, {info['seconds']:.0f} s)",
                      flush=True)
                state["float"][info["net"]] = info
                _save_json(jpath, state)

    # 2. QAT runs, seed-major so a cut-short run still has whole seeds
    arms = {n: [a.to_dict() for a in arms_for(
        budgets, ablation if n in args.ablation_nets.split(",") else None)] for n in nets}
    done = {r["key"] for r in state["runs"]}
    tasks = []
    for seed in seeds:
        for net in nets:
            if seed == seeds[0]:  # deterministic: the cached checkpoint, evaluated once
                tasks.append((net, seed, {"kind": "float", "budget": None, "bits": None,
                                          "fraction": 1.0, "over_budget": False,
                                          "label": "float"}))
            tasks += [(net, seed, a) for a in arms[net]]
    tasks = [t for t in tasks if run_key(*t) not in done]
    print(f"{len(tasks)} runs to do ({len(done)} already in {jpath})", flush=True)
    if tasks:
        with ctx.Pool(args.jobs, initializer=_worker_init, initargs=(cfg,)) as pool:
            for i, res in enumerate(pool.imap_unordered(_run_task, tasks), 1):
                state["runs"].append(res)
                _save_json(jpath, state)
                ok = res["budget_ok"]
                print(f"[{i}/{len(tasks)} {time.perf_counter() - t_all:6.0f}s] {res['net']:12s}"
                      f" seed {res['seed']} {res['arm']['label']:30s} budget "
                      f"{res['arm']['budget']}: acc {res['acc']:.2f}%  avg bits "
                      f"{res['avg_bits']:.3f}  budget ok {ok}  ({res['seconds']:.0f} s)",
                      flush=True)
    write_report(state, out, stem)
    print(f"wrote {out / (stem + '.md')} and {out / (stem + '.png')} "
          f"({time.perf_counter() - t_all:.0f} s)")
    print(table_text(state))
    return 0


# -- report ------------------------------------------------------------------------------
def _group(state: dict[str, Any]):
    """{(net, budget): {label: [runs]}}: each uniform run is listed under every budget it
    serves: ``uniform b-bit`` where b = floor(budget), and ``(over budget)`` where
    b = floor(budget) + 1 for a fractional budget."""
    import math
    from collections import defaultdict

    out: dict[tuple[str, float | None], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_net: dict[str, set] = defaultdict(set)
    for r in state["runs"]:
        if r["arm"]["kind"] in ("pta", "qbitopt"):
            by_net[r["net"]].add(r["arm"]["budget"])
    for r in state["runs"]:
        a = r["arm"]
        budgets = sorted(by_net[r["net"]])
        if a["kind"] == "float":
            out[(r["net"], None)]["float"].append(r)
        elif a["kind"] == "uniform":
            served = False
            for b in budgets:
                if a["bits"] == math.floor(b):
                    out[(r["net"], b)][f"uniform {a['bits']}-bit"].append(r)
                    served = True
                elif b != math.floor(b) and a["bits"] == math.floor(b) + 1:
                    out[(r["net"], b)][f"uniform {a['bits']}-bit (over budget)"].append(r)
                    served = True
            if not served:
                out[(r["net"], a["budget"])][f"uniform {a['bits']}-bit"].append(r)
        else:
            out[(r["net"], a["budget"])][a["label"]].append(r)
    return out


def _order(label: str) -> tuple:
    if label.startswith("uniform"):
        return (0, label)
    if label.startswith("post"):
        return (1, label)
    pct = int(label.split("(")[1].split("%")[0])
    return (2 if pct < 100 else 3, pct)


def _stats(runs: list[dict[str, Any]]):
    from bitalloc_torch.demo.train import summarize

    acc = summarize([r["acc"] for r in runs])
    return {"n": len(runs), "acc": acc[0], "std": acc[1],
            "bits": max(r["avg_bits"] for r in runs),
            "bits_all": max(r["avg_bits_all"] for r in runs),
            "bops": sum(r["bops"] for r in runs) / len(runs),
            "ok": [r["budget_ok"] for r in runs],
            "sec": sum(r["seconds"] for r in runs) / len(runs),
            "seeds": sorted(r["seed"] for r in runs),
            "by_seed": {r["seed"]: r["acc"] for r in runs}}


def _paired(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, int] | None:
    """Mean and std over common seeds of acc(a) - acc(b)."""
    from bitalloc_torch.demo.train import summarize

    common = sorted(set(a["by_seed"]) & set(b["by_seed"]))
    if not common:
        return None
    m, s = summarize([a["by_seed"][k] - b["by_seed"][k] for k in common])
    return m, s, len(common)


def table_text(state: dict[str, Any]) -> str:
    g = _group(state)
    lines = ["| network | budget | arm | top-1 % (mean ± std, n) | avg bits (alloc / all) "
             "| GBOPs | budget ok | s/run |", "|---|---|---|---|---|---|---|---|"]
    nets = sorted({k[0] for k in g}, key=lambda n: NETS.index(n) if n in NETS else 9)
    for net in nets:
        keys = sorted([k for k in g if k[0] == net], key=lambda k: -1 if k[1] is None else k[1])
        for key in keys:
            for label in sorted(g[key], key=lambda s: (-1, s) if s == "float" else _order(s)):
                s = _stats(g[key][label])
                if label == "float":
                    okcol, bits = "-", "32 / 32"
                else:
                    okv = s["ok"]
                    okcol = ("yes" if all(okv) else f"NO ({okv.count(False)})")
                    if "over budget" in label:
                        okcol = "over (labelled)"
                    bits = f"{s['bits']:.3f} / {s['bits_all']:.3f}"
                budget = "-" if key[1] is None else f"{key[1]:g}"
                lines.append(f"| {net} | {budget} | {label} | {s['acc']:.2f} ± {s['std']:.2f} "
                             f"({s['n']}) | {bits} | {s['bops'] / 1e9:.3f} | {okcol} | "
                             f"{s['sec']:.0f} |")
    return "\n".join(lines)


def comparisons(state: dict[str, Any]) -> list[str]:
    """Paired (same seed) differences behind the targets, one line each."""
    g = _group(state)
    lines = []
    for (net, budget), arms in sorted(g.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        if budget is None:
            continue
        st = {label: _stats(runs) for label, runs in arms.items()}
        qb = st.get("QBitOpt (100% realloc)")
        if qb is None:
            continue
        for label, s in sorted(st.items(), key=lambda kv: _order(kv[0])):
            if label == "QBitOpt (100% realloc)":
                continue
            p = _paired(qb, s)
            if p is None:
                continue
            if p[2] < 2:
                verdict = "one seed: no noise estimate"
            elif p[0] - p[1] > 0:
                verdict = "above zero by more than one std"
            elif p[0] + p[1] < 0:
                verdict = "below zero by more than one std"
            else:
                verdict = "within one std of zero"
            lines.append(f"- {net} @ {budget:g} bits: QBitOpt − {label} = {p[0]:+.2f} ± "
                         f"{p[1]:.2f} points (paired over {p[2]} seeds; {verdict} by one std)")
    return lines


def targets(state: dict[str, Any]) -> list[str]:
    g = _group(state)
    out = []
    net = "mobilenetv2"
    if (net, 3.0) not in g:
        return out

    def acc(budget, label):
        runs = g.get((net, budget), {}).get(label)
        return None if not runs else _stats(runs)

    qb3, u3 = acc(3.0, "QBitOpt (100% realloc)"), acc(3.0, "uniform 3-bit")
    if qb3 and u3:
        d = qb3["acc"] - u3["acc"]
        out.append(f"- MobileNetV2-style, 3 bits, QBitOpt ≥ uniform + 1 point: "
                   f"{'MET' if d >= 1 else 'NOT MET'} ({d:+.2f})")
    qb25, u2 = acc(2.5, "QBitOpt (100% realloc)"), acc(2.5, "uniform 2-bit")
    if qb25 and u2:
        d = qb25["acc"] - u2["acc"]
        out.append(f"- MobileNetV2-style, 2.5 bits, QBitOpt above the within-budget uniform "
                   f"2-bit arm: {'MET' if d > 0 else 'NOT MET'} ({d:+.2f})")
    worse = []
    for b in sorted({k[1] for k in g if k[0] == net and k[1] is not None}):
        q, p = acc(b, "QBitOpt (100% realloc)"), acc(b, "post-training alloc (0%)")
        if q and p:
            worse.append((b, q["acc"] - p["acc"]))
    if worse:
        ok = all(d >= 0 for _, d in worse)
        out.append("- MobileNetV2-style, QBitOpt ≥ post-training allocation at every budget: "
                   f"{'MET' if ok else 'NOT MET'} ("
                   + ", ".join(f"{b:g}: {d:+.2f}" for b, d in worse) + ")")
    return out


def _fmt(d: Any) -> str:
    if isinstance(d, dict):
        return ", ".join(f"{k} {v}" for k, v in d.items())
    return str(d)


def layer_table(state: dict[str, Any], net: str, seed: int = 0) -> list[str]:
    """Per-layer bits of the post-training allocation and QBitOpt's final bits."""
    runs = [r for r in state["runs"] if r["net"] == net and r["seed"] == seed
            and r["arm"]["kind"] == "qbitopt" and r["arm"]["fraction"] == 1.0 and "bits" in r]
    if not runs:
        return ["(no QBitOpt run yet)"]
    runs.sort(key=lambda r: r["arm"]["budget"])
    try:
        from bitalloc_torch import quantize_model, quantized_layers

        m = quantize_model(make_net(net))
        mods = quantized_layers(m)
        sizes = {n: x.weight.numel() for n, x in mods.items()}
        kinds = {n: ("depthwise" if getattr(x, "groups", 1) > 1 else
                     "1x1" if getattr(x, "kernel_size", (0,))[0] == 1 else
                     "linear" if not hasattr(x, "groups") else "3x3") for n, x in mods.items()}
    except Exception:  # pragma: no cover - report still renders
        sizes, kinds = {}, {}
    head = "| layer | kind | weights | " + " | ".join(
        f"{r['arm']['budget']:g}: FIT -> QBitOpt" for r in runs) + " |"
    lines = [head, "|---" * (3 + len(runs)) + "|"]
    for name in runs[0]["bits"]:
        cells = []
        for r in runs:
            start = r.get("pta_bits", {}).get(name, r["bits"][name])
            end = r["bits"][name]
            cells.append(f"{start}" if start == end else f"{start} -> **{end}**")
        lines.append(f"| {name} | {kinds.get(name, '?')} | {sizes.get(name, '?')} | "
                     + " | ".join(cells) + " |")
    churn = []
    for r in runs:
        h = r.get("history", [])
        n = sum(a[1][k] != b[1][k] for a, b in zip(h, h[1:]) for k in a[1])
        churn.append(f"{r['arm']['budget']:g} bits: {len(r.get('reallocations', []))} "
                     f"reallocations changed {n} layer bitwidths in total")
    return lines + ["", "Churn: " + "; ".join(churn) + "."]


def write_report(state: dict[str, Any], out: Path, stem: str = "qat") -> None:
    md = out / f"{stem}.md"
    old_analysis = ""
    if md.exists():
        text = md.read_text()
        if ANALYSIS_BEGIN in text and ANALYSIS_END in text:
            old_analysis = text[text.index(ANALYSIS_BEGIN):text.index(ANALYSIS_END)
                                + len(ANALYSIS_END)]
    cfg = state.get("config") or {}
    floats = state.get("float", {})
    runs = state["runs"]
    total = sum(r["seconds"] for r in runs) + sum(f["seconds"] for f in floats.values())
    act = cfg.get("act_bits")
    pt = " --per-tensor" if cfg.get("per_channel", True) is False else ""
    ablated = sorted({r["arm"]["budget"] for r in runs
                      if r["arm"]["kind"] == "qbitopt" and r["arm"]["fraction"] < 1})
    parts = [
        "# Fashion-MNIST QAT study: QBitOpt vs fixed precision and post-training allocation",
        "",
        f"Generated by `python -m benchmarks.qat{pt}` (rebuild from `{stem}.json`: "
        f"`python -m benchmarks.qat{pt} --report`). "
        + ("**Quick smoke configuration - not a result.** " if cfg.get("quick") else ""),
        "",
        "## Setup",
        "",
        f"- Data: Fashion-MNIST (Debian `dataset-fashion-mnist`), a fixed training subset of "
        f"{cfg.get('n_train')} images, {cfg.get('n_val')} more for float early stopping, "
        f"test on {cfg.get('n_test') or 'the full 10000-image'} test set.",
        "- Float models trained once per network to convergence (SGD nesterov, lr 0.05 halved "
        "on each validation plateau, early stop, best epoch kept): "
        + "; ".join(f"{n}: {f['test_acc']:.2f}% test after {f['epochs']} epochs "
                    f"({f['stopped']}, {f['seconds']:.0f} s)" for n, f in floats.items()) + ".",
        f"- QAT: {_fmt(cfg.get('steps'))} steps at batch {cfg.get('batch')} from the float "
        f"checkpoint; weights SGD momentum 0.9 lr {cfg.get('lr')} cosine, quantizer params "
        f"Adam 1e-5; {'per-channel' if cfg.get('per_channel', True) else '**per-tensor**'} "
        "LSQ weights with MSE calibration for the starting bits; "
        "BatchNorm re-estimated before the test evaluation; first and last layer at 8 bits, "
        "outside the budget. "
        + (f"Activations at {act} bits." if act else
           "Weight-only: activations stay float (8-bit activation fake quantization costs "
           "3x the step time on this CPU; all arms share this, the budgets are on weights)."),
        f"- Candidates {cfg.get('candidates')}; budget = size-weighted average weight bits "
        "over the allocated layers (the `avg bits (all)` column includes the 8-bit first/last "
        "layers); checked at every allocation of every run.",
        f"- QBitOpt: tau = {_fmt(cfg.get('every'))} steps (steps/10: the paper's tau = 250 "
        "belongs to runs of ~10^5 steps; here it gives 9 reallocations, each from a FIT mean "
        "over tau mini-batches), greedy solver, FIT from the QAT gradients. It starts from the "
        "post-training allocation, so the ablation's 0 % point is exactly that arm; "
        "reallocation happens strictly before f x steps.",
        "- Reallocation ablation (25 / 50 % of training) on the MobileNetV2-style network at "
        + (", ".join(f"{b:g}" for b in ablated) + " bits." if ablated else "no budget (not run)."),
        ("- Reproduce: `python -m benchmarks.qat --per-tensor --nets mobilenetv2 --budgets 2.5,3 "
         "--ablation-budgets ''` (reuses the float checkpoints of the main study)." if pt else
         "- Reproduce: `python -m benchmarks.qat` (2.5/3/4 bits, both networks, ablation at 3) "
         "then `python -m benchmarks.qat --nets mobilenetv2 --budgets 2.25,2.5 "
         "--ablation-budgets 2.5` (adds 2.25 bits and the ablation at 2.5; finished runs are "
         "skipped)."),
        f"- Seeds vary the QAT batch order, calibration and FIT batches (the float model is "
        f"shared). Total compute {total / 60:.0f} process-minutes (single-threaded processes, "
        "2 at a time, on 2 cores shared with other jobs: the s/run column is inflated by that "
        "contention and is comparable only within this table).",
        "",
        "## Results",
        "",
        table_text(state),
        "",
        f"![accuracy vs average bits]({stem}.png)",
        "",
        "## Targets (MobileNetV2-style network)",
        "",
        *(targets(state) or ["- (not enough runs)"]),
        "",
        "## Paired differences (same seed: same batches, calibration and FIT batches)",
        "",
        *(comparisons(state) or ["- (not enough runs)"]),
        "",
        "## Allocations (MobileNetV2-style, seed 0: post-training FIT -> QBitOpt final)",
        "",
        *layer_table(state, "mobilenetv2"),
        "",
        "## Analysis",
        "",
        old_analysis or f"{ANALYSIS_BEGIN}\n(to be written from the runs)\n{ANALYSIS_END}",
        "",
    ]
    md.write_text("\n".join(parts))
    plot(state, out / f"{stem}.png")


def plot(state: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = _group(state)
    nets = sorted({k[0] for k in g}, key=lambda n: NETS.index(n) if n in NETS else 9)
    if not nets:
        return
    fig, axes = plt.subplots(1, len(nets), figsize=(6.5 * len(nets), 4.5), squeeze=False)
    style = {"uniform": ("s", "tab:gray"), "post": ("^", "tab:orange"),
             "QBitOpt (100": ("o", "tab:blue"), "QBitOpt (50": ("D", "tab:purple"),
             "QBitOpt": ("D", "tab:green")}
    for ax, net in zip(axes[0], nets):
        seen = set()
        for key in [k for k in g if k[0] == net]:
            for label, runs in g[key].items():
                s = _stats(runs)
                if label == "float":
                    ax.axhline(s["acc"], color="k", ls="--", lw=1, label="float")
                    continue
                kind = next(k for k in style if label.startswith(k))
                marker, color = style[kind]
                if "over budget" in label:
                    color = "tab:red"
                name = label if kind != "uniform" else "uniform"
                name = "uniform (over budget)" if "over budget" in label else name
                ax.errorbar(s["bits"], s["acc"], yerr=s["std"], fmt=marker, color=color,
                            capsize=3, label=None if name in seen else name, alpha=0.85)
                seen.add(name)
        ax.set_title(f"{net} (Fashion-MNIST)")
        ax.set_xlabel("average weight bits (allocated layers)")
        ax.set_ylabel("top-1 test accuracy % (mean ± std over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
