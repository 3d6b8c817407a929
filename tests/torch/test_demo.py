"""`bitalloc demo` (bitalloc_torch.demo.run): options, a tiny run end to end, no data."""

import argparse
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from bitalloc_torch.demo import run as demo  # noqa: E402
from bitalloc_torch.demo.data import DataUnavailable, fashion_mnist  # noqa: E402


def _missing():
    try:
        fashion_mnist()
    except DataUnavailable as e:
        return str(e)
    return None


TINY = ["--steps", "4", "--every", "2", "--batch", "16", "--test-images", "128",
        "--train-images", "256", "--threads", "1", "--quiet"]


def test_add_arguments_defaults():
    args = demo.add_arguments(argparse.ArgumentParser()).parse_args([])
    assert args.budget == 3.0 and args.act_bits == 8 and args.out == "demo_out"
    assert args.bits == "2,3,4,5,6,7,8" and args.test_images is None and not args.quiet
    assert demo.CHECKPOINT.exists()


@pytest.mark.slow
def test_demo_tiny_run(tmp_path, capsys):
    if _missing():
        pytest.skip(_missing())
    out = tmp_path / "demo"
    rc = demo.main([*TINY, "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "| post-training, bitalloc (FIT) |" in text and "| QAT, QBitOpt |" in text
    assert "128 test images" in text
    res = json.loads((out / "result.json").read_text())
    for part in ("ptq", "arms"):
        for key in (("uniform", "allocated") if part == "ptq" else ("uniform", "qbitopt")):
            arm = res[part][key]
            assert 0.0 <= arm["acc"] <= 100.0 and arm["budget_ok"] is True
    assert res["budget_ok"] is True and res["n_test"] == 128
    qb = res["arms"]["qbitopt"]
    assert [s for s, _ in qb["ranges"]] == [2]  # never at the final step
    sizes = qb["sizes"]
    for _step, bits in qb["history"]:  # every allocation along the way fits too
        avg = sum(bits[n] * sizes[n] for n in bits) / sum(sizes[n] for n in bits)
        assert avg <= 3.0 + 1e-9
    assert (out / "demo.png").stat().st_size > 1000


def test_demo_rejects_bad_options(tmp_path, capsys):
    assert demo.main(["--bits", "2,x", "--out", str(tmp_path), "--quiet"]) == 2
    assert demo.main(["--budget", "1", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--bits" in capsys.readouterr().err


def test_missing_dataset_prints_the_install_command(tmp_path, capsys, monkeypatch):
    import bitalloc_torch.demo.data as data

    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "none")
    assert demo.main(["--out", str(tmp_path), "--quiet"]) == 2
    assert "apt-get install -y dataset-fashion-mnist" in capsys.readouterr().err


@pytest.mark.slow
def test_bitalloc_demo_subcommand(tmp_path, capsys):
    """`bitalloc demo ...` reaches the demo through the core command line."""
    if _missing():
        pytest.skip(_missing())
    from bitalloc.cli import main

    out = tmp_path / "cli"
    assert main(["demo", *TINY, "--out", str(out)]) == 0
    assert (out / "result.json").exists() and (out / "demo.png").exists()
    assert "QBitOpt" in capsys.readouterr().out
