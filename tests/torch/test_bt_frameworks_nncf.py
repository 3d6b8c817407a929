"""QBitOpt on a MobileNetV2-style net quantized by NNCF (``nncf.quantize``, then QAT).

The first quantized forward compiles NNCF's C++ extension (about 2.5 minutes on this
2-core machine, cached in ``~/.cache/torch_extensions`` afterwards);
``NNCF_EXTENSION_LOAD_TIMEOUT=0`` keeps NNCF from giving up on the build.
"""

from __future__ import annotations

import os

os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "0")

import pytest  # noqa: E402
import torch  # noqa: E402
from bt_frameworks_common import (  # noqa: E402
    fake_quant_rows,
    image_batches,
    import_or_skip,
    mobilenet,
    train_with_qbitopt,
)

import bitalloc as ba  # noqa: E402
import bitalloc_torch as bt  # noqa: E402

nncf = import_or_skip("nncf", "NNCF")

from bitalloc_torch.frameworks import nncf_qat  # noqa: E402


def _prepared(batches, seed=0):
    model = mobilenet(seed).eval()
    data = nncf.Dataset([x for x, _ in batches[:2]])
    q = nncf.quantize(model, data, subset_size=16)
    return q.train()


def _levels(t):
    q = t.quantizer.quantizer
    return fake_quant_rows(q(t.module.weight))


def test_qbitopt_reallocates_nncf_mobilenet_and_state_dict_round_trip():
    batches = image_batches(6)
    m = _prepared(batches)
    targets = bt.find_targets(m)
    assert len(targets) == 23 and targets[0].name == "features.0.0"
    assert targets[-1].name == "classifier"
    qb = train_with_qbitopt(m, batches, _levels)
    for t in qb.groups.targets:  # num_bits is a quantizer parameter: in the model's state
        assert t.quantizer.quantizer.num_bits == qb.bits[t.name]
    m2 = _prepared(batches, seed=2)
    qb2 = bt.QBitOpt(m2, [ba.AverageBits(4.0)], bits=(2, 3, 4, 6, 8), every=2)
    m2.load_state_dict(m.state_dict())
    assert {t.name: t.quantizer.bits for t in bt.find_targets(m2)} == qb.bits
    qb2.load_state_dict(qb.state_dict())
    assert qb2.bits == qb.bits
    for t, t2 in zip(qb.groups.targets, qb2.groups.targets):
        assert torch.equal(_levels(t), _levels(t2))


def test_bit_change_keeps_the_learned_range():
    m = _prepared(image_batches(2))
    for t in bt.find_targets(m)[:4]:
        a = t.quantizer
        assert isinstance(a, nncf_qat.NNCFQuantizerAdapter) and (a.min_bits, a.max_bits) == (2, 8)
        high = a.quantizer.get_input_low_input_high()[1].clone()
        a.set_bits(3)
        assert a.bits == 3 and int(a.quantizer.level_high) == 3
        assert torch.allclose(a.quantizer.get_input_low_input_high()[1], high)
        with pytest.raises(ValueError, match="^bits:"):
            a.set_bits(9)
