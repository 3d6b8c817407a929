"""Write ``examples/resnet18_fit.json``: ResNet-18 layer shapes with synthetic sensitivities.

The sizes and MACs are ResNet-18's real ones at 224x224 input; the sensitivities are
synthetic (seeded lognormal, larger near the input and output, as FIT measurements on
ImageNet CNNs typically are), because this example must ship without a model. Run
``python examples/make_resnet18_example.py`` to regenerate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def resnet18_layers() -> list[tuple[str, int, int]]:
    """``(name, weight numel, MACs)`` of every conv/linear layer of ResNet-18 at 224x224."""
    layers = [("conv1", 64 * 3 * 49, 64 * 3 * 49 * 112 * 112)]
    cin, hw = 64, 56
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if (stage > 1 and block == 0) else 1
            out_hw = hw // stride
            c_in = cin if block == 0 else cout
            pre = f"layer{stage}.{block}"
            layers.append((f"{pre}.conv1", cout * c_in * 9, cout * c_in * 9 * out_hw ** 2))
            layers.append((f"{pre}.conv2", cout * cout * 9, cout * cout * 9 * out_hw ** 2))
            if block == 0 and (stride != 1 or c_in != cout):
                layers.append((f"{pre}.downsample", cout * c_in, cout * c_in * out_hw ** 2))
            hw = out_hw
        cin = cout
    layers.append(("fc", 512 * 1000, 512 * 1000))
    return layers


def main() -> None:
    rng = np.random.default_rng(18)
    layers = resnet18_layers()
    depth = np.linspace(0.0, 1.0, len(layers))
    sens = np.exp(rng.normal(0.0, 1.0, len(layers)) + 1.5 * (depth - 0.5) ** 2 * 4)
    groups = []
    for (name, size, macs), s in zip(layers, sens):
        g = {"name": name, "size": size, "sensitivity": round(float(s), 6), "macs": macs,
             "act_bits": 8}
        if name in ("conv1", "fc"):
            g["allowed_bits"] = [8]
        groups.append(g)
    total_macs = sum(m for _, _, m in layers)
    data = {
        "description": "ResNet-18 layer shapes (real sizes and MACs at 224x224) with synthetic "
                       "seeded sensitivities; first and last layer pinned to 8 bits; residual "
                       "downsample convs tied to their block's conv2.",
        "bits": [2, 3, 4, 5, 6, 7, 8], "noise": "uniform", "groups": groups,
        "ties": [[f"layer{s}.0.conv2", f"layer{s}.0.downsample"] for s in (2, 3, 4)],
        "constraints": [{"type": "average_bits", "max": 4.0},
                        {"type": "bops", "max": round(total_macs * 8 * 5.0)}],
    }
    out = Path(__file__).with_name("resnet18_fit.json")
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} ({len(groups)} groups)")


if __name__ == "__main__":
    main()
