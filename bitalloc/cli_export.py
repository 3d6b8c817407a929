"""``bitalloc export RESULT.json --to FORMAT``: an allocation to a deployment file.

Targets (see :mod:`bitalloc.export` for each file and the command that reads it):
``llama.cpp`` (``--tensor-type-file`` of llama-quantize), ``autoround`` (layer_config
JSON), ``llmcompressor`` (recipe YAML), ``json`` (plain bit map) and ``gguf`` (a mixed
GGUF written with gguf-py from ``--model SRC.gguf``; needs the ``gguf`` extra).

RESULT.json is the output of ``bitalloc solve --format json`` (``"bits"``: integer
bits become ``int{b}_g{--group-size}``) or any JSON with ``"formats": {tensor: format}``.
Exit codes as the other sub-commands: 2 bad input (naming the JSON path), 3 infeasible,
4 missing optional dependency.
"""

from __future__ import annotations

import argparse
import json
import sys

from .export import TARGETS, allocation_from_result, export_text

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to ``build_parser()``'s sub-parsers."""
    e = subparsers.add_parser("export", help="write an allocation as a llama.cpp / AutoRound / "
                              "llm-compressor / JSON / GGUF file")
    e.add_argument("result", help="result JSON ('bits' or 'formats' per tensor); - for stdin")
    e.add_argument("--to", required=True, choices=(*TARGETS, "gguf"), help="target format")
    e.add_argument("--out", default=None, help="output file (default stdout; required for gguf)")
    e.add_argument("--group-size", type=int, default=128,
                   help="group size for integer bits (default 128)")
    e.add_argument("--asym", action="store_true", help="integer bits with a zero point")
    e.add_argument("--model", default=None, help="source GGUF (for --to gguf)")
    e.set_defaults(func=run)
    return e


def _load(path: str) -> dict:
    try:
        if path == "-":
            return json.load(sys.stdin)
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ValueError(f"result: cannot read {path!r} ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"$: not valid JSON ({e.msg} at line {e.lineno})") from None


def run(args: argparse.Namespace) -> int:
    """Run ``bitalloc export``; errors propagate to ``cli.main`` (exit 2/3/4)."""
    allocation = allocation_from_result(_load(args.result), group_size=args.group_size,
                                        symmetric=not args.asym)
    if args.to == "gguf":
        if not args.model or not args.out:
            raise ValueError("--model/--out: --to gguf needs the source GGUF and an output path")
        from .export_gguf import write_gguf

        plan = write_gguf(args.model, args.out, allocation)
        print(f"wrote {args.out}: {plan.file_bytes} bytes ({plan.data_bytes} of tensor data)")
        return 0
    text = export_text(allocation, args.to)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
