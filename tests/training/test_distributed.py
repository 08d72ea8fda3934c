"""torchrun with two ranks (gloo on 127.0.0.1) on the toy CMDP: both ranks end with identical parameters."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from policies.training.distributed import parameters_digest
from policies.training.trainer import CHECKPOINT_FILE
from policies.training.toy_cmdp import MLPActorCritic

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out: Path, nproc: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
                "--master_addr=127.0.0.1", f"--master_port={_free_port()}"] if nproc > 1 else [sys.executable]
    cmd = launcher + ["-m", "policies.training", "--config", "config/train_toy.yaml", "--out", str(out),
                      "--updates", "4"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


@pytest.mark.skipif(shutil.which("torchrun") is None and sys.platform != "linux", reason="needs torchrun")
def test_two_ranks_end_with_identical_parameters_and_the_same_command_runs_single_process(tmp_path):
    two = _train(tmp_path / "ddp", nproc=2)
    assert two["world_size"] == 2
    assert len(two["param_digests"]) == 2 and two["param_digests"][0] == two["param_digests"][1]
    assert two["env_steps"] == 4 * 2 * 8 * 16  # both ranks' environments count

    state = torch.load(tmp_path / "ddp" / CHECKPOINT_FILE, weights_only=True)
    model = MLPActorCritic(1, 2, 1, hidden=16)
    model.load_state_dict(state["model"])
    assert parameters_digest(model) == two["param_digests"][0]
    assert len(state["ranks"]) == 2 and state["ranks"][0]["sample_gen"].ne(state["ranks"][1]["sample_gen"]).any()

    one = _train(tmp_path / "single", nproc=1)
    assert one["world_size"] == 1 and one["env_steps"] == 4 * 8 * 16
    assert one["param_digests"][0] != two["param_digests"][0]  # twice the data gives another update
