"""The adapter's docstring examples run, its public names exist, and core stays torch-free."""

import doctest
import importlib
import subprocess
import sys

import pytest

import bitalloc_torch as bt

MODULES = ["bitalloc_torch.quantizers", "bitalloc_torch.model", "bitalloc_torch.targets",
           "bitalloc_torch.sensitivity", "bitalloc_torch.problem", "bitalloc_torch.qbitopt",
           "bitalloc_torch.ao", "bitalloc_torch.distributed"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_public_api_names_exist():
    assert all(hasattr(bt, name) for name in bt.__all__)
    for name in ("quantize_model", "QBitOpt", "calibrate", "param_groups", "fit_sensitivity"):
        assert name in bt.__all__


def test_import_bitalloc_does_not_import_torch():
    code = "import sys, bitalloc; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
