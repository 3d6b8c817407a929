"""``bitalloc compare PROBLEM.json``: every method side by side on one problem.

A method that fails (missing dependency, a false infeasibility, a solver error) gets a
row whose status is ``"error: <short reason>"`` and the comparison goes on; the
command fails only when no method produced an allocation.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..errors import InfeasibleError, MissingDependencyError
from ..problem import Problem
from ..solve import solve
from ..solvers import SOLVERS
from .common import EXIT_OK, Output, add_output_options, exit_code_of, json_text, read_problem

__all__ = ["COMPARE_METHODS", "compare_rows", "format_compare", "register", "run"]

#: ``ilp`` is the fast exact path (Lagrangian bound, reduced-cost fixing, CP-SAT core);
#: ``ilp_onehot`` the plain one-hot CP-SAT model, kept as the reference.
COMPARE_METHODS = ("greedy", "fractional", "lagrangian", "exact", "ilp", "ilp_onehot")
_REASON_CHARS = 100


def short_reason(e: BaseException) -> str:
    """One line (at most 100 characters) saying why a method failed."""
    msg = (str(e).splitlines() or [""])[0] or type(e).__name__
    if isinstance(e, InfeasibleError):
        text = f"infeasible ({msg})"
    elif isinstance(e, MissingDependencyError):
        text = f"missing dependency ({msg})"
    elif isinstance(e, ValueError):
        text = msg
    else:
        text = f"{type(e).__name__}: {msg}"
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS - 3] + "..."


def compare_rows(problem: Problem, methods: Sequence[str],
                 time_limit: float | None) -> list[dict]:
    """Run each method on one problem; one row per method.

    A successful row has ``status`` (``"optimal"``/``"feasible"``), ``objective``,
    ``bound``, ``gap``, ``seconds``, ``feasible`` (checked by :meth:`Problem.fits`) and
    ``usage``; a failed one has ``status`` ``"error: <short reason>"`` and ``error``
    (the exception's type and full message).
    """
    return [row for row, _ in _run_methods(problem, methods, time_limit)]


def _run_methods(problem: Problem, methods: Sequence[str], time_limit: float | None):
    out: list[tuple[dict, Exception | None]] = []
    for m in methods:
        try:
            r = solve(problem, method=m, time_limit=time_limit)
        except Exception as e:  # any failure: reported in its row, the others run
            out.append(({"method": m, "status": f"error: {short_reason(e)}",
                         "error": f"{type(e).__name__}: {e}"}, e))
            continue
        out.append(({"method": m, "status": r.status, "objective": r.objective,
                     "bound": r.bound, "gap": r.gap, "seconds": r.seconds,
                     "feasible": bool(problem.fits(r.bits)),
                     "usage": {k: u[0] for k, u in r.usage.items()}}, None))
    return out


def format_compare(rows: list[dict]) -> str:
    """Side-by-side table of :func:`compare_rows` output (failed methods marked)."""
    head = f"{'method':<11} {'status':<9} {'objective':>14} {'bound':>14} {'gap':>9} " \
           f"{'seconds':>8}  feasible"
    lines = [head, "-" * len(head)]
    ok = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['method']:<11} {r['status']}")
            continue
        lines.append(f"{r['method']:<11} {r['status']:<9} {r['objective']:>14.8g} "
                     f"{r['bound']:>14.8g} {r['gap']:>9.2e} {r['seconds']:>8.3f}  "
                     f"{'yes' if r['feasible'] else 'NO'}")
    if ok:
        best = min(r["objective"] for r in ok)
        lines.append(f"best objective {best:.10g}; usage of each: " + "; ".join(
            f"{r['method']} " + ", ".join(f"{k}={u:.6g}" for k, u in r["usage"].items())
            for r in ok))
    return "\n".join(lines)


def register(sub) -> None:
    """Add the ``compare`` sub-command."""
    c = sub.add_parser("compare", help="run every available method on one problem")
    c.add_argument("problem", help="problem JSON file, or - for stdin")
    c.add_argument("--methods", default=None,
                   help=f"comma-separated methods (default {','.join(COMPARE_METHODS)})")
    add_output_options(c)
    c.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    """Print the comparison; exit 0 when at least one method produced an allocation."""
    methods = [m.strip() for m in args.methods.split(",")] if args.methods \
        else list(COMPARE_METHODS)
    for m in methods:
        if m not in SOLVERS:
            raise ValueError(f"--methods: unknown method {m!r}; expected some of {sorted(SOLVERS)}")
    problem = read_problem(args.problem)
    ran = _run_methods(problem, methods, args.time_limit)
    rows, errors = [row for row, _ in ran], [e for _, e in ran if e is not None]
    if args.format == "json":
        out.emit(json_text(rows, "comparison"), args.out)
    else:
        out.emit(f"{problem!r}\n" + format_compare(rows), args.out)
    if len(errors) == len(rows):  # nothing to compare: fail like `solve` would
        out.fail(f"every method failed; the first: {rows[0]['status']}")
        return exit_code_of(errors[0])
    return EXIT_OK
