"""``bitalloc demo``: Fashion-MNIST, uniform vs bitalloc post-training and after QAT.

Needs the ``demo`` extra.

The demo lives in the torch adapter and parses its own options (``bitalloc demo
--help``). The core never imports the adapter statically: the demo module is looked
up by name with :func:`importlib.import_module` (through :func:`bitalloc.errors.require`)
only when ``bitalloc demo`` runs, so ``import bitalloc.cli`` stays light and the
import-linter contract "bitalloc never imports bitalloc_torch" holds.
"""

from __future__ import annotations

from ..errors import require

__all__ = ["NAME", "register", "run_argv"]

NAME = "demo"
_DEMO_MODULE = "bitalloc_torch.demo.run"


def register(sub) -> None:
    """Add ``demo`` to the help listing (its options are parsed by the demo itself)."""
    sub.add_parser(NAME, add_help=False,
                   help="Fashion-MNIST: uniform vs bitalloc, post-training and after QAT "
                        "(`bitalloc demo --help`; needs torch)")


def run_argv(argv: list[str]) -> int:
    """Run the demo with its own arguments; its exit code.

    Raises:
        MissingDependencyError: torch or scikit-learn (extra ``demo``) is not installed.
    """
    return require(_DEMO_MODULE, "demo", "bitalloc demo").main(argv)
