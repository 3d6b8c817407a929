"""`bitalloc demo` (bitalloc_torch.demo.run): a tiny run end to end, and its options."""

import argparse
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from bitalloc_torch.demo import run as demo  # noqa: E402


def test_add_arguments_defaults():
    args = demo.add_arguments(argparse.ArgumentParser()).parse_args([])
    assert args.budget == 3.0 and args.act_bits == 8 and args.out == "demo_out"
    assert args.bits == "2,3,4,5,6,7,8" and not args.quiet


def test_demo_tiny_run(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = demo.main(["--steps", "12", "--every", "4", "--float-epochs", "2", "--out", str(out),
                    "--quiet", "--budget", "2.5"])
    text = capsys.readouterr().out
    assert rc == 0, text
    # the table: one row per arm, averages over allocated and all layers, per-layer bits
    assert "avg bits (alloc)" in text and "avg bits (all)" in text and "MBOPs" in text
    for row in ("float", "uniform 2-bit", "QBitOpt"):
        assert any(line.startswith(row) for line in text.splitlines()), row
    assert "per-layer weight bits" in text and "features.3.0" in text
    assert (out / "bits_over_training.png").stat().st_size > 1000
    res = json.loads((out / "result.json").read_text())
    sizes = res["sizes"]
    for key in ("uniform", "qbitopt"):
        arm = res["arms"][key]
        assert arm["budget_ok"] is True
        assert arm["avg_bits"] <= 2.5 + 1e-9
        assert arm["bits"][arm["fixed"][0]] == 8 and arm["bits"][arm["fixed"][1]] == 8
        for _step, bits in arm["history"]:  # every allocation along the way fits too
            alloc = arm["allocated"]
            avg = sum(bits[n] * sizes[n] for n in alloc) / sum(sizes[n] for n in alloc)
            assert avg <= 2.5 + 1e-9
    qb = res["arms"]["qbitopt"]
    assert [r["step"] for r in qb["reallocations"]] == [4, 8]  # strictly before the end
    assert set(qb["bits"].values()) <= set(res["candidates"])


def test_demo_rejects_bad_options(tmp_path, capsys):
    assert demo.main(["--bits", "2,x", "--out", str(tmp_path), "--quiet"]) == 2
    assert demo.main(["--budget", "1", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--bits" in capsys.readouterr().err


def test_bitalloc_demo_subcommand(tmp_path, capsys):
    """`bitalloc demo ...` reaches the demo through the core command line."""
    from bitalloc.cli import main

    out = tmp_path / "cli"
    rc = main(["demo", "--steps", "8", "--every", "4", "--float-epochs", "1", "--out", str(out),
               "--quiet"])
    assert rc == 0
    assert (out / "result.json").exists() and (out / "bits_over_training.png").exists()
    assert "QBitOpt" in capsys.readouterr().out
