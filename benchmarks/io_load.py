"""Problem-file loading and saving at scale (issue 8: linear-time loading).

Run ``python -m benchmarks.io_load`` (about 3 minutes on 2 cores) or ``--quick``.
Writes ``benchmarks/results/io_load.md`` unless ``--out`` says elsewhere.

Files: ``N`` groups named ``layer{i}.weight`` with an integer size; ``sens``: a
``sensitivity`` each; ``errors``: a 7-value ``errors`` table and ``macs`` each (7x the
numbers). Baseline in the same run: Python's own ``json.loads`` of the same bytes (what
any JSON loader must pay); ``strict`` adds the duplicate-key / NaN checks
(:func:`bitalloc.strict_json.loads`); ``load_problem`` is the whole path from the file to a
validated :class:`bitalloc.Problem`. Each time is the median of ``runs`` runs. Each save
writes a new file: rewriting the same file made the repeated saves of one run about 4x
slower than the first (presumably the file system flushing the truncated file to the
shared disk), which measures the disk, not the serialisation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from itertools import count
from pathlib import Path

import numpy as np

from bitalloc.io import load_problem, save_problem
from bitalloc.strict_json import loads

# Measured in this session on the loader before the change (commit 18082b5, which checked
# duplicate names with ``names.index`` per group), same machine, same generated file:
BEFORE = {80_000: "53.1 s", 1_000_000: "not finished after 300 s (killed)"}


def _write(path: Path, n: int, kind: str) -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 10_000, n).tolist()
    if kind == "sens":
        sens = rng.random(n).tolist()
        groups = [{"name": f"layer{i}.weight", "size": sizes[i], "sensitivity": sens[i]}
                  for i in range(n)]
    else:
        errs = np.sort(rng.random((n, 7)), axis=1)[:, ::-1].tolist()
        macs = (np.array(sizes) * 49).tolist()
        groups = [{"name": f"layer{i}.weight", "size": sizes[i], "errors": errs[i],
                   "macs": macs[i]} for i in range(n)]
    path.write_text(json.dumps({"bits": [2, 3, 4, 5, 6, 7, 8], "groups": groups,
                                "constraints": [{"type": "average_bits", "max": 4.0}]}))


def _median(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4 and 8*10^4 groups only")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "io_load.md"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = (10_000, 80_000) if args.quick else (80_000, 1_000_000)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            for kind in ("sens", "errors"):
                path = Path(d) / f"{kind}{n}.json"
                _write(path, n, kind)
                raw = path.read_bytes()
                base = _median(lambda raw=raw: json.loads(raw), args.runs)
                strict = _median(lambda raw=raw: loads(raw.decode()), args.runs)
                full = _median(lambda path=path: load_problem(path), args.runs)
                p = load_problem(path)
                names = (Path(d) / f"out{n}{kind}{i}.json" for i in count())  # a new file each
                save = _median(lambda p=p, names=names: save_problem(p, next(names)), args.runs)
                rows.append((n, kind, len(raw) / 2**20, base, strict, full, full / base, save))
                print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    lines = [
        "# Loading problem files", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs "
        f"(load average {load:.1f} at the end), Python {platform.python_version()}, "
        f"numpy {np.__version__}; medians of {args.runs} runs. "
        "`python -m benchmarks.io_load`.", "",
        "| groups | file | MiB | json.loads (baseline) s | strict JSON s | load_problem s "
        "| load / baseline | save_problem s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, kind, mib, base, strict, full, ratio, save in rows:
        lines.append(f"| {n:,} | {kind} | {mib:.1f} | {base:.2f} | {strict:.2f} | {full:.2f} "
                     f"| {ratio:.2f}x | {save:.2f} |")
    lines += ["", "Before the change (the `sens` file, same machine, measured once): " +
              "; ".join(f"{n:,} groups: {t}" for n, t in BEFORE.items()) + ".", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
