"""Write a mixed-format GGUF with gguf-py (``pip install 'bitalloc[gguf]'``), predict its size.

:func:`write_gguf` reads a source GGUF, re-quantizes the tensors named in the
allocation to their format (dequantize to float32, quantize with ``gguf.quants``),
copies every other tensor byte for byte and every metadata key, and writes the
result. gguf-py writes the types of :data:`bitalloc.formats.GGUF_PY_WRITES`; the
K- and IQ- types need ``llama-quantize --tensor-type-file`` (see
:func:`bitalloc.export.to_llama_cpp`). gguf is imported only when a function runs.

Consumed by: ``llama-cli -m out.gguf``, ``llama-perplexity -m out.gguf -f text``, or
``transformers.AutoModelForCausalLM.from_pretrained(dir, gguf_file="out.gguf")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import require
from .export import gguf_name
from .formats import GGUF_PY_WRITES, Format, get_format

__all__ = ["GGUFPlan", "plan_gguf", "write_gguf", "read_gguf_types", "dequantize_tensor"]


def _gguf():
    return require("gguf", "gguf", "writing GGUF files")


@dataclass(frozen=True)
class GGUFPlan:
    """What :func:`write_gguf` will write.

    Attributes:
        types: ``{gguf tensor name: ggml type name}`` of every tensor in the file.
        tensor_bytes: ``{name: exact bytes of its data}``.
        data_bytes: sum of ``tensor_bytes``.
        file_bytes: predicted file size (header, metadata, tensor infos, alignment).
    """

    types: dict[str, str]
    tensor_bytes: dict[str, int]
    data_bytes: int
    file_bytes: int


def _check(reader, allocation: Mapping[str, str | Format]) -> dict[str, Format]:
    present = {t.name: t for t in reader.tensors}
    fm, unknown = {}, []
    for name, f in allocation.items():
        g = name if name in present else _as_gguf(name)
        if g not in present:
            unknown.append(name)
            continue
        fmt = get_format(f)
        if fmt.kind != "ggml" or fmt.name not in GGUF_PY_WRITES:
            raise ValueError(f"formats[{name!r}]: the gguf-py writer cannot produce {fmt.name}; "
                             f"it writes {list(GGUF_PY_WRITES)} (use llama-quantize "
                             f"--tensor-type-file for K/IQ types)")
        row = int(present[g].shape[0])  # ggml ne[0]: the row length
        if row % fmt.block:
            raise ValueError(f"formats[{name!r}]: row length {row} is not a multiple of "
                             f"{fmt.name}'s block of {fmt.block}")
        fm[g] = fmt
    if unknown:
        raise ValueError(f"allocation: the model has no tensors {unknown[:10]}"
                         f"{' ...' if len(unknown) > 10 else ''} ({len(unknown)} unknown of "
                         f"{len(allocation)}; the file has e.g. {list(present)[:3]})")
    return fm


def _as_gguf(name: str) -> str | None:
    try:
        return gguf_name(name)
    except ValueError:  # not a llama-style HF name: only exact GGUF names can match
        return None


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def plan_gguf(src: str, allocation: Mapping[str, str | Format]) -> GGUFPlan:
    """Exact tensor bytes and file size of the GGUF :func:`write_gguf` writes.

    Raises:
        ValueError: tensors the model lacks (all named), or formats gguf-py cannot write.
    """
    gguf = _gguf()
    reader = gguf.GGUFReader(src)
    fm = _check(reader, allocation)
    align = int(reader.alignment)
    types, sizes = {}, {}
    info = 0
    for t in reader.tensors:
        if t.name in fm:
            fmt = fm[t.name]
            n = int(np.prod(t.shape))
            types[t.name] = fmt.name
            sizes[t.name] = n // fmt.block * fmt.block_bits // 8
        else:
            types[t.name] = t.tensor_type.name
            sizes[t.name] = int(t.n_bytes)
        # tensor info: name (u64 len + bytes), n_dims u32, dims u64 each, type u32, offset u64
        info += 8 + len(t.name.encode()) + 4 + 8 * len(t.shape) + 4 + 8
    data = sum(sizes.values())
    head = int(reader.tensors[0].data_offset) if reader.tensors else 0
    old_info = sum(8 + len(t.name.encode()) + 4 + 8 * len(t.shape) + 4 + 8
                   for t in reader.tensors)
    # header + kv part is unchanged: data_offset minus the old tensor infos and padding
    kv_end = _kv_end(reader, head, old_info)
    padded = sum(_align(s, align) for s in sizes.values())  # the writer pads every tensor
    return GGUFPlan(types, sizes, data, _align(kv_end + info, align) + padded)


def _kv_end(reader, data_offset: int, info_bytes: int) -> int:
    """Byte offset where the metadata ends (= where tensor infos start) in the source."""
    fields = [f for f in reader.fields.values() if f.offset is not None]
    last = max(fields, key=lambda f: f.offset)
    end = int(last.offset) + sum(int(p.nbytes) for p in last.parts)
    if end + info_bytes > data_offset:  # pragma: no cover - malformed file
        raise ValueError("src: tensor infos overlap the data section")
    return end


def write_gguf(src: str, dst: str, allocation: Mapping[str, str | Format],
               progress: Callable[[int], object] | None = None,
               cache: dict | None = None) -> GGUFPlan:
    """Write ``dst``: ``src`` with each allocated tensor re-quantized to its format.

    Args:
        src: source GGUF path (any type gguf-py can dequantize).
        dst: output path.
        allocation: ``{tensor (GGUF or HF name): format}``.
        progress: called with the number of tensors done (e.g. ``tqdm.update``).
        cache: optional dict ``{(name, format): quantized bytes}``, read and filled, so
            several files from one source quantize each (tensor, format) once.

    Returns:
        The :class:`GGUFPlan` (the written file's size equals ``plan.file_bytes``).
    """
    gguf = _gguf()
    plan = plan_gguf(src, allocation)
    reader = gguf.GGUFReader(src)
    fm = _check(reader, allocation)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    for t in reader.tensors:
        if t.name in fm:
            qtype = gguf.GGMLQuantizationType[fm[t.name].name]
            key = (t.name, fm[t.name].name)
            if qtype == t.tensor_type:
                data = np.asarray(t.data)
            elif cache is not None and key in cache:
                data = cache[key]
            else:
                w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
                data = gguf.quants.quantize(w, qtype)
                if cache is not None:
                    cache[key] = data
            writer.add_tensor(t.name, data, raw_shape=data.shape, raw_dtype=qtype)
        else:
            writer.add_tensor(t.name, np.asarray(t.data), raw_shape=t.data.shape,
                              raw_dtype=t.tensor_type)
        if progress is not None:
            progress(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return plan


def read_gguf_types(path: str) -> dict[str, str]:
    """``{tensor name: ggml type name}`` of a GGUF file, read back with gguf-py."""
    reader = _gguf().GGUFReader(path)
    return {t.name: t.tensor_type.name for t in reader.tensors}


def dequantize_tensor(path_or_reader, name: str) -> np.ndarray:
    """One tensor of a GGUF as float32, shape ``(rows, row length)`` (numpy order)."""
    gguf = _gguf()
    reader = (gguf.GGUFReader(path_or_reader) if isinstance(path_or_reader, str)
              else path_or_reader)
    for t in reader.tensors:
        if t.name == name:
            return gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    raise ValueError(f"name: no tensor {name!r} in the file")
