"""``bitalloc solve PROBLEM.json``: one allocation with its certificate."""

from __future__ import annotations

import argparse

import numpy as np

from ..solve import solve
from ..solvers import SOLVERS
from .common import EXIT_OK, Output, add_output_options, json_text, read_problem

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``solve`` sub-command to an argparse sub-parser collection."""
    s = sub.add_parser("solve", help="solve one problem file")
    s.add_argument("problem", help="problem JSON file (DESIGN.md section 4), or - for stdin")
    s.add_argument("--method", default="auto",
                   help=f"one of {sorted(SOLVERS)} (default auto; ilp = the fast exact path, "
                        "ilp_onehot = the plain one-hot CP-SAT reference)")
    add_output_options(s)
    s.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    """Solve, then print the result (table or JSON) to stdout or ``--out``."""
    problem = read_problem(args.problem)
    res = solve(problem, method=args.method, time_limit=args.time_limit)
    if args.format == "json":
        text = json_text(res.to_dict())
    else:
        errs = problem.errors[np.arange(problem.n_groups), problem.bit_index(res.bits)]
        text = res.table(errors=errs, max_rows=None)
    out.emit(text, args.out)
    return EXIT_OK
