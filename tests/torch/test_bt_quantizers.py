"""LSQ fake quantizers: levels, range-keeping bit changes, STE, initialisation, errors."""

import copy

import pytest
import torch

from bitalloc_torch import LSQQuantizer, fake_quant_native

torch.manual_seed(0)


def _distinct_per_row(t: torch.Tensor) -> list[int]:
    return [len(torch.unique(r)) for r in t.reshape(t.shape[0], -1)]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("channels", [None, 6])
def test_signed_weight_levels(bits, channels):
    w = torch.randn(6, 5, 3, 3)
    q = LSQQuantizer(bits, mode="signed", channels=channels)
    wq = q(w)
    assert max(_distinct_per_row(wq)) <= 2**bits
    step = q.step.detach().reshape(-1, 1, 1, 1) if channels else q.step.detach()
    ints = wq / step
    assert torch.allclose(ints, ints.round(), atol=1e-4)
    assert ints.min() >= -(2 ** (bits - 1)) - 1e-4 and ints.max() <= 2 ** (bits - 1) - 1 + 1e-4


@pytest.mark.parametrize("mode", ["unsigned", "asymmetric"])
def test_activation_modes(mode):
    x = torch.randn(32, 10) + (2.0 if mode == "unsigned" else 0.0)
    q = LSQQuantizer(3, mode=mode, init="minmax")
    y = q(x)
    assert len(torch.unique(y)) <= 8
    if mode == "unsigned":
        assert (y >= 0).all()
    else:  # the asymmetric grid covers negative values
        assert y.min() < 0


def test_bits_change_keeps_range_and_rescales_step():
    q = LSQQuantizer(8, mode="signed", channels=4)
    q(torch.randn(4, 20))
    r8, s8 = q.quant_range().clone(), q.step.detach().clone()
    q.bits = 3
    assert q.bits == 3
    assert torch.allclose(q.quant_range(), r8)
    assert torch.allclose(q.step.detach(), s8 * 255 / 7)
    q.set_bits(8, keep_range=False)
    assert torch.allclose(q.step.detach(), s8 * 255 / 7)  # untouched


def test_bits_before_initialisation_just_sets_the_grid():
    q = LSQQuantizer(8, mode="signed")
    q.bits = 4
    assert torch.equal(q.step.detach(), torch.tensor(1.0))
    q(torch.randn(50))
    assert q.bits == 4 and bool(q.initialized)


def test_straight_through_gradients():
    x = torch.linspace(-3, 3, 61, requires_grad=True)
    q = LSQQuantizer(4, mode="signed", init="minmax")
    q(x.detach())  # initialise on the full range
    with torch.no_grad():
        q.step.mul_(0.5)  # now |x| > ~1.5 clips
    y = q(x)
    y.sum().backward()
    lo, hi = q.q_min * q.step.item(), q.q_max * q.step.item()
    inside = (x.detach() >= lo) & (x.detach() <= hi)
    assert torch.equal(x.grad, inside.float())
    assert q.step.grad is not None and torch.isfinite(q.step.grad).all()


def test_step_gradient_is_scaled():
    x = torch.randn(100)
    q1 = LSQQuantizer(4, mode="signed", init="minmax")
    q1(x)
    q1(x).sum().backward()
    # d/ds of sum(round(clamp(x/s))*s) with STE, times g = 1/sqrt(numel*q_max)
    s = q1.step.detach()
    v = x / s
    inner = torch.clamp(v, q1.q_min, q1.q_max)
    raw = torch.where((v >= q1.q_min) & (v <= q1.q_max), inner.round() - v, inner).sum()
    g = 1.0 / (100 * q1.q_max) ** 0.5
    assert torch.allclose(q1.step.grad, raw * g, rtol=1e-4, atol=1e-6)


def test_mse_init_clips_no_worse_than_minmax():
    x = torch.randn(4, 2000)
    x[:, 0] = 40.0  # an outlier per channel
    err = {}
    for init in ("mse", "minmax"):
        q = LSQQuantizer(3, mode="signed", channels=4, init=init)
        err[init] = (q(x) - x).pow(2).sum().item()
    assert err["mse"] < err["minmax"]


def test_disabled_is_identity_and_extra_state_round_trip():
    q = LSQQuantizer(5, mode="asymmetric")
    x = torch.randn(10)
    q(x)
    q.enabled = False
    assert torch.equal(q(x), x)
    q2 = LSQQuantizer(8, mode="asymmetric")
    q2.load_state_dict(q.state_dict())
    assert q2.bits == 5 and bool(q2.initialized)
    assert torch.equal(q2.step, q.step) and torch.equal(q2.offset, q.offset)
    with pytest.raises(ValueError, match="state_dict"):
        LSQQuantizer(8, mode="unsigned").load_state_dict(q.state_dict())


@pytest.mark.parametrize("kwargs,arg", [
    ({"bits": 0}, "bits"), ({"bits": 17}, "bits"), ({"bits": 1, "mode": "signed"}, "bits"),
    ({"bits": 4.0}, "bits"), ({"bits": True}, "bits"), ({"bits": "4"}, "bits"),
    ({"mode": "sym"}, "mode"), ({"init": "max"}, "init"), ({"channels": 0}, "channels"),
])
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"^{arg}:"):
        LSQQuantizer(**kwargs)


def test_bad_bits_assignment_and_channel_mismatch():
    q = LSQQuantizer(8, mode="unsigned", channels=3)
    with pytest.raises(ValueError, match="^bits:"):
        q.bits = 20
    assert q.bits == 8
    with pytest.raises(ValueError, match="^x:"):
        q(torch.randn(4, 2))


# -- fused / torch-kernel paths against the reference ----------------------------------------
def _run(q: LSQQuantizer, x: torch.Tensor, gy: torch.Tensor, backend: str):
    q.backend = backend
    for p in q.parameters():
        p.grad = None
    xr = x.clone().requires_grad_(True)
    y = q(xr)
    y.backward(gy)
    grads = [p.grad.clone() for p in (q.step, q.offset) if p is not None]
    return y.detach(), xr.grad, grads


def _initialised(mode: str, channels, bits: int, x: torch.Tensor, shrink: float):
    q = LSQQuantizer(bits, mode=mode, channels=channels, init="minmax").to(x.dtype)
    q(x)
    with torch.no_grad():  # clip a part of the range; move the offset off the grid
        q.step.mul_(shrink * (1 + 0.3 * torch.rand_like(q.step)))
        if q.offset is not None:
            q.offset.add_(0.37 * q.step)
    return q


def _levels(q: LSQQuantizer, x: torch.Tensor) -> torch.Tensor:
    s = q.step.detach().abs().reshape((-1,) + (1,) * (x.dim() - 1) if q.channels else ())
    beta = 0.0 if q.offset is None else q.offset.detach().reshape(s.shape)
    return (x - beta) / s, s


def _off_the_band(q: LSQQuantizer, x: torch.Tensor) -> torch.Tensor:
    """Move inputs within half a level outside the grid a full level further out."""
    v, s = _levels(q, x)
    low = (v < q.q_min) & (v > q.q_min - 0.5)
    high = (v > q.q_max) & (v < q.q_max + 0.5)
    return x - low * s + high * s


def test_torch_kernels_clip_after_rounding():
    """Documented difference of torch's learnable kernels: the band (q_max, q_max + 0.5)
    counts as inside (gradient passes), where LSQ's clamp-then-round clips it."""
    x = torch.linspace(-1, 1, 201)
    q = LSQQuantizer(3, mode="signed", init="minmax")
    q(x)
    with torch.no_grad():
        q.step.mul_(0.7)
    v, _ = _levels(q, x)
    band = ((v > q.q_max) & (v < q.q_max + 0.5)) | ((v < q.q_min) & (v > q.q_min - 0.5))
    assert band.any()
    gy = torch.ones_like(x)
    y0, gx0, _ = _run(q, x, gy, "reference")
    y1, gx1, _ = _run(q, x, gy, "torch")
    assert torch.allclose(y0, y1, atol=1e-6)
    assert (gx0[band] == 0).all() and (gx1[band] == 1).all()
    assert torch.equal(gx0[~band] == 0, gx1[~band] == 0)


@pytest.mark.parametrize("backend", ["native", "fused", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["signed", "unsigned", "asymmetric"])
@pytest.mark.parametrize("channels", [None, 5])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_fast_paths_equal_the_reference(backend, dtype, mode, channels, bits):
    if backend == "native" and not fake_quant_native.available():
        pytest.skip(f"native kernel unavailable: {fake_quant_native.build_error()}")
    g = torch.Generator().manual_seed(bits * 7 + (channels or 0))
    x = (torch.randn(5, 3, 4, 6, generator=g) * 2 + (1.0 if mode == "unsigned" else 0.0))
    x = x.to(dtype)
    gy = torch.randn(x.shape, generator=g).to(dtype)
    q = _initialised(mode, channels, bits, x, shrink=0.6)
    if backend == "torch":  # torch's kernels clip after rounding: keep x off that band
        x = _off_the_band(q, x)
    y0, gx0, gp0 = _run(q, x, gy, "reference")
    y1, gx1, gp1 = _run(q, x, gy, backend)
    assert y1.dtype == dtype and gx1.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12,
                                                                        "atol": 1e-12}
    assert torch.allclose(y1, y0, **tol)
    assert torch.equal(gx1 == 0, gx0 == 0)  # the same STE mask, exactly
    assert torch.allclose(gx1, gx0, **tol)  # the reference's gx is (gy * s) / s
    assert 0 < (gx0 == 0).sum() < gx0.numel()  # some clipped, some inside: a real check
    for a, b in zip(gp1, gp0):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-4 if dtype == torch.float32 else 1e-10, atol=1e-6)


@pytest.mark.parametrize("backend", ["auto", "native", "fused", "torch", "reference"])
def test_double_model_trains_on_every_backend(backend):
    if backend == "native" and not fake_quant_native.available():
        pytest.skip(f"native kernel unavailable: {fake_quant_native.build_error()}")
    from bitalloc_torch import quantize_model

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 2))
    model = quantize_model(model).double()
    for m in model.modules():
        if isinstance(m, LSQQuantizer):
            m.backend = backend
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    out = model(x)
    out.sum().backward()
    assert out.dtype == torch.float64
    assert model[0].weight.grad.dtype == torch.float64
    assert model[0].weight_quantizer.step.grad is not None
    assert torch.isfinite(model[3].input_quantizer.offset.grad).all()


def test_fused_path_matches_reference_in_a_double_model():
    from bitalloc_torch import quantize_model

    torch.manual_seed(4)
    base = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    x = torch.randn(16, 6, dtype=torch.float64)
    grads = {}
    for backend in ("reference", "fused", "auto"):
        model = quantize_model(copy.deepcopy(base), bits=4).double()
        for m in model.modules():
            if isinstance(m, LSQQuantizer):
                m.backend = backend
        model(x).pow(2).sum().backward()
        grads[backend] = {n: p.grad for n, p in model.named_parameters()}
    for name, g in grads["reference"].items():
        for other in ("fused", "auto"):
            assert torch.allclose(grads[other][name], g, rtol=1e-10, atol=1e-12), (other, name)


def test_no_grad_forward_equals_the_graph_forward():
    x = torch.randn(4, 50)
    q = _initialised("asymmetric", None, 3, x, shrink=0.7)
    with torch.no_grad():
        y0 = q(x)
    assert torch.allclose(q(x), y0, atol=1e-6)


def test_bad_backend():
    with pytest.raises(ValueError, match="^backend:"):
        LSQQuantizer(4, backend="cuda")
    q = LSQQuantizer(4)
    q.backend = "nope"
    with pytest.raises(ValueError, match="^backend:"):
        q(torch.randn(3))


@pytest.mark.parametrize("backend", ["auto", "native"])
def test_non_contiguous_and_half_inputs(backend):
    x = torch.randn(6, 8, 5, 5).permute(0, 2, 3, 1)  # not contiguous
    q = _initialised("asymmetric", None, 4, x, shrink=0.7)
    gy = torch.randn(x.shape)
    y0, gx0, gp0 = _run(q, x, gy, "reference")
    y1, gx1, gp1 = _run(q, x, gy, backend)
    assert torch.allclose(y0, y1, atol=1e-5) and torch.allclose(gx0, gx1, atol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(gp0, gp1))
    qh = copy.deepcopy(q).to(torch.bfloat16)  # no native kernel for bfloat16: eager path
    qh.backend = backend
    assert qh(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_native_kernel_builds_fresh_and_can_be_disabled(tmp_path):
    import os
    import subprocess
    import sys

    code = ("import torch; from bitalloc_torch import fake_quant_native as n, LSQQuantizer;"
            "ok = n.available(); q = LSQQuantizer(4, mode='unsigned');"
            "y = q(torch.rand(100, requires_grad=True)); y.sum().backward();"
            "print(ok, q.step.grad is not None)")
    env = dict(os.environ, BITALLOC_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if out.stdout.split()[0] == "True":
        assert list((tmp_path / "cache").glob("lsq-*.so"))
    assert out.stdout.split()[1] == "True"
    env["BITALLOC_NATIVE"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]  # disabled: the eager path trains


def test_channel_mismatch_after_initialisation_names_x():
    q = LSQQuantizer(4, mode="signed", channels=3)
    q(torch.randn(3, 5))
    q.backend = "native"
    if not fake_quant_native.available():
        pytest.skip("native kernel unavailable")
    with pytest.raises(ValueError, match="^x: expected 3 channels"):
        q(torch.randn(4, 5))


@pytest.mark.parametrize("backend", ["auto", "native", "fused"])
def test_double_backward_equals_the_reference(backend):
    if backend == "native" and not fake_quant_native.available():
        pytest.skip("native kernel unavailable")
    x = torch.randn(4, 30, dtype=torch.float64)
    q = _initialised("asymmetric", None, 3, x, shrink=0.7)
    w = torch.randn(4, 30, dtype=torch.float64)

    def hvp(name):
        q.backend = name
        xr = x.clone().requires_grad_(True)
        loss = (q(xr) * w).pow(2).sum()
        gx, gs = torch.autograd.grad(loss, [xr, q.step], create_graph=True)
        return torch.autograd.grad(gx.sum() + gs, [q.step, q.offset])

    for a, b in zip(hvp(backend), hvp("reference")):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_native_multithreaded_path_equals_the_reference():
    if not fake_quant_native.available():
        pytest.skip("native kernel unavailable")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(3, 70000)  # above the size where the kernel splits the loop
        q = _initialised("asymmetric", None, 4, x, shrink=0.6)
        gy = torch.randn(x.shape)
        y0, gx0, gp0 = _run(q, x, gy, "reference")
        y1, gx1, gp1 = _run(q, x, gy, "native")
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(y0, y1, atol=1e-5) and torch.equal(gx0 == 0, gx1 == 0)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(gp0, gp1))


@pytest.mark.parametrize("x_dtype,p_dtype", [(torch.float64, torch.float32),
                                             (torch.float32, torch.float64)])
@pytest.mark.parametrize("mode,channels", [("asymmetric", None), ("signed", 5)])
def test_native_with_parameters_in_another_dtype(x_dtype, p_dtype, mode, channels):
    """Parameters the kernel cannot read in place (another dtype than ``x``) go through
    small copies in ``x``'s dtype: same values and gradients as the reference."""
    if not fake_quant_native.available():
        pytest.skip("native kernel unavailable")
    g = torch.Generator().manual_seed(11)
    x = torch.randn(5, 3, 7, generator=g)
    q = _initialised(mode, channels, 3, x, shrink=0.6).to(p_dtype)
    x, gy = x.to(x_dtype), torch.randn(x.shape, generator=g).to(x_dtype)
    y0, gx0, gp0 = _run(q, x, gy, "reference")
    y1, gx1, gp1 = _run(q, x, gy, "native")
    assert y1.dtype == x_dtype and all(p.dtype == p_dtype for p in gp1)
    assert torch.allclose(y1, y0.to(x_dtype), rtol=1e-5, atol=1e-6)
    assert torch.equal(gx1 == 0, gx0 == 0) and 0 < (gx0 == 0).sum() < gx0.numel()
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(gp1, gp0))


def test_native_step_gradient_at_a_zero_and_a_negative_step():
    """The in-kernel chain rule of max(|step|, tiny): sign(step) and no gradient below the
    floor, as the reference's grad_scale -> abs -> clamp_min."""
    if not fake_quant_native.available():
        pytest.skip("native kernel unavailable")
    x = torch.randn(3, 40, generator=torch.Generator().manual_seed(2))
    q = _initialised("signed", 3, 4, x, shrink=0.8)
    with torch.no_grad():
        q.step[0] = 0.0
        q.step[1] *= -1
    gy = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    y0, gx0, gp0 = _run(q, x, gy, "reference")
    y1, gx1, gp1 = _run(q, x, gy, "native")
    assert torch.allclose(y1, y0, atol=1e-6) and torch.allclose(gx1, gx0)
    assert gp1[0][0] == 0 and gp1[0][1] != 0
    assert torch.allclose(gp1[0], gp0[0], rtol=1e-4, atol=1e-6)
