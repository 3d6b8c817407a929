"""Deployment formats as allocation candidates, with their exact storage cost.

A *format* stores a tensor in blocks of ``block`` consecutive weights of one row;
each block takes ``block_bits`` bits, scales and zero points included. A tensor of
``n`` weights (row length divisible by ``block``) therefore takes exactly
``n / block * block_bits`` bits, and a budget in bytes or bits per weight is exact
for the target format, not an estimate from the nominal bitwidth.

The table (bits per weight = ``block_bits / block``):

=========  =====  ==========  ======  =================================================
format     block  block bytes  bpw    source
=========  =====  ==========  ======  =================================================
F32            1        4     32      ``gguf.GGML_QUANT_SIZES[F32] == (1, 4)``
F16/BF16       1        2     16      ``(1, 2)``
Q8_0          32       34      8.5    ``(32, 2 + 32)``: fp16 scale + 32 int8
Q6_K         256      210      6.5625 ``(256, 2 + 128 + 64 + 16)``
Q5_1          32       24      6.0    ``(32, 2 + 2 + 4 + 16)``: fp16 scale, fp16 min, high bits
Q5_K         256      176      5.5    ``(256, 2 + 2 + 128 + 32 + 12)``
Q5_0          32       22      5.5    ``(32, 2 + 4 + 16)``
Q4_1          32       20      5.0    ``(32, 2 + 2 + 16)``
Q4_K         256      144      4.5    ``(256, 2 + 2 + 128 + 12)``
Q4_0          32       18      4.5    ``(32, 2 + 16)``: fp16 scale + 32 nibbles
IQ4_NL        32       18      4.5    ``(32, 2 + 16)``
MXFP4         32       17      4.25   ``(32, 1 + 16)``: e8m0 scale + 32 fp4
IQ4_XS       256      136      4.25   ``(256, 2 + 2 + 128 + 4)``
Q3_K         256      110      3.4375 ``(256, 2 + 64 + 32 + 12)``
Q2_K         256       84      2.625  ``(256, 2 + 2 + 16 + 64)``
TQ2_0        256       66      2.0625 ``(256, 2 + 64)``: fp16 scale + 2-bit ternary
TQ1_0        256       54      1.6875 ``(256, 2 + 4 * 13)``: fp16 scale + base-3 packing
=========  =====  ==========  ======  =================================================

The ggml figures are ``GGML_QUANT_SIZES`` of gguf-py 0.19 (``gguf/constants.py``,
the same table as ``ggml/src/ggml-common.h``); ``tests/test_formats.py`` checks every
entry against the installed gguf package. gguf-py itself can *write* only F32, F16,
BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, TQ1_0 and TQ2_0 (:data:`GGUF_PY_WRITES`);
the K- and IQ- types are for llama-quantize (``--tensor-type-file``).

Integer group formats ``int{b}_g{g}`` (AutoRound, llm-compressor, torchao):
``b`` bits per weight plus one fp16 scale per group of ``g`` weights, that is
``b + 16/g`` bits per weight; ``uint{b}_g{g}`` (asymmetric) adds an fp16 zero point,
``b + 32/g``. Packing waste of the runtime (e.g. int32 words) is not counted.

Candidates are coded as bits ``1..K`` of a :class:`~bitalloc.Problem` (sorted by
bits per weight) and the budget is an exact :class:`~bitalloc.LinearBudget` in bytes
named ``"bytes"``; :class:`FormatProblem` maps codes back to format names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .constraints import Constraint, LinearBudget
from .errors import InfeasibleError
from .problem import Problem

__all__ = ["Format", "GGML_FORMATS", "GGUF_PY_WRITES", "get_format", "format_table",
           "FormatProblem", "format_problem", "tensor_bytes"]


@dataclass(frozen=True)
class Format:
    """One storage format.

    Attributes:
        name: ``"Q4_0"``, ``"int4_g128"``, ...
        block: weights per block (ggml block size or quantization group size).
        block_bits: bits per block, scales and zero points included.
        bits: the nominal integer bitwidth of a weight (4 for Q4_0 and int4_g128).
        kind: ``"ggml"`` or ``"int"``.
        symmetric: ``False`` when the format stores a zero point / minimum.
    """

    name: str
    block: int
    block_bits: int
    bits: int
    kind: str
    symmetric: bool = True

    @property
    def bits_per_weight(self) -> float:
        """Exact storage bits per weight (``block_bits / block``)."""
        return self.block_bits / self.block

    @property
    def group_size(self) -> int:
        return self.block

    def bits_for(self, n_weights: int) -> int:
        """Exact bits to store ``n_weights`` weights (must be a multiple of ``block``)."""
        if n_weights % self.block:
            raise ValueError(f"n_weights: {n_weights} is not a multiple of {self.name}'s "
                             f"block of {self.block}")
        return n_weights // self.block * self.block_bits


# name: (block, block bytes, nominal bits, symmetric) -- GGML_QUANT_SIZES of gguf-py 0.19.
_GGML = {
    "F32": (1, 4, 32, True), "F16": (1, 2, 16, True), "BF16": (1, 2, 16, True),
    "Q8_0": (32, 34, 8, True), "Q6_K": (256, 210, 6, True), "Q5_1": (32, 24, 5, False),
    "Q5_K": (256, 176, 5, False), "Q5_0": (32, 22, 5, True), "Q4_1": (32, 20, 4, False),
    "Q4_K": (256, 144, 4, False), "Q4_0": (32, 18, 4, True), "IQ4_NL": (32, 18, 4, True),
    "MXFP4": (32, 17, 4, True), "IQ4_XS": (256, 136, 4, True), "Q3_K": (256, 110, 3, True),
    "Q2_K": (256, 84, 2, False), "TQ2_0": (256, 66, 2, True), "TQ1_0": (256, 54, 2, True),
}
GGML_FORMATS: dict[str, Format] = {
    n: Format(n, blk, nbytes * 8, b, "ggml", sym) for n, (blk, nbytes, b, sym) in _GGML.items()}
GGUF_PY_WRITES = ("F32", "F16", "BF16", "Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "MXFP4",
                  "TQ2_0", "TQ1_0")
_INT = re.compile(r"^(u?)int([1-8])_g([1-9][0-9]*)$")


def get_format(name: str | Format) -> Format:
    """A :class:`Format` by name: a ggml type (case-insensitive) or ``[u]int{b}_g{g}``.

    Example:
        >>> get_format("q4_0").bits_per_weight, get_format("int4_g128").bits_per_weight
        (4.5, 4.125)
        >>> get_format("uint3_g64").bits_per_weight
        3.5
    """
    if isinstance(name, Format):
        return name
    if not isinstance(name, str):
        raise ValueError(f"format: expected a format name, got {name!r}")
    fmt = GGML_FORMATS.get(name.upper())
    if fmt is not None:
        return fmt
    m = _INT.match(name.lower())
    if m is None:
        raise ValueError(f"format: unknown format {name!r}; expected one of "
                         f"{sorted(GGML_FORMATS)} or int{{b}}_g{{g}} / uint{{b}}_g{{g}} "
                         f"(b in 1..8, g the group size)")
    asym, b, g = m.group(1) == "u", int(m.group(2)), int(m.group(3))
    return Format(f"{'u' if asym else ''}int{b}_g{g}", g, b * g + (32 if asym else 16), b,
                  "int", not asym)


def format_table(names: Sequence[str] | None = None) -> str:
    """A text table of formats (default: every ggml format) with their costs."""
    fmts = [get_format(n) for n in (names if names is not None else GGML_FORMATS)]
    lines = [f"{'format':<10} {'block':>6} {'block bits':>11} {'bits/weight':>12}"]
    lines += [f"{f.name:<10} {f.block:>6} {f.block_bits:>11} {f.bits_per_weight:>12.6g}"
              for f in fmts]
    return "\n".join(lines)


def tensor_bytes(n_weights: int, fmt: str | Format) -> float:
    """Exact bytes of ``n_weights`` weights in ``fmt`` (``bits_for(n) / 8``)."""
    return get_format(fmt).bits_for(int(n_weights)) / 8


@dataclass(frozen=True)
class FormatProblem:
    """A :class:`~bitalloc.Problem` whose candidates are formats.

    Attributes:
        problem: the problem; its bits ``1..K`` code ``formats[0..K-1]``.
        formats: the candidate formats, sorted by bits per weight.
        bytes: ``(N, K)`` exact bytes of each tensor in each format (inf = not allowed).
    """

    problem: Problem
    formats: tuple[Format, ...]
    bytes: np.ndarray

    def format_of(self, bits) -> dict[str, str]:
        """``{tensor name: format name}`` of an allocation (``Result.bits``)."""
        idx = self.problem.bit_index(bits)
        return {n: self.formats[k].name for n, k in zip(self.problem.names, idx)}

    def result_dict(self, result) -> dict:
        """``result.to_dict()`` plus ``"formats"``: the RESULT.json ``bitalloc export`` reads."""
        out = result.to_dict()
        out["formats"] = self.format_of(result.bits)
        out["bytes"] = self.size_bytes(result.bits)
        return out

    def size_bytes(self, bits) -> float:
        """Exact total bytes of the allocated tensors."""
        idx = self.problem.bit_index(bits)
        return float(self.bytes[np.arange(len(idx)), idx].sum())

    def bits_of(self, formats: Mapping[str, str]) -> np.ndarray:
        """The candidate codes of ``{tensor name: format name}`` (every tensor named)."""
        pos = {f.name: k for k, f in enumerate(self.formats)}
        missing = [n for n in self.problem.names if n not in formats]
        if missing:
            raise ValueError(f"formats: no format given for {missing[:5]}")
        out = []
        for n in self.problem.names:
            name = get_format(formats[n]).name
            if name not in pos:
                raise ValueError(f"formats[{n!r}]: {name} is not a candidate "
                                 f"({[f.name for f in self.formats]})")
            out.append(self.problem.bits[pos[name]])
        return np.array(out, dtype=np.int64)


def format_problem(errors, sizes, formats: Sequence[str | Format], *, names: Sequence[str],
                   row_lengths=None, max_bytes: float | None = None,
                   max_bits_per_weight: float | None = None, allowed=None, ties=None,
                   constraints: Sequence[Constraint] = ()) -> FormatProblem:
    """Build a problem whose candidates are storage formats with exact byte costs.

    Args:
        errors: ``(N, K)`` measured error of tensor ``i`` stored in ``formats[k]``;
            cells of formats a tensor cannot use may be ``inf``.
        sizes: ``(N,)`` weights per tensor.
        formats: ``K`` candidate format names (any order; sorted by bits per weight).
        names: ``N`` tensor names.
        row_lengths: ``(N,)`` row length (ggml ``ne[0]``, the input dimension) of each
            tensor; a format whose block does not divide it is not allowed there.
            Default: ``sizes`` (only divisibility of the whole tensor is checked).
        max_bytes: budget in bytes over these tensors (a ``LinearBudget`` ``"bytes"``).
        max_bits_per_weight: budget in bits per weight, converted exactly to bytes
            (``max_bits_per_weight * sum(sizes) / 8``). Give at most one of the two.
        allowed: ``{tensor: [format names]}`` further restrictions.
        ties: lists of tensors that must share one format.
        constraints: further constraints (on the codes ``1..K``).

    Raises:
        ValueError: bad argument, or a tensor that no candidate format can store.
        InfeasibleError: the budget is below the smallest format mix; ``reachable``
            is that minimum in bytes.

    Example:
        >>> fp = format_problem([[4.0, 1.0], [2.0, 0.5]], [64, 64], ["Q8_0", "Q4_0"],
        ...                     names=["a", "b"], max_bytes=104)
        >>> [f.name for f in fp.formats], fp.bytes.tolist()
        (['Q4_0', 'Q8_0'], [[36.0, 68.0], [36.0, 68.0]])
    """
    fmts = [get_format(f) for f in formats]
    if not fmts:
        raise ValueError("formats: at least one format is needed")
    if len({f.name for f in fmts}) != len(fmts):
        raise ValueError(f"formats: duplicate formats in {[f.name for f in fmts]}")
    order = sorted(range(len(fmts)), key=lambda k: (fmts[k].bits_per_weight, fmts[k].name))
    fmts = [fmts[k] for k in order]
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim != 2 or err.shape[1] != len(fmts):
        raise ValueError(f"errors: expected shape (N, {len(fmts)}), got {err.shape}")
    err = err[:, order].copy()
    size = np.asarray(sizes, dtype=np.int64)
    if size.shape != (err.shape[0],) or (size <= 0).any():
        raise ValueError(f"sizes: expected {err.shape[0]} positive integers")
    rows = size if row_lengths is None else np.asarray(row_lengths, dtype=np.int64)
    if rows.shape != size.shape or (rows <= 0).any() or (size % rows).any():
        raise ValueError("row_lengths: expected one positive divisor of each size per tensor")
    names = list(names)
    if len(names) != len(size):
        raise ValueError(f"names: {len(names)} names for {len(size)} tensors")
    ok = np.array([[r % f.block == 0 for f in fmts] for r in rows], dtype=bool).reshape(
        len(size), len(fmts))
    if allowed:
        pos = {n: i for i, n in enumerate(names)}
        for key, lst in allowed.items():
            i = pos.get(key, key) if not isinstance(key, (int, np.integer)) else int(key)
            if not isinstance(i, (int, np.integer)) or not 0 <= i < len(names):
                raise ValueError(f"allowed: unknown tensor {key!r}")
            want = {get_format(x).name for x in lst}
            ok[i] &= np.array([f.name in want for f in fmts])
    bad = [names[i] for i in np.flatnonzero(~ok.any(axis=1))]
    # a format a tensor cannot use may carry any error (inf, NaN): it is never chosen
    finite = np.isfinite(err) & (np.nan_to_num(err, nan=-1.0) >= 0)
    if not finite[ok].all():
        i, k = np.argwhere(ok & ~finite)[0]
        raise ValueError(f"errors: must be finite and >= 0 where the format is allowed; "
                         f"tensor {names[i]!r} in {fmts[k].name} has {err[i, k]}")
    err[~ok] = 0.0
    if bad:
        raise ValueError(f"formats: no candidate format can store {bad[:5]} (row length not a "
                         f"multiple of any block, or excluded by allowed)")
    nbytes = np.array([[s // f.block * f.block_bits / 8 if ok[i, k] else np.inf
                        for k, f in enumerate(fmts)] for i, s in enumerate(size)])
    nbytes = nbytes.reshape(len(size), len(fmts))
    cons = list(constraints)
    if max_bytes is not None and max_bits_per_weight is not None:
        raise ValueError("max_bytes: give max_bytes or max_bits_per_weight, not both")
    if max_bits_per_weight is not None:
        max_bytes = float(max_bits_per_weight) * float(size.sum()) / 8
    if max_bytes is not None:
        reachable = float(np.where(ok, nbytes, np.inf).min(axis=1).sum())
        if not np.isfinite(max_bytes) or reachable > max_bytes:
            raise InfeasibleError(
                f"bytes: budget of {max_bytes:.10g} bytes is below the smallest format mix, "
                f"{reachable:.10g} bytes", constraint="bytes", limit=float(max_bytes),
                reachable=reachable)
        cons.append(LinearBudget(np.where(ok, nbytes, 0.0), max_bytes, name="bytes"))
    codes = tuple(range(1, len(fmts) + 1))
    allowed_codes = {i: [codes[k] for k in np.flatnonzero(ok[i])]
                     for i in range(len(size)) if not ok[i].all()}
    problem = Problem(errors=err, sizes=size, bits=codes, names=names, allowed=allowed_codes,
                      ties=ties, constraints=cons)
    nbytes.setflags(write=False)
    return FormatProblem(problem, tuple(fmts), nbytes)
