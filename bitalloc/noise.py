"""Quantization noise models ``phi(b)``: error of one unit of sensitivity at ``b`` bits."""

from __future__ import annotations

import numpy as np

__all__ = ["NOISE_MODELS", "phi"]


def _uniform(bits: np.ndarray) -> np.ndarray:
    return (2.0 ** bits - 1.0) ** -2


def _exp(bits: np.ndarray) -> np.ndarray:
    return 4.0 ** (-bits)


NOISE_MODELS = {"uniform": _uniform, "exp": _exp}


def phi(bits, noise: str = "uniform") -> np.ndarray:
    """Noise power per unit sensitivity for each bitwidth.

    ``"uniform"``: ``(2**b - 1)**-2``, the rounding-noise power of a uniform
    quantizer with a fixed clipping range (up to the constant 1/12).
    ``"exp"``: ``4**-b``, the usual large-``b`` approximation.

    Args:
        bits: bitwidths (array-like of positive integers).
        noise: ``"uniform"`` or ``"exp"``.

    Returns:
        Float array of the same shape as ``bits``.

    Raises:
        ValueError: unknown ``noise``.

    Example:
        >>> phi([2, 8]).round(8).tolist()
        [0.11111111, 1.538e-05]
    """
    try:
        fn = NOISE_MODELS[noise]
    except (KeyError, TypeError):
        raise ValueError(
            f"noise: unknown noise model {noise!r}; expected one of {sorted(NOISE_MODELS)}"
        ) from None
    return fn(np.asarray(bits, dtype=np.float64))
