"""FIT at any quantized point, and post-training re-estimation rounds (pretrained study).

The FIT statistic of :mod:`benchmarks.pretrained` is the squared gradient of a probe
loss whose gradient covariance is the curvature (Gauss-Newton / Fisher matrix) of the
distillation loss at the model's *current* outputs:

- :func:`effnet_fit`: labels sampled from the softmax of ``logits``, cross-entropy;
- :func:`minilm_fit`: ``eps . e(x)`` with ``eps ~ N(0, (I - u u^T) / |e|**2)``, ``u`` the
  unit embedding ``embeddings``.

At the float point the outputs are the float model's (the distillation loss's Hessian);
at a quantized point they are the quantized model's own outputs, i.e. the Fisher matrix
of the model at that point, as QBitOpt re-estimates FIT during training.

:func:`reestimate` is the post-training analogue of reallocation: with an allocation
applied, estimate FIT there, re-solve the same budget with the same per-bit weight-error
terms, apply, evaluate; repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

import bitalloc_torch as bt

from .pretrained_ptq import WeightPTQ, solve_arm

__all__ = ["effnet_fit", "minilm_fit", "reestimate", "traces"]


def effnet_fit(model, x: torch.Tensor, logits: torch.Tensor, seed: int) -> dict[str, float]:
    """FIT (``EF * range**2`` per layer) of a classifier, one image per backward."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.multinomial(logits.softmax(1), 1, generator=g)[:, 0]
    return bt.fit_sensitivity(model, F.cross_entropy,
                              [(x[i:i + 1], labels[i:i + 1]) for i in range(len(x))])


def minilm_fit(model, batches: Sequence[dict], embeddings: Sequence[torch.Tensor],
               seed: int) -> dict[str, float]:
    """FIT of a sentence embedder: Gauss-Newton probes of ``1 - cos`` at ``embeddings``."""
    g = torch.Generator().manual_seed(seed)
    eps = []
    for t in embeddings:
        u = F.normalize(t, dim=1)
        z = torch.randn(t.shape, generator=g)
        eps.append((z - (z * u).sum(1, keepdim=True) * u) / t.norm(dim=1, keepdim=True))

    def probe_loss(out, e):
        return (out * e).sum(1).mean()

    return bt.fit_sensitivity(model, probe_loss, list(zip(batches, eps)))


def traces(sens: dict[str, float], ptq: WeightPTQ, alloc: dict[str, int]) -> dict[str, float]:
    """EF trace per layer: FIT divided by ``mean(range**2)`` at the applied bits."""
    return {n: sens[n] / ptq.range_sq(n, int(alloc[n])) for n in ptq.names}


def reestimate(ptq: WeightPTQ, start: dict[str, int], pinned: dict[str, int],
               fit_here: Callable[[], dict[str, float]],
               problem_for: Callable[[dict[str, float]], object],
               evaluate: Callable[[], dict], rounds: int, log=print) -> list[dict]:
    """Rounds of re-estimation from the allocation ``start`` (pinned layers excluded).

    Round ``r``: apply the allocation of round ``r - 1`` (round 0 = ``start``), FIT there
    (``fit_here()``), traces at those bits, ``problem_for(traces)`` (same budget, same
    per-bit error terms), solve, apply, ``evaluate()``.

    Returns:
        one entry per round: metrics, solver report, bits, layers whose bits changed,
        and the traces used.
    """
    alloc = dict(start)
    out = []
    for r in range(1, rounds + 1):
        full = {**pinned, **alloc}
        ptq.apply(full)
        trace = traces(fit_here(), ptq, full)
        new, report = solve_arm(problem_for(trace))
        ptq.apply({**pinned, **new})
        metrics = evaluate()
        changed = sorted(n for n in new if new[n] != alloc.get(n))
        out.append({"round": r, "metrics": metrics, "solver": report, "bits": new,
                    "average_bits": report["average_bits"], "changed": changed,
                    "fit_trace": trace})
        log(f"  re-estimation round {r}: {metrics} ({len(changed)} layers changed)")
        alloc = new
    return out
