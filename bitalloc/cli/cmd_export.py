"""``bitalloc export RESULT.json --to FORMAT``: an allocation to a deployment file.

Targets (see :mod:`bitalloc.export` for each file and the command that reads it):
``llama.cpp`` (``--tensor-type-file`` of llama-quantize), ``autoround`` (layer_config
JSON), ``llmcompressor`` (recipe YAML), ``json`` (plain bit map) and ``gguf`` (a mixed
GGUF written with gguf-py from ``--model SRC.gguf``; needs the ``gguf`` extra).

RESULT.json is the output of ``bitalloc solve --format json`` (``"bits"``: integer
bits become ``int{b}_g{--group-size}``) or any JSON with ``"formats": {tensor: format}``.
Exit codes as the other sub-commands: 2 bad input (naming the JSON path; also an
``--out`` that cannot be written, the text then printed on stdout), 3 infeasible,
4 missing optional dependency.
"""

from __future__ import annotations

import argparse
import sys

from ..export import TARGETS, allocation_from_result, export_text
from ..strict_json import loads
from .common import EXIT_OK, Output

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``export`` sub-command to an argparse sub-parser collection."""
    e = sub.add_parser("export", help="write an allocation as a llama.cpp / AutoRound / "
                       "llm-compressor / JSON / GGUF file")
    e.add_argument("result", help="result JSON ('bits' or 'formats' per tensor); - for stdin")
    e.add_argument("--to", required=True, choices=(*TARGETS, "gguf"), help="target format")
    e.add_argument("--out", default=None, help="output file (default stdout; required for gguf)")
    e.add_argument("--group-size", type=int, default=128,
                   help="group size for integer bits (default 128)")
    e.add_argument("--asym", action="store_true", help="integer bits with a zero point")
    e.add_argument("--model", default=None, help="source GGUF (for --to gguf)")
    e.set_defaults(run=run)


def _load(path: str) -> dict:
    try:
        if path == "-":
            if sys.stdin is None:
                raise ValueError("-: there is no standard input to read the result from")
            return loads(sys.stdin.read())
        with open(path, encoding="utf-8") as f:
            return loads(f.read())
    except OSError as e:
        raise ValueError(f"result: cannot read {path!r} ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ValueError(f"result: {path!r} is not UTF-8 text") from None


def run(args: argparse.Namespace, out: Output) -> int:
    """Run ``bitalloc export``; errors propagate to ``cli.main`` (exit 2/3/4)."""
    allocation = allocation_from_result(_load(args.result), group_size=args.group_size,
                                        symmetric=not args.asym)
    if args.to == "gguf":
        if not args.model or not args.out:
            raise ValueError("--model/--out: --to gguf needs the source GGUF and an output path")
        from ..export_gguf import write_gguf

        plan = write_gguf(args.model, args.out, allocation)
        out.emit(f"wrote {args.out}: {plan.file_bytes} bytes ({plan.data_bytes} of tensor data)")
        return EXIT_OK
    out.emit(export_text(allocation, args.to), args.out)
    return EXIT_OK
