"""Shared pieces of the QAT-framework binding tests: small real models, a QAT loop, checks.

Not a test module (no ``test_`` prefix); the ``test_bt_frameworks_*`` modules import it.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt
from bitalloc_torch.demo.models import TinyMobileNetV2

VOCAB, CLASSES, SEQ = 40, 4, 8


def import_or_skip(module: str, name: str):
    """Import a framework or skip naming it and the reason (e.g. a failing import)."""
    try:
        return importlib.import_module(module)
    except Exception as e:  # ImportError, or a framework failing while it imports
        pytest.skip(f"{name} ({module}) cannot be imported here: {type(e).__name__}: {e}")


class Block(nn.Module):
    """A small pre-norm transformer block (attention + MLP) over token ids, then a head."""

    def __init__(self, d: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.emb = nn.Embedding(VOCAB, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.head = nn.Linear(d, CLASSES)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (lin(h).view(b, t, self.heads, -1).transpose(1, 2)
                   for lin in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(a)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return self.head(x.mean(1))


def block(seed: int = 0) -> Block:
    torch.manual_seed(seed)
    return Block()


def mobilenet(seed: int = 0) -> nn.Module:
    """The MobileNetV2-style net with BatchNorm running statistics that match its training
    activations (as in a pretrained model): frameworks that calibrate ranges in eval mode
    (ModelOpt, NNCF) would otherwise clip the train-mode activations of a fresh net."""
    torch.manual_seed(seed)
    model = TinyMobileNetV2()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the warm-up batches
    with torch.no_grad():
        for x, _ in image_batches(4, seed=seed + 100):
            model(x)
    return model


def token_batches(n: int, batch: int = 16, seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Token ids labelled by a simple rule (learnable, so gradients are informative)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, VOCAB, (batch, SEQ), generator=g)
        out.append((ids, (ids[:, 0] % CLASSES)))
    return out


def image_batches(n: int, batch: int = 8, seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 1, 28, 28, generator=g),
             torch.randint(0, 10, (batch,), generator=g)) for _ in range(n)]


def train_with_qbitopt(model: nn.Module, batches, levels, *, bits=(2, 3, 4, 6, 8),
                       budget: float = 4.0, every: int = 2, **kw) -> bt.QBitOpt:
    """The user's QAT loop with QBitOpt; checks the budget and the framework's own
    fake-quantized weights at every reallocation.

    ``levels(target)`` returns the framework's fake-quantized weight as rows that share
    one scale (channels or groups).
    """
    qb = bt.QBitOpt(model, [ba.AverageBits(budget)], bits=bits, every=every, **kw)
    assert qb.usage()["average_bits"][0] <= budget + 1e-12
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()
        rec = qb.step()
        opt.step()
        opt.zero_grad()
        if rec is None:
            continue
        value, limit = qb.usage()["average_bits"]
        assert value <= limit + 1e-12, (rec.step, value, limit)
        for t in qb.groups.targets:
            b = t.quantizer.bits
            assert b == rec.bits[t.name]
            with torch.no_grad():
                rows = levels(t)
            worst = max(len(torch.unique(r)) for r in rows)
            assert worst <= 2**b, (t.name, b, worst)
    assert len(qb.history) == len(batches) // every
    assert any(len(set(r.bits.values())) > 1 for r in qb.history), "no mixed precision"
    return qb


def fake_quant_rows(wq: torch.Tensor, group: int | None = None) -> torch.Tensor:
    """Rows sharing one scale: output channels, or groups of ``group`` input elements."""
    wq = wq.detach().reshape(wq.shape[0], -1)
    return wq.reshape(-1, group) if group else wq
