"""Two-rank gloo run for test_bt_ddp.py: ``python bt_ddp_worker.py PORT OUT_DIR``.

Each rank trains the same tiny model on different data and writes what it saw to
``OUT_DIR/rank<r>.json``: its local FIT statistics just before a reallocation (these
differ between ranks) and the bits QBitOpt chose (these must not).
"""

import json
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import bitalloc as ba
import bitalloc_torch as bt
from bitalloc_torch.sensitivity import FITAccumulator

BITS = (2, 3, 4, 6, 8)


def _model(rank=None):
    torch.manual_seed(0)  # identical weights on both ranks
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    m = bt.quantize_model(m)
    if rank is None:  # the same calibration data everywhere
        bt.calibrate(m, [torch.randn(32, 6, generator=torch.Generator().manual_seed(7))])
    else:  # lazy initialisation from each rank's own first batch, then synchronised
        m(torch.randn(32, 6) * (1 + rank))
        bt.sync_quantizers(m)
    return m


def _train(model, qb, rank, gen, steps, every):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mirror = FITAccumulator(qb.groups.targets, qb.groups.act_targets)  # this rank alone
    local, chosen = [], []
    for t in range(1, steps + 1):
        x = torch.randn(16, 6, generator=gen) * (1.0 + rank)
        y = torch.randn(16, 3, generator=gen)
        nn.functional.mse_loss(model(x), y).backward()
        mirror.accumulate()
        if t % every == 0:
            local.append(mirror.sensitivity().tolist())
            mirror.reset()
        rec = qb.step()
        if rec is not None:
            chosen.append(rec.bits)
        opt.step()
        opt.zero_grad()
    mirror.remove()
    return local, chosen


def run(rank, world, port, out_dir):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=60))
    try:
        gen = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        # 1. plain model, gradients not synchronised: every statistic differs per rank
        m = _model()
        qb = bt.QBitOpt(m, [ba.AverageBits(3.5)], bits=BITS, every=3)
        local, chosen = _train(m, qb, rank, gen, 9, 3)
        # 2. DDP model with activation groups (activation gradients stay local)
        m2 = _model(rank)
        steps = [q.step.sum().item() for q in m2.modules() if isinstance(q, bt.LSQQuantizer)]
        ddp = nn.parallel.DistributedDataParallel(m2)
        qb2 = bt.QBitOpt(ddp, [ba.AverageBits(4.0)], bits=BITS, every=3, activations=True,
                         sample_input=torch.zeros(1, 6))
        local2, chosen2 = _train(ddp, qb2, rank, gen, 6, 3)
        out = {"local": local, "chosen": chosen, "bits": qb.bits, "local2": local2,
               "chosen2": chosen2, "bits2": qb2.bits, "act_bits2": qb2.act_bits,
               "names2": qb2.names, "steps2": steps}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(out, f)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    mp.spawn(run, args=(2, int(sys.argv[1]), sys.argv[2]), nprocs=2, join=True)
