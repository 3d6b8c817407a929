"""Offline data sets as torch tensors (no downloads)."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import torch

__all__ = ["digits", "fashion_mnist", "FASHION_MNIST_DIR", "DataUnavailable", "sample_photos",
           "doc_sentences"]

FASHION_MNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR",
                                        "/usr/share/datasets/fashion-mnist"))


class DataUnavailable(RuntimeError):
    """A data set is not installed; the message says how to install it."""


def digits(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's 8x8 digits (1797 real images), standardised, split by a seeded shuffle.

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images shaped ``(n, 1, 8, 8)``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover
        raise DataUnavailable("digits need scikit-learn: pip install 'bitalloc[demo]'") from e
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(root: str | os.PathLike | None = None):
    """Real Fashion-MNIST (60k train / 10k test, 28x28) from Debian's package files.

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images ``(n, 1, 28, 28)`` standardised.

    Raises:
        DataUnavailable: the idx files are missing (install ``dataset-fashion-mnist``).
    """
    base = Path(root) if root else FASHION_MNIST_DIR
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (base / n).exists()]
    if missing:
        raise DataUnavailable(
            f"Fashion-MNIST not found under {base} (missing {missing[0]}); install it with "
            f"`apt-get install dataset-fashion-mnist` or set FASHION_MNIST_DIR")
    xtr, ytr, xte, yte = (_idx(base / n) for n in names)

    def img(a):
        return (torch.tensor(a, dtype=torch.float32).unsqueeze(1) / 255.0 - 0.286) / 0.353

    def lab(a):
        return torch.tensor(a.astype(np.int64))

    return img(xtr), lab(ytr), img(xte), lab(yte)


def sample_photos(n: int, size: int = 224, seed: int = 0) -> torch.Tensor:
    """``n`` random crops (scale, position, flip) of scikit-learn's two sample photographs.

    Returns a uint8-range float tensor ``(n, 3, size, size)`` with values in [0, 255].
    """
    from sklearn.datasets import load_sample_images

    photos = [torch.tensor(im, dtype=torch.float32).permute(2, 0, 1)
              for im in load_sample_images().images]
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        im = photos[int(torch.randint(len(photos), (1,), generator=g))]
        h, w = im.shape[1:]
        side = int(torch.randint(size // 2, min(h, w) + 1, (1,), generator=g))
        top = int(torch.randint(0, h - side + 1, (1,), generator=g))
        left = int(torch.randint(0, w - side + 1, (1,), generator=g))
        crop = im[:, top:top + side, left:left + side].unsqueeze(0)
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear",
                                               align_corners=False)[0]
        if torch.rand(1, generator=g) < 0.5:
            crop = crop.flip(-1)
        out[i] = crop
    return out.clamp(0, 255)


def doc_sentences(n: int | None = None, min_words: int = 6, max_words: int = 40,
                  seed: int = 0) -> list[str]:
    """English sentences from Python's bundled documentation topics (``pydoc_data``)."""
    from pydoc_data.topics import topics

    text = " ".join(topics[k] for k in sorted(topics))
    text = re.sub(r"\s+", " ", text)
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    keep = [s.strip() for s in parts
            if min_words <= len(s.split()) <= max_words and re.match(r"^[A-Z][a-z]", s.strip())
            and sum(c.isalpha() or c == " " for c in s) > 0.85 * len(s)]
    keep = sorted(set(keep))
    rng = np.random.default_rng(seed)
    rng.shuffle(keep)
    return keep if n is None else keep[:n]
