"""Exporters from an allocation ``{tensor: format}`` to the files deployment tools read.

Pure python (no optional dependency): each function returns the text or dict that
the consuming tool reads.

==============  =============================  ===========================================
target          function                       consumed by
==============  =============================  ===========================================
``llama.cpp``   :func:`to_llama_cpp`           ``llama-quantize --tensor-type-file FILE
                                               in.gguf out.gguf Q4_0`` (one ``name=type``
                                               line per tensor; name = anchored regex)
``autoround``   :func:`to_autoround`           ``AutoRound(model, tok, layer_config=json.load
                                               (f), iters=0).quantize_and_save(dir)``
``llmcompressor`` :func:`to_llmcompressor`     ``oneshot(model=m, recipe="recipe.yaml")``
``json``        :func:`to_bit_map`             anything: ``{"formats", "bits", "group_size"}``
==============  =============================  ===========================================

Allocations name tensors either by their Hugging Face module name
(``model.layers.0.self_attn.v_proj``) or by their GGUF name
(``blk.0.attn_v.weight``); :func:`gguf_name` and :func:`hf_name` convert between the
two for llama-architecture models. The torchao ``FqnToConfig`` builder needs torch and
lives in the adapter (``bitalloc_torch.export_torchao``); the GGUF writer needs gguf-py
and lives in :mod:`bitalloc.export_gguf`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from .formats import GGML_FORMATS, Format, get_format

__all__ = ["TARGETS", "allocation_from_result", "gguf_name", "hf_name", "to_llama_cpp",
           "to_autoround", "to_llmcompressor", "to_bit_map", "export_text", "dump_yaml",
           "int_equivalent"]

TARGETS = ("llama.cpp", "autoround", "llmcompressor", "json")

_HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
_GGUF_TO_HF = {v: k for k, v in _HF_TO_GGUF.items()}
_HF_LAYER = re.compile(r"^(?:model\.)?layers\.(\d+)\.(.+?)(?:\.weight)?$")
_GGUF_LAYER = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.weight$")
_TOP_HF = {"model.embed_tokens": "token_embd.weight", "lm_head": "output.weight"}
# ggml legacy types and their exact integer-group equivalent (same bits per weight).
_INT_OF_GGML = {"Q4_0": "int4_g32", "Q4_1": "uint4_g32", "Q5_0": "int5_g32",
                "Q5_1": "uint5_g32", "Q8_0": "int8_g32"}
_UNQUANTIZED = ("F32", "F16", "BF16")
# nominal integer bits -> ggml type for allocations given as plain bits.
_GGML_OF_BITS = {2: "Q2_K", 3: "Q3_K", 4: "Q4_0", 5: "Q5_0", 6: "Q6_K", 8: "Q8_0", 16: "F16",
                 32: "F32"}


def gguf_name(name: str) -> str:
    """The GGUF tensor name of a llama-architecture module (already-GGUF names pass).

    Example:
        >>> gguf_name("model.layers.3.mlp.down_proj")
        'blk.3.ffn_down.weight'
        >>> gguf_name("output_norm.weight")
        'output_norm.weight'
    """
    if name.startswith("blk.") or (name.endswith(".weight") and
                                   not name.startswith(("model.", "layers.", "lm_head"))):
        return name  # already a GGUF name (blk.N.*, token_embd.weight, output_norm.weight)
    base = name[:-len(".weight")] if name.endswith(".weight") else name
    if base in _TOP_HF:
        return _TOP_HF[base]
    m = _HF_LAYER.match(name)
    if m is None or m.group(2) not in _HF_TO_GGUF:
        raise ValueError(f"names: {name!r} is not a llama-architecture linear "
                         f"(model.layers.N.{{{', '.join(_HF_TO_GGUF)}}})")
    return f"blk.{m.group(1)}.{_HF_TO_GGUF[m.group(2)]}.weight"


def hf_name(name: str) -> str:
    """The Hugging Face module name of a GGUF tensor name (HF names pass through).

    Example:
        >>> hf_name("blk.3.ffn_down.weight")
        'model.layers.3.mlp.down_proj'
    """
    top = {v: k for k, v in _TOP_HF.items()}
    if name in top:
        return top[name]
    m = _GGUF_LAYER.match(name)
    if m is None:
        if name.startswith("blk."):
            raise ValueError(f"names: {name!r} is not a llama-architecture GGUF linear")
        return name[:-len(".weight")] if name.endswith(".weight") else name
    if m.group(2) not in _GGUF_TO_HF:
        raise ValueError(f"names: {name!r} is not a llama-architecture GGUF linear")
    return f"model.layers.{m.group(1)}.{_GGUF_TO_HF[m.group(2)]}"


def _fail(path: str, msg: str):
    raise ValueError(f"{path}: {msg}")


def allocation_from_result(result: Mapping, group_size: int = 128,
                           symmetric: bool = True) -> dict[str, Format]:
    """``{tensor: Format}`` from a result dict (``bitalloc solve --format json``).

    A result with ``"formats": {name: format name}`` (written by format problems)
    is taken as is; one with only ``"bits": {name: int}`` becomes ``int{b}_g{group_size}``
    (``uint`` when not ``symmetric``), and 16/32 bits become F16/F32 (unquantized).

    Raises:
        ValueError: naming the JSON path of the bad field.
    """
    if not isinstance(result, Mapping):
        _fail("$", "must be a JSON object with 'formats' or 'bits'")
    if "formats" in result:
        fm = result["formats"]
        if not isinstance(fm, Mapping) or not fm:
            _fail("formats", "must be a non-empty object {tensor: format}")
        out = {}
        for k, f in fm.items():
            try:
                out[str(k)] = get_format(f)
            except ValueError as e:
                _fail(f"formats.{k}", str(e))
        return out
    bits = result.get("bits")
    if not isinstance(bits, Mapping) or not bits:
        _fail("bits", "must be a non-empty object {tensor: bits} (or give 'formats')")
    if not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"--group-size: must be a positive integer, got {group_size!r}")
    out = {}
    for k, b in bits.items():
        if not isinstance(b, int) or isinstance(b, bool) or not (1 <= b <= 8 or b in (16, 32)):
            _fail(f"bits.{k}", f"must be an integer in 1..8, 16 or 32, got {json.dumps(b)}")
        out[str(k)] = (GGML_FORMATS["F16" if b == 16 else "F32"] if b > 8 else get_format(
            f"{'' if symmetric else 'u'}int{b}_g{group_size}"))
    return out


def _ggml_type(fmt: Format) -> str:
    if fmt.kind == "ggml":
        return fmt.name
    if fmt.block == 32:
        for ggml, intname in _INT_OF_GGML.items():
            if intname == fmt.name:
                return ggml
    raise ValueError(f"format: llama.cpp cannot produce {fmt.name}; it produces the ggml types "
                     f"{sorted(GGML_FORMATS)} (int{{b}}_g32 maps to Q{{b}}_0 for b in 4, 5, 8, "
                     f"uint4_g32/uint5_g32 to Q4_1/Q5_1)")


def int_equivalent(fmt: str | Format) -> Format:
    """The integer group format with the same storage as ``fmt`` (Q4_0 -> int4_g32).

    Raises:
        ValueError: naming the format and those that have an equivalent.
    """
    fmt = get_format(fmt)
    if fmt.kind == "int" or fmt.name in _UNQUANTIZED:
        return fmt
    if fmt.name in _INT_OF_GGML:
        return get_format(_INT_OF_GGML[fmt.name])
    raise ValueError(f"format: {fmt.name} has no integer group-quantization equivalent; "
                     f"this writer produces int{{b}}_g{{g}}, uint{{b}}_g{{g}}, "
                     f"{', '.join(_INT_OF_GGML)} and {', '.join(_UNQUANTIZED)}")


def to_llama_cpp(allocation: Mapping[str, str | Format]) -> str:
    """``--tensor-type-file`` text: one ``regex=type`` line per tensor.

    Names are converted to GGUF names, lowercased (llama-quantize lowercases the
    pattern before matching) and written as an anchored regex with escaped dots, so
    ``blk.1`` never matches ``blk.10``; types are lowercase ggml type names.

    Example:
        >>> print(to_llama_cpp({"model.layers.0.self_attn.v_proj": "Q8_0"}))
        ^blk\\.0\\.attn_v\\.weight$=q8_0
    """
    lines = []
    for name, f in allocation.items():
        t = _ggml_type(get_format(f)).lower()
        pattern = "^" + re.escape(gguf_name(name).lower()) + "$"
        lines.append(f"{pattern}={t}")
    return "\n".join(lines)


def to_autoround(allocation: Mapping[str, str | Format]) -> dict:
    """AutoRound ``layer_config``: ``{module: {"bits", "group_size", "sym"}}``.

    Unquantized formats (F16/F32/BF16) become ``{"bits": 16}`` (AutoRound keeps them).

    Example:
        >>> to_autoround({"blk.0.attn_v.weight": "Q4_1"})
        {'model.layers.0.self_attn.v_proj': {'bits': 4, 'group_size': 32, 'sym': False}}
    """
    out = {}
    for name, f in allocation.items():
        fmt = int_equivalent(f)
        key = hf_name(name)
        out[key] = ({"bits": 16} if fmt.name in _UNQUANTIZED else
                    {"bits": fmt.bits, "group_size": fmt.block, "sym": fmt.symmetric})
    return out


def to_llmcompressor(allocation: Mapping[str, str | Format], ignore=("lm_head",)) -> dict:
    """An llm-compressor recipe (as a dict; :func:`dump_yaml` writes it).

    One ``config_groups`` entry per distinct (bits, group size, symmetry), targets
    ``re:^<module>$`` with the exact module name; unquantized tensors go to ``ignore``.
    """
    groups: dict[tuple, list[str]] = {}
    ign = list(ignore)
    for name, f in allocation.items():
        fmt = int_equivalent(f)
        key = hf_name(name)
        if fmt.name in _UNQUANTIZED:
            ign.append(key)
            continue
        groups.setdefault((fmt.bits, fmt.block, fmt.symmetric), []).append(
            "re:^" + re.escape(key) + "$")
    config = {}
    for i, ((b, g, sym), targets) in enumerate(sorted(groups.items())):
        config[f"group_{i}"] = {
            "targets": targets,
            "weights": {"num_bits": b, "type": "int", "symmetric": sym, "strategy": "group",
                        "group_size": g, "dynamic": False}}
    return {"quant_stage": {"quant_modifiers": {"QuantizationModifier": {
        "ignore": ign, "config_groups": config}}}}


def to_bit_map(allocation: Mapping[str, str | Format]) -> dict:
    """Plain JSON: ``{"formats": {t: name}, "bits": {t: b}, "group_size": {t: g},
    "bits_per_weight": {t: exact storage bits per weight}}``."""
    fm = {n: get_format(f) for n, f in allocation.items()}
    return {"formats": {n: f.name for n, f in fm.items()},
            "bits": {n: f.bits for n, f in fm.items()},
            "group_size": {n: f.block for n, f in fm.items()},
            "bits_per_weight": {n: f.bits_per_weight for n, f in fm.items()}}


def _yaml_scalar(x) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, float)):
        return repr(x)
    return json.dumps(str(x))  # a JSON string is a valid YAML double-quoted scalar


def dump_yaml(obj, indent: int = 0) -> str:
    """YAML for nested dicts/lists of scalars (no yaml dependency; strings quoted)."""
    pad = "  " * indent
    lines = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if isinstance(v, (Mapping, list)) and v:
                lines.append(f"{pad}{_yaml_scalar(k) if not str(k).isidentifier() else k}:")
                lines.append(dump_yaml(v, indent + 1))
            else:
                empty = "{}" if isinstance(v, Mapping) else "[]" if isinstance(v, list) else None
                lines.append(f"{pad}{k}: {empty or _yaml_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (Mapping, list)):
                lines.append(f"{pad}-")
                lines.append(dump_yaml(v, indent + 1))
            else:
                lines.append(f"{pad}- {_yaml_scalar(v)}")
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


def export_text(allocation: Mapping[str, str | Format], target: str) -> str:
    """The file text of one target in :data:`TARGETS`.

    Raises:
        ValueError: unknown target (naming the known ones) or a format the target
            cannot produce (naming it and the ones it can).
    """
    if target == "llama.cpp":
        return to_llama_cpp(allocation) + "\n"
    if target == "autoround":
        return json.dumps(to_autoround(allocation), indent=1) + "\n"
    if target == "llmcompressor":
        return dump_yaml(to_llmcompressor(allocation)) + "\n"
    if target == "json":
        return json.dumps(to_bit_map(allocation), indent=1) + "\n"
    raise ValueError(f"--to: unknown target {target!r}; expected one of {list(TARGETS)} "
                     f"(torchao: bitalloc_torch.export_torchao.fqn_to_config; "
                     f"gguf: bitalloc.export_gguf.write_gguf)")
