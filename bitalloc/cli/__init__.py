"""The ``bitalloc`` command line: ``solve``, ``compare``, ``pareto``, ``export`` and ``demo``.

``bitalloc solve PROBLEM.json [--method M] [--time-limit S] [--format table|json] [--out FILE]``
(``-`` for ``PROBLEM.json`` reads the problem from standard input; the same for
``compare`` and ``pareto``).

Exit codes:

- 0: success;
- 2: bad input (the message on stderr names the JSON path or the option), or an output
  that could not be written (``--out``, ``--plot``: the result is then printed on
  stdout anyway, never lost);
- 3: infeasible (the message names the constraint and its reachable minimum);
- 4: an optional dependency is missing (the message names the extra to install);
- 1: an internal error (a bug: the message says so; ``BITALLOC_DEBUG=1`` shows the
  traceback);
- 130: interrupted (Ctrl-C);
- 141: standard output was closed early (``bitalloc compare p.json | head -1``): like
  ``cat`` or ``grep`` killed by SIGPIPE, quietly, without a traceback.

Each sub-command lives in its own module (``cmd_*.py``) with a ``register(subparsers)``
function; :data:`bitalloc.cli.app.COMMANDS` lists them.
"""

from .app import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INFEASIBLE,
    EXIT_INTERNAL,
    EXIT_MISSING_DEPENDENCY,
    EXIT_OK,
    build_parser,
    main,
)
from .cmd_compare import COMPARE_METHODS, compare_rows, format_compare
from .cmd_pareto import plot_frontier

__all__ = ["main", "build_parser", "compare_rows", "format_compare", "plot_frontier",
           "COMPARE_METHODS", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_INFEASIBLE",
           "EXIT_MISSING_DEPENDENCY", "EXIT_INTERNAL", "EXIT_BROKEN_PIPE"]
