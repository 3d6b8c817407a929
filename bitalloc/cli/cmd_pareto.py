"""``bitalloc pareto PROBLEM.json``: total error against one constraint's limit.

``bitalloc pareto PROBLEM.json [--constraint NAME] [--values V1,V2,...] [--plot out.png]``
prints the Pareto frontier (the whole convex frontier, or exact points at the given
values; see :func:`bitalloc.pareto`) and can draw it (matplotlib, in the ``bench``
extra). The frontier is printed before the plot is drawn: a plot that cannot be
written (bad path, unknown image format) exits 2 but never loses the table.
"""

from __future__ import annotations

import argparse
import math

from ..errors import require
from ..pareto import pareto
from .common import EXIT_OK, Output, add_output_options, json_text, read_problem

__all__ = ["plot_frontier", "register", "run"]


def _parse_values(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = None
    if not values or not all(map(math.isfinite, values)):
        raise ValueError(f"--values: expected comma-separated finite numbers, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def plot_frontier(front, path: str, title: str = "") -> None:
    """Draw a :class:`~bitalloc.Frontier` (objective against usage) to an image file.

    Raises:
        MissingDependencyError: matplotlib is not installed (extra ``bench``).
        OSError, ValueError: the file cannot be written, or its format is unknown.
    """
    mpl = require("matplotlib", "bench", "--plot")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    try:
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
    finally:
        plt.close(fig)


def register(sub) -> None:
    """Add the ``pareto`` sub-command."""
    pa = sub.add_parser("pareto", help="error against one constraint's limit (Pareto sweep)")
    pa.add_argument("problem", help="problem JSON file, or - for stdin")
    pa.add_argument("--constraint", default="average_bits",
                    help="name of the constraint to sweep (default average_bits)")
    pa.add_argument("--values", default=None,
                    help="comma-separated limits to solve at (default: the whole frontier)")
    pa.add_argument("--method", default="auto", help="solver for each value (default auto)")
    pa.add_argument("--max-points", type=_positive_int, default=101,
                    help="at most this many points without --values (default 101)")
    pa.add_argument("--plot", default=None, help="draw the frontier to this image (matplotlib)")
    add_output_options(pa)
    pa.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    """Print the frontier, then draw it when ``--plot`` is given."""
    values = _parse_values(args.values)
    problem = read_problem(args.problem)
    front = pareto(problem, constraint=args.constraint, values=values,
                   method=args.method, max_points=args.max_points, time_limit=args.time_limit)
    if args.format == "json":
        out.emit(json_text(front.to_dict(problem.names), "frontier"), args.out)
    else:
        out.emit(front.table(), args.out)
    if args.plot:
        try:
            plot_frontier(front, args.plot)
        except (OSError, ValueError) as e:  # bad folder, no permission, unknown format
            reason = getattr(e, "strerror", None) or str(e).splitlines()[0]
            out.fail(f"--plot {args.plot}: cannot write the plot ({reason}); "
                     f"the frontier is printed above")
    return EXIT_OK
