"""Learned-step-size fake quantizers (LSQ, Esser et al. 2020; LSQ+ offset for activations).

One class, :class:`LSQQuantizer`, in three modes:

- ``"signed"``: symmetric signed integers ``[-2**(b-1), 2**(b-1) - 1]`` (weights), per output
  channel (axis 0) or per tensor;
- ``"unsigned"``: ``[0, 2**b - 1]`` (non-negative activations, e.g. after ReLU);
- ``"asymmetric"``: ``[0, 2**b - 1]`` shifted by a learned float offset (LSQ+), for
  activations of any sign.

Every mode has ``2**b`` levels, so the clipping range is ``step * (2**b - 1)``.
Rounding uses the straight-through estimator and the step gradient is scaled by
``1 / sqrt(numel_per_step * q_max)`` as in LSQ. The arithmetic runs in
:mod:`bitalloc_torch.fake_quant` (by default a compiled one-pass CPU kernel, or a fused
autograd kernel; the plain-autograd reference and torch's learnable fake-quant kernels
on request: ``backend=``).

Changing ``bits`` keeps the clipping range: ``step <- step * (2**old - 1) / (2**new - 1)``
and the offset is unchanged, so a reallocation does not shock training.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import nn

from .fake_quant import BACKENDS, grad_scale, lsq_fake_quantize, round_ste

__all__ = ["LSQQuantizer", "MODES", "INIT_METHODS"]

MODES = ("signed", "unsigned", "asymmetric")
INIT_METHODS = ("mse", "minmax")
MAX_BITS = 16
#: Fractions of the observed range tried by the MSE initialisation.
_MSE_GRID = torch.linspace(0.1, 1.0, 37)
_TINY = 1e-12


# the old private helpers, kept as aliases for code written against them
_round_ste = round_ste
_grad_scale = grad_scale


def check_bits(bits: Any, mode: str = "unsigned", arg: str = "bits") -> int:
    """Validate a bitwidth: an integer in ``[1, 16]`` (``[2, 16]`` for ``mode="signed"``)."""
    try:
        b = operator.index(bits)
    except TypeError:
        raise ValueError(f"{arg}: must be an integer, got {bits!r}") from None
    if isinstance(bits, bool):
        raise ValueError(f"{arg}: must be an integer, got {bits!r}")
    low = 2 if mode == "signed" else 1
    if not low <= b <= MAX_BITS:
        raise ValueError(f"{arg}: must be in [{low}, {MAX_BITS}] for mode {mode!r}, got {b}")
    return b


def check_backend(backend: Any) -> str:
    """Validate a fake-quant backend name (one of :data:`BACKENDS`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {BACKENDS}, got {backend!r}")
    return backend


class LSQQuantizer(nn.Module):
    """Learned-step-size fake quantizer.

    The step (and, for ``"asymmetric"``, the offset) are initialised from data on the
    first forward call (``init``: ``"mse"`` grid search over clipping ranges, or
    ``"minmax"``), or by :func:`bitalloc_torch.calibrate` over several batches.

    Args:
        bits: bitwidth, an int (settable later through :attr:`bits`).
        mode: ``"signed"``, ``"unsigned"`` or ``"asymmetric"`` (see module docstring).
        channels: ``None`` for one step per tensor, or the number of channels along
            axis 0 (one step per output channel of a weight).
        init: ``"mse"`` or ``"minmax"``.
        backend: the fake-quant kernel (:attr:`backend`); ``"auto"`` by default.

    Example:
        >>> import torch
        >>> q = LSQQuantizer(bits=3, mode="signed", channels=4)
        >>> w = torch.randn(4, 10)
        >>> wq = q(w)
        >>> [len(torch.unique(row)) <= 2 ** 3 for row in wq]
        [True, True, True, True]
        >>> r = q.quant_range().clone()
        >>> q.bits = 5                      # keeps the clipping range
        >>> torch.allclose(q.quant_range(), r)
        True
    """

    def __init__(self, bits: int = 8, *, mode: str = "signed", channels: int | None = None,
                 init: str = "mse", backend: str = "auto") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode: must be one of {MODES}, got {mode!r}")
        if init not in INIT_METHODS:
            raise ValueError(f"init: must be one of {INIT_METHODS}, got {init!r}")
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int)
                                     or channels < 1):
            raise ValueError(f"channels: must be None or a positive int, got {channels!r}")
        self.mode = mode
        self.init = init
        self.channels = channels
        self._bits = check_bits(bits, mode)
        shape = (channels,) if channels is not None else ()
        self.step = nn.Parameter(torch.ones(shape))
        self.offset = nn.Parameter(torch.zeros(shape)) if mode == "asymmetric" else None
        self.register_buffer("initialized", torch.tensor(False))
        self._ready = False  # host-side copy of ``initialized``: no device sync per forward
        #: When False, ``forward`` returns its input unchanged (float pass-through).
        self.enabled = True
        #: Fake-quant kernel, one of :data:`~bitalloc_torch.fake_quant.BACKENDS`: ``"auto"``
        #: (the compiled one-pass CPU kernel where it builds, else the fused autograd
        #: kernel), ``"native"``, ``"fused"``, ``"torch"`` (torch's learnable fake-quant
        #: kernels) or ``"reference"`` (plain autograd); same values and gradients within
        #: float rounding (``"torch"``: see :mod:`bitalloc_torch.fake_quant`).
        self.backend = check_backend(backend)
        self._calib: dict[str, Any] | None = None

    # -- bits ----------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        """The bitwidth; setting it rescales the step so the clipping range is kept."""
        return self._bits

    @bits.setter
    def bits(self, value: int) -> None:
        self.set_bits(value, keep_range=True)

    def set_bits(self, bits: int, keep_range: bool = True) -> None:
        """Set the bitwidth.

        Args:
            bits: the new bitwidth.
            keep_range: rescale the step by ``(2**old - 1) / (2**new - 1)`` so the
                clipping range stays; ``False`` leaves the step (used when restoring a
                checkpoint whose steps already belong to ``bits``).
        """
        new = check_bits(bits, self.mode)
        old = self._bits
        if new == old:
            return
        if keep_range and (self._ready or bool(self.initialized)):
            with torch.no_grad():
                self.step.mul_((2.0**old - 1.0) / (2.0**new - 1.0))
        self._bits = new

    @property
    def min_bits(self) -> int:
        """Smallest bitwidth this quantizer accepts (2 for signed, else 1)."""
        return 2 if self.mode == "signed" else 1

    @property
    def max_bits(self) -> int:
        """Largest bitwidth this quantizer accepts."""
        return MAX_BITS

    @property
    def q_min(self) -> int:
        """Smallest integer level."""
        return -(2 ** (self._bits - 1)) if self.mode == "signed" else 0

    @property
    def q_max(self) -> int:
        """Largest integer level."""
        return 2 ** (self._bits - 1) - 1 if self.mode == "signed" else 2**self._bits - 1

    def quant_range(self) -> torch.Tensor:
        """Current clipping range ``|step| * (2**bits - 1)`` (per channel or scalar), detached."""
        return self.step.detach().abs() * (2.0**self._bits - 1.0)

    # -- forward -------------------------------------------------------------------------
    def _view(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.channels is None:
            return p
        return p.reshape((-1,) + (1,) * (x.dim() - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize ``x`` (straight-through rounding); identity when disabled."""
        if not self.enabled:
            return x
        if self._calib is not None:
            self._observe(x.detach())
            return x
        if not self._ready:
            if not bool(self.initialized):
                self.initialize_from(x.detach())
            self._ready = True
        per_step = x.numel() // (self.channels or 1)
        g = 1.0 / math.sqrt(max(per_step, 1) * max(self.q_max, 1))
        return lsq_fake_quantize(x, self.step, self.offset, g, self.q_min, self.q_max,
                                 self.backend, _TINY)

    # -- initialisation ------------------------------------------------------------------
    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels is None:
            return x.reshape(1, -1)
        if x.shape[0] != self.channels:
            raise ValueError(f"x: expected {self.channels} channels on axis 0, got {x.shape[0]}")
        return x.reshape(self.channels, -1)

    def _params_for(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Step and offset whose grid spans ``[lo, hi]`` (per row)."""
        if self.mode == "signed":
            amax = torch.maximum(lo.abs(), hi.abs())
            return (amax / max(self.q_max, 1)).clamp_min(_TINY), torch.zeros_like(lo)
        if self.mode == "unsigned":
            return (hi.clamp_min(0) / self.q_max).clamp_min(_TINY), torch.zeros_like(lo)
        return ((hi - lo) / self.q_max).clamp_min(_TINY), lo

    def _quant_rows(self, rows: torch.Tensor, s: torch.Tensor, beta: torch.Tensor):
        s, beta = s[:, None], beta[:, None]
        return torch.clamp(((rows - beta) / s).round(), self.q_min, self.q_max) * s + beta

    def _observe(self, x: torch.Tensor) -> None:
        rows = self._rows(x.float())
        c = self._calib
        if c["pass"] == "range":
            lo, hi = rows.min(dim=1).values, rows.max(dim=1).values
            c["lo"] = lo if c["lo"] is None else torch.minimum(c["lo"], lo)
            c["hi"] = hi if c["hi"] is None else torch.maximum(c["hi"], hi)
            return
        err = c["err"]
        for i, a in enumerate(_MSE_GRID.tolist()):
            s, beta = self._params_for(c["lo"] * a, c["hi"] * a)
            err[i] += (self._quant_rows(rows, s, beta) - rows).pow(2).sum(dim=1)

    def begin_calibration(self) -> None:
        """Start observing: ``forward`` records ranges and returns its input unchanged."""
        self._calib = {"pass": "range", "lo": None, "hi": None, "err": None}

    def calibration_needs_second_pass(self) -> bool:
        """Switch to the MSE pass; False when ``init="minmax"`` or nothing was seen."""
        c = self._calib
        if c is None or c["lo"] is None or self.init == "minmax":
            return False
        c["pass"] = "mse"
        c["err"] = torch.zeros(len(_MSE_GRID), c["lo"].numel(), device=c["lo"].device)
        return True

    def cancel_calibration(self) -> None:
        """Stop observing without changing step or offset."""
        self._calib = None

    @torch.no_grad()
    def end_calibration(self) -> None:
        """Set step (and offset) from what was observed and stop observing."""
        c, self._calib = self._calib, None
        if c is None or c["lo"] is None:
            return
        lo, hi = c["lo"], c["hi"]
        if c["err"] is not None:
            alpha = _MSE_GRID.to(lo.device)[c["err"].argmin(dim=0)]
            lo, hi = lo * alpha, hi * alpha
        s, beta = self._params_for(lo, hi)
        shape = self.step.shape
        self.step.copy_(s.reshape(shape))
        if self.offset is not None:
            self.offset.copy_(beta.reshape(shape))
        self.initialized.fill_(True)
        self._ready = True

    @torch.no_grad()
    def initialize_from(self, x: torch.Tensor) -> None:
        """Initialise step/offset from one tensor with the quantizer's ``init`` method."""
        self.begin_calibration()
        self._observe(x)
        if self.calibration_needs_second_pass():
            self._observe(x)
        self.end_calibration()

    # -- range search after a bit change ---------------------------------------------------
    @torch.no_grad()
    def recalibrate(self, x: torch.Tensor) -> None:
        """Re-run the range search (``init``: MSE grid or min/max) on ``x`` at the current
        bits, e.g. on the current weights right after :attr:`bits` changed. The optimizer
        state of :attr:`step` is left as it is (only its value changes).

        Example:
            >>> import torch
            >>> q = LSQQuantizer(bits=2, mode="signed")
            >>> w = torch.randn(256)
            >>> _ = q(w)
            >>> q.bits = 6                      # keeps the 2-bit clipping range...
            >>> kept = (q(w) - w).pow(2).mean()
            >>> q.recalibrate(w)                # ...a 6-bit range search does better
            >>> bool((q(w) - w).pow(2).mean() < kept)
            True
        """
        self.initialize_from(x.detach())

    def reset_range(self) -> None:
        """Forget the range: the next forward call re-initialises it from its input (used
        for activation quantizers after a bit change: "from the next batch")."""
        self.initialized.fill_(False)
        self._ready = False

    # -- state ---------------------------------------------------------------------------
    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._ready = False  # re-read ``initialized`` on the next forward
        super()._load_from_state_dict(*args, **kwargs)

    def get_extra_state(self) -> dict[str, Any]:
        return {"bits": self._bits, "mode": self.mode}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("mode", self.mode) != self.mode:
            raise ValueError(f"state_dict: quantizer mode {state['mode']!r} does not match "
                             f"{self.mode!r}")
        self._bits = check_bits(state["bits"], self.mode)

    def extra_repr(self) -> str:
        per = f"channels={self.channels}" if self.channels is not None else "per_tensor"
        return f"bits={self._bits}, mode={self.mode}, {per}, init={self.init}"
