"""DDP: two gloo ranks with different data must apply identical bits."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

WORKER = Path(__file__).with_name("bt_ddp_worker.py")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_ranks_apply_identical_bits(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(_free_port()), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and the ranks it spawned
        proc.communicate()
        pytest.fail("the two-rank run did not finish in 150 s")
    assert proc.returncode == 0, out.decode()[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    # the ranks saw different statistics...
    assert r0["local"] != r1["local"] and r0["local2"] != r1["local2"]
    # ...yet made the same decisions, at every reallocation
    assert len(r0["chosen"]) == 3 and len(r0["chosen2"]) == 2
    assert r0["chosen"] == r1["chosen"] and r0["bits"] == r1["bits"]
    assert r0["chosen2"] == r1["chosen2"] and r0["bits2"] == r1["bits2"]
    assert r0["act_bits2"] == r1["act_bits2"]
    assert "2.input_quantizer" in r0["names2"]
    assert r0["steps2"] == r1["steps2"]  # sync_quantizers after rank-local initialisation
