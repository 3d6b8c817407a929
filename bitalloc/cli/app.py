"""The ``bitalloc`` entry point: sub-command registry, error to exit-code mapping, pipes.

To add a sub-command, write ``bitalloc/cli/cmd_<name>.py`` with ``register(sub)``
(which calls ``sub.add_parser(...)`` and ``set_defaults(run=run)``, where
``run(args, out: Output) -> int``) and append the module to :data:`COMMANDS`. A module
with ``add_parser(sub)`` and ``set_defaults(func=run)``, ``run(args) -> int``, works
too (it then writes its own output). A sub-command that parses its own arguments
(``demo``) also defines ``NAME`` and ``run_argv(argv) -> int``. Errors raised by a
sub-command become exit codes here (see :mod:`bitalloc.cli`).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from . import cmd_compare, cmd_demo, cmd_export, cmd_pareto, cmd_solve
from .common import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INFEASIBLE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_MISSING_DEPENDENCY,
    EXIT_OK,
    Output,
    ResultNotWritable,
    exit_code_of,
)

__all__ = ["COMMANDS", "main", "build_parser", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_INFEASIBLE",
           "EXIT_MISSING_DEPENDENCY", "EXIT_INTERNAL", "EXIT_BROKEN_PIPE"]

#: The sub-command modules, in the order ``bitalloc --help`` lists them.
COMMANDS = (cmd_solve, cmd_compare, cmd_pareto, cmd_export, cmd_demo)

_PREFIX = {EXIT_BAD_INPUT: "bad input: ", EXIT_INFEASIBLE: "infeasible: ",
           EXIT_MISSING_DEPENDENCY: ""}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="bitalloc", description="Mixed-precision bitwidth allocation with proven bounds.")
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in COMMANDS:
        (cmd.register if hasattr(cmd, "register") else cmd.add_parser)(sub)
    return parser


def _report(e: Exception) -> int:
    code = exit_code_of(e)
    if isinstance(e, ResultNotWritable):
        print(f"bitalloc: {e}", file=sys.stderr)
    elif code == EXIT_INTERNAL:
        if os.environ.get("BITALLOC_DEBUG"):
            traceback.print_exc()
        print(f"bitalloc: internal error (a bug; please report it): {type(e).__name__}: {e} "
              f"(BITALLOC_DEBUG=1 shows the traceback)", file=sys.stderr)
    else:
        print(f"bitalloc: {_PREFIX[code]}{e}", file=sys.stderr)
    return code


def _dispatch(argv: list[str]) -> int:
    own = {cmd.NAME: cmd.run_argv for cmd in COMMANDS if hasattr(cmd, "run_argv")}
    out = Output()
    try:
        if argv[:1] and argv[0] in own:
            code = own[argv[0]](argv[1:])
        else:
            args = build_parser().parse_args(argv)
            code = args.run(args, out) if hasattr(args, "run") else args.func(args)
    except BrokenPipeError:
        raise  # handled by main()
    except Exception as e:  # every error becomes a message and an exit code, not a traceback
        code = _report(e)
    for msg in out.failures:  # after the output itself: the result is never lost
        print(f"bitalloc: {msg}", file=sys.stderr)
    return code if code != EXIT_OK or not out.failures else EXIT_BAD_INPUT


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured)
        sys.stdout = open(os.devnull, "w", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bitalloc`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _dispatch(argv)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, like `cat`
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("bitalloc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
