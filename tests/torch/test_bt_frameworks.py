"""Discovery across frameworks (bitalloc_torch.targets / .frameworks), bad input, AIMET,
the layering of the bindings, and the README's framework examples."""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from bt_frameworks_common import import_or_skip
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt
from bitalloc_torch import frameworks, protocol, targets

ROOT = Path(__file__).parents[2]
PKG = ROOT / "adapters" / "bitalloc_torch"
BINDING_MODULES = [f"bitalloc_torch.frameworks.{b}" for b in frameworks.BINDINGS]
EXTRAS = {"torchao_qat": "torchao", "brevitas_qat": "brevitas", "nncf_qat": "nncf",
          "modelopt_qat": "modelopt", "aimet_qat": "aimet"}


@pytest.mark.parametrize("name", ["bitalloc_torch.protocol", "bitalloc_torch.targets"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def _imports(path: Path) -> set[str]:
    """Relative modules imported by ``path``, resolved inside the package."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG.parent).with_suffix("")
    pkg = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[: len(pkg) - node.level + 1]
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            out.update(names)
    return out


def test_bindings_are_layered_without_cycles():
    """protocol <- ao, frameworks/* <- targets: neither ao nor a binding imports targets."""
    files = {"bitalloc_torch.protocol": PKG / "protocol.py", "bitalloc_torch.ao": PKG / "ao.py",
             "bitalloc_torch.frameworks": PKG / "frameworks" / "__init__.py"}
    files |= {m: PKG / "frameworks" / f"{m.rsplit('.', 1)[1]}.py" for m in BINDING_MODULES}
    for mod, path in files.items():
        deps = _imports(path)
        assert "bitalloc_torch.targets" not in deps, (mod, deps)
    assert _imports(PKG / "protocol.py") == set()
    assert "bitalloc_torch.ao" in _imports(PKG / "targets.py")


@pytest.mark.parametrize("name", list(frameworks.BINDINGS))
def test_bindings_import_their_framework_lazily(name):
    b = frameworks.binding(name)
    src = (PKG / "frameworks" / f"{name}.py").read_text()
    top = [n for n in ast.parse(src).body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not any(b.IMPORT.split(".")[0] in ast.dump(n) for n in top)  # only inside functions
    assert b.EXTRA == EXTRAS[name] and b.IN_USE.split(".")[0] == b.IMPORT.split(".")[0]


def test_finding_targets_imports_no_framework():
    code = ("import sys, torch.nn as nn, bitalloc_torch as bt\n"
            "m = bt.quantize_model(nn.Sequential(nn.Linear(4, 4)))\n"
            "assert [t.name for t in bt.find_targets(m)] == ['0']\n"
            "bad = [k for k in ('torchao', 'brevitas', 'nncf', 'modelopt', 'aimet_torch') "
            "if k in sys.modules]\n"
            "assert not bad, bad\n")
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "adapters")]))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("name", list(frameworks.BINDINGS))
def test_missing_framework_names_the_extra(name, monkeypatch):
    b = frameworks.binding(name)
    monkeypatch.setitem(sys.modules, b.IMPORT, None)  # "import <framework>" now fails
    with pytest.raises(ba.MissingDependencyError, match=rf"bitalloc\[{EXTRAS[name]}\]"):
        b.targets(nn.Linear(2, 2))


def test_unknown_binding_name():
    with pytest.raises(ValueError, match="^name:"):
        frameworks.binding("tensorrt")


def test_two_frameworks_in_one_model_is_refused_naming_both():
    import_or_skip("torchao.quantization.qat", "torchao")
    from torchao.quantization import FqnToConfig, quantize_
    from torchao.quantization.qat import IntxFakeQuantizeConfig, QATConfig

    m = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    cfg = QATConfig(weight_config=IntxFakeQuantizeConfig(torch.int4, group_size=8),
                    step="prepare")
    quantize_(m, FqnToConfig({"0": cfg}), filter_fn=None)
    bt.quantize_model(m, skip=["0"])  # bitalloc's own LSQ quantizers on the other layer
    with pytest.raises(ValueError, match=r"^model: .*bitalloc \(quantize_model\) and torchao"):
        bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=(2, 4, 8))
    # the explicit route still works: the user chooses the targets
    qb = bt.QBitOpt(m, [ba.AverageBits(4.0)], bits=(2, 4, 8),
                    targets=frameworks.binding("torchao_qat").targets(m))
    assert list(qb.bits) == ["0"]
    assert set(targets.find_all(m)) == {"bitalloc (quantize_model)", "torchao"}


def test_two_third_party_frameworks_refused():
    import_or_skip("torchao.quantization.qat", "torchao")
    import_or_skip("brevitas.nn", "Brevitas")
    import brevitas.nn as qnn
    from torchao.quantization import FqnToConfig, quantize_
    from torchao.quantization.qat import IntxFakeQuantizeConfig, QATConfig

    m = nn.Sequential(nn.Linear(8, 8), qnn.QuantLinear(8, 4, bias=True))
    cfg = QATConfig(weight_config=IntxFakeQuantizeConfig(torch.int4, group_size=8),
                    step="prepare")
    quantize_(m, FqnToConfig({"0": cfg}), filter_fn=None)
    with pytest.raises(ValueError, match="torchao and Brevitas"):
        bt.find_targets(m)


def test_protocol_names_are_re_exported_by_targets():
    for name in ("BitQuantizer", "QuantTarget", "unwrap", "select", "ROOT"):
        assert getattr(targets, name) is getattr(protocol, name)
    assert bt.QuantTarget is protocol.QuantTarget and bt.find_targets is targets.find_targets


def test_aimet_binds_if_it_imports():
    aimet = import_or_skip("aimet_torch", "AIMET")  # fails here: torchvision ops vs CPU torch
    assert aimet is not None
    assert frameworks.binding("aimet_qat").find(nn.Linear(2, 2)).targets == []


# -- the README section's examples ------------------------------------------------------
_README = (ROOT / "README.md").read_text()
_SECTION = re.search(r"^## QBitOpt with torchao / Brevitas / NNCF / ModelOpt\n(.*?)(?=^## )",
                     _README, flags=re.S | re.M)
BLOCKS = re.findall(r"```py\n(.*?)```", _SECTION.group(1), flags=re.S) if _SECTION else []
_NEEDS = [("torchao", "torchao.quantization.qat", "torchao"), ("brevitas", "brevitas.nn",
          "Brevitas"), ("nncf", "nncf", "NNCF"), ("modelopt", "modelopt.torch.quantization",
          "ModelOpt")]


def _framework_of(code: str) -> tuple[str, str]:
    for key, module, name in _NEEDS:
        if re.search(rf"^\s*(import|from) .*\b{key}\b", code, flags=re.M):
            return module, name
    raise AssertionError(f"README block imports no framework:\n{code}")


def test_readme_section_has_one_example_per_framework():
    assert _SECTION, "README section 'QBitOpt with torchao / Brevitas / NNCF / ModelOpt'"
    assert sorted(_framework_of(c)[1] for c in BLOCKS) == ["Brevitas", "ModelOpt", "NNCF",
                                                          "torchao"]
    assert all(len(c.strip().splitlines()) <= 25 for c in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS, ids=[_framework_of(c)[1] for c in BLOCKS])
def test_readme_framework_example_runs(code, monkeypatch):
    module, name = _framework_of(code)
    import_or_skip(module, name)
    monkeypatch.chdir(ROOT)
    exec(compile(code, f"README.md ({name})", "exec"), {"__name__": "__readme__"})
