"""The ``bitalloc`` command line: ``solve``, ``compare`` and ``pareto`` sub-commands.

``bitalloc pareto PROBLEM.json [--constraint NAME] [--values V1,V2,...] [--plot out.png]``
prints the Pareto frontier of total error against one constraint (the whole convex
frontier, or exact points at the given values; see :func:`bitalloc.pareto`) and
can draw it (matplotlib, in the ``bench`` extra).

Exit codes: 0 success, 2 bad input (message on stderr names the field),
3 infeasible (message names the constraint and its reachable minimum),
4 the chosen method's optional dependency is missing (message names the extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .cli_export import add_parser as add_export_parser
from .errors import InfeasibleError, MissingDependencyError, require
from .io import load_problem
from .pareto import pareto
from .solve import solve
from .solvers import SOLVERS

__all__ = ["main", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_INFEASIBLE", "EXIT_MISSING_DEPENDENCY"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_INFEASIBLE, EXIT_MISSING_DEPENDENCY = 0, 2, 3, 4
COMPARE_METHODS = ("greedy", "fractional", "lagrangian", "exact", "ilp")


def _emit(text: str, out: str | None) -> None:
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    else:
        print(text)


def _cmd_solve(args: argparse.Namespace) -> int:
    problem = load_problem(args.problem)
    res = solve(problem, method=args.method, time_limit=args.time_limit)
    if args.format == "json":
        _emit(json.dumps(res.to_dict(), indent=1), args.out)
    else:
        errs = problem.errors[range(problem.n_groups), problem.bit_index(res.bits)]
        _emit(res.table(errors=errs, max_rows=None), args.out)
    return EXIT_OK


def compare_rows(problem, methods: Sequence[str], time_limit: float | None) -> list[dict]:
    """Run each method on one problem; one row per method (``error`` when it could not run)."""
    rows = []
    for m in methods:
        try:
            r = solve(problem, method=m, time_limit=time_limit)
        except MissingDependencyError as e:
            rows.append({"method": m, "error": str(e)})
            continue
        feasible = all(val <= mx + 1e-12 * max(abs(mx), 1.0) for val, mx in r.usage.values())
        rows.append({"method": m, "status": r.status, "objective": r.objective, "bound": r.bound,
                     "gap": r.gap, "seconds": r.seconds, "feasible": feasible,
                     "usage": {k: u[0] for k, u in r.usage.items()}})
    return rows


def format_compare(rows: list[dict]) -> str:
    """Side-by-side table of :func:`compare_rows` output."""
    head = f"{'method':<11} {'status':<9} {'objective':>14} {'bound':>14} {'gap':>9} " \
           f"{'seconds':>8}  feasible"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['method']:<11} unavailable: {r['error']}")
            continue
        lines.append(f"{r['method']:<11} {r['status']:<9} {r['objective']:>14.8g} "
                     f"{r['bound']:>14.8g} {r['gap']:>9.2e} {r['seconds']:>8.3f}  "
                     f"{'yes' if r['feasible'] else 'NO'}")
    best = min((r["objective"] for r in rows if "error" not in r), default=None)
    if best is not None:
        lines.append(f"best objective {best:.10g}; usage of each: " + "; ".join(
            f"{r['method']} " + ", ".join(f"{k}={u:.6g}" for k, u in r["usage"].items())
            for r in rows if "error" not in r))
    return "\n".join(lines)


def _cmd_compare(args: argparse.Namespace) -> int:
    problem = load_problem(args.problem)
    methods = args.methods.split(",") if args.methods else list(COMPARE_METHODS)
    for m in methods:
        if m not in SOLVERS:
            raise ValueError(f"--methods: unknown method {m!r}; expected some of {sorted(SOLVERS)}")
    rows = compare_rows(problem, methods, args.time_limit)
    if args.format == "json":
        _emit(json.dumps(rows, indent=1), args.out)
    else:
        _emit(f"{problem!r}\n" + format_compare(rows), args.out)
    return EXIT_OK


def _parse_values(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--values: expected comma-separated numbers, got {text!r}") from None


def plot_frontier(front, path: str, title: str = "") -> None:
    """Draw a :class:`~bitalloc.Frontier` (objective against usage) to an image file."""
    mpl = require("matplotlib", "bench", "--plot")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(front.usage, front.objective, "o-", ms=3, label="allocation")
    if any(o - b > 1e-9 * abs(o) for o, b in zip(front.objective, front.bound)):
        ax.plot(front.values, front.bound, "--", lw=1, label="lower bound")
        ax.legend()
    ax.set_xlabel(front.constraint)
    ax.set_ylabel("total error")
    if (front.objective > 0).all():
        ax.set_yscale("log")
    ax.set_title(title or f"Pareto frontier over {front.constraint}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _cmd_pareto(args: argparse.Namespace) -> int:
    problem = load_problem(args.problem)
    front = pareto(problem, constraint=args.constraint, values=_parse_values(args.values),
                   method=args.method, max_points=args.max_points, time_limit=args.time_limit)
    if args.plot:
        plot_frontier(front, args.plot)
    if args.format == "json":
        _emit(json.dumps(front.to_dict(problem.names), indent=1), args.out)
    else:
        _emit(front.table(), args.out)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands ``solve``, ``compare`` and ``pareto``)."""
    parser = argparse.ArgumentParser(
        prog="bitalloc", description="Mixed-precision bitwidth allocation with proven bounds.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", add_help=False,
                   help="QAT on digits: uniform vs QBitOpt (`bitalloc demo --help`; needs torch)")
    s = sub.add_parser("solve", help="solve one problem file")
    s.add_argument("problem", help="problem JSON file (DESIGN.md section 4)")
    s.add_argument("--method", default="auto", help=f"one of {sorted(SOLVERS)} (default auto)")
    s.set_defaults(func=_cmd_solve)
    c = sub.add_parser("compare", help="run every available method on one problem")
    c.add_argument("problem", help="problem JSON file")
    c.add_argument("--methods", default=None,
                   help=f"comma-separated methods (default {','.join(COMPARE_METHODS)})")
    c.set_defaults(func=_cmd_compare)
    pa = sub.add_parser("pareto", help="error against one constraint's limit (Pareto sweep)")
    pa.add_argument("problem", help="problem JSON file")
    pa.add_argument("--constraint", default="average_bits",
                    help="name of the constraint to sweep (default average_bits)")
    pa.add_argument("--values", default=None,
                    help="comma-separated limits to solve at (default: the whole frontier)")
    pa.add_argument("--method", default="auto", help="solver for each value (default auto)")
    pa.add_argument("--max-points", type=int, default=101,
                    help="at most this many points without --values (default 101)")
    pa.add_argument("--plot", default=None, help="draw the frontier to this image (matplotlib)")
    pa.set_defaults(func=_cmd_pareto)
    add_export_parser(sub)
    for p in (s, c, pa):
        p.add_argument("--time-limit", type=float, default=None, help="seconds (exact solver)")
        p.add_argument("--format", choices=("table", "json"), default="table")
        p.add_argument("--out", default=None, help="write the output to this file")
    return parser


def _demo(argv: list[str]) -> int:
    """``bitalloc demo``: QAT on digits, uniform vs QBitOpt (needs the ``demo`` extra).

    Parsed by the demo's own parser, so ``bitalloc solve`` never imports torch.
    """
    try:
        from bitalloc_torch.demo.run import main as demo_main
    except ImportError as e:
        print(f"bitalloc: the demo needs torch and scikit-learn; install them with "
              f"`pip install 'bitalloc[demo]'` ({e})", file=sys.stderr)
        return EXIT_MISSING_DEPENDENCY
    return demo_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bitalloc`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        return _demo(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InfeasibleError as e:
        print(f"bitalloc: infeasible: {e}", file=sys.stderr)
        return EXIT_INFEASIBLE
    except MissingDependencyError as e:
        print(f"bitalloc: {e}", file=sys.stderr)
        return EXIT_MISSING_DEPENDENCY
    except ValueError as e:
        print(f"bitalloc: bad input: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
