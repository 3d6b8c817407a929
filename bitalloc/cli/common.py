"""What every sub-command shares: exit codes, reading the problem, writing the output."""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import InfeasibleError, MissingDependencyError
from ..io import load_problem, loads_problem
from ..problem import Problem
from ..strict_json import dumps

__all__ = ["EXIT_OK", "EXIT_INTERNAL", "EXIT_BAD_INPUT", "EXIT_INFEASIBLE",
           "EXIT_MISSING_DEPENDENCY", "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE", "Output",
           "ResultNotWritable", "read_problem", "json_text", "add_output_options",
           "positive_seconds", "exit_code_of"]

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INFEASIBLE, EXIT_MISSING_DEPENDENCY = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cat` killed by `| head`
_PIECE = 1 << 15  # characters per write to stdout


class ResultNotWritable(Exception):
    """The result cannot be written in the requested format (e.g. a non-finite number)."""


def exit_code_of(e: BaseException) -> int:
    """The exit code for an error a sub-command raised."""
    if isinstance(e, InfeasibleError):
        return EXIT_INFEASIBLE
    if isinstance(e, MissingDependencyError):
        return EXIT_MISSING_DEPENDENCY
    if isinstance(e, (ValueError, ResultNotWritable)):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL


class Output:
    """Where a sub-command's text goes: stdout, or ``--out FILE``.

    A file that cannot be written never loses the result: the text goes to stdout
    instead and the failure is recorded in :attr:`failures` (the command then exits 2
    with those messages on stderr).
    """

    def __init__(self) -> None:
        self.failures: list[str] = []

    def emit(self, text: str, path: str | None = None) -> None:
        """Write ``text`` (a newline is added) to ``path``, or stdout when it is None or ``-``."""
        text = text if text.endswith("\n") else text + "\n"
        if path is not None and path != "-":
            try:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                return
            except OSError as e:
                self.fail(f"--out {path}: cannot write ({e.strerror or e}); "
                          f"the result is printed on stdout instead")
        # In pieces: a write cut short by a closed pipe is reported as a short count, not an
        # error, so one big write could lose the tail silently; the next piece raises
        # BrokenPipeError (main() then exits 141).
        for i in range(0, len(text), _PIECE):
            sys.stdout.write(text[i:i + _PIECE])
            sys.stdout.flush()

    def fail(self, message: str) -> None:
        """Record a failure to report on stderr after the output is printed."""
        self.failures.append(message)


def read_problem(arg: str) -> Problem:
    """The problem named on the command line: a file path, or ``-`` for standard input."""
    if arg != "-":
        return load_problem(arg)
    stream = sys.stdin
    if stream is None:
        raise ValueError("-: there is no standard input to read the problem from")
    try:
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    except (OSError, ValueError) as e:  # closed or unreadable stdin
        raise ValueError(f"-: cannot read the problem from standard input ({e})") from None
    return loads_problem(data)


def json_text(obj, what: str = "result") -> str:
    """Standard JSON text of ``obj`` (never ``NaN``/``Infinity``)."""
    try:
        return dumps(obj, indent=1)
    except ValueError as e:
        raise ResultNotWritable(f"cannot write the {what} as JSON: {e}") from None


def positive_seconds(text: str) -> float:
    """argparse type of ``--time-limit``: a positive finite number of seconds."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return v


def add_output_options(p: argparse.ArgumentParser) -> None:
    """``--time-limit``, ``--format`` and ``--out``, shared by the solving sub-commands."""
    p.add_argument("--time-limit", type=positive_seconds, default=None,
                   help="seconds (exact solvers)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--out", default=None,
                   help="write the output to this file (if it cannot be written, the output "
                        "goes to stdout and the exit code is 2)")
