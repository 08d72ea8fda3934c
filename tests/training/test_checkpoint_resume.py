"""Stop after k updates, resume in a new process state, and continue exactly as an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from policies.training.distributed import parameters_digest
from policies.training.trainer import CHECKPOINT_FILE, ROLLOUT_PHASES, Trainer
from safevla_node.errors import ConfigError, TrainingError
from tests.training.toy import toy_config


REPO = Path(__file__).resolve().parents[2]
TIMINGS = ("steps_per_s", "rollout_s", "update_s", *ROLLOUT_PHASES)


def _rows(path):
    with (path / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMINGS} for r in csv.DictReader(f)]


def test_resumed_run_continues_exactly_like_an_uninterrupted_one(tmp_path):
    config = toy_config(updates=6, checkpoint_every=3, constraint={"method": "pid"})
    straight = Trainer(config, tmp_path / "straight", resume=False)
    straight.run()

    first = Trainer(config, tmp_path / "split", resume=False)
    first.run(stop_after=3)
    assert (tmp_path / "split" / CHECKPOINT_FILE).is_file()
    first.train_one_update()  # work after the checkpoint that a crash would lose
    first._log({"update": 4, **{k: 0.0 for k in first._csv_fields if k != "update"}})
    del first
    torch.manual_seed(1234)  # a new process would not share the global RNG either

    resumed = Trainer(config, tmp_path / "split")
    assert resumed.update == 3 and resumed.env_steps == 3 * 8 * 16
    resumed.run()
    assert parameters_digest(resumed.policy) == parameters_digest(straight.policy)
    assert resumed.multipliers.state_dict() == straight.multipliers.state_dict()
    assert resumed.learner.optimizer.state_dict()["state"][0]["step"] == \
        straight.learner.optimizer.state_dict()["state"][0]["step"]
    assert torch.equal(resumed.sample_gen.get_state(), straight.sample_gen.get_state())
    assert resumed.envs.episode_indices == straight.envs.episode_indices
    assert _rows(tmp_path / "split") == _rows(tmp_path / "straight")  # the lost row 4 was dropped


def test_every_update_logs_where_its_rollout_time_went(tmp_path):
    trainer = Trainer(toy_config(updates=1), tmp_path, resume=False)
    row = trainer.train_one_update()
    phases = [row[p] for p in ROLLOUT_PHASES]
    assert all(p > 0.0 for p in phases) and sum(phases) <= row["rollout_s"]


def test_resuming_a_run_logged_with_fewer_columns_rewrites_its_metrics_with_this_versions_columns(tmp_path):
    Trainer(toy_config(updates=2, checkpoint_every=1), tmp_path, resume=False).run()
    path = tmp_path / "metrics.csv"
    with path.open(newline="") as f:
        old = [{k: v for k, v in r.items() if k not in ROLLOUT_PHASES} for r in csv.DictReader(f)]
    with path.open("w", newline="") as f:  # as an older version wrote it
        writer = csv.DictWriter(f, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old)

    Trainer(toy_config(updates=3, checkpoint_every=1), tmp_path).run()
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["update"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["act_s"] == "nan" and float(rows[2]["act_s"]) > 0.0
    assert [{k: r[k] for k in old[0]} for r in rows[:2]] == old


def test_resume_refuses_a_checkpoint_written_with_other_settings(tmp_path):
    Trainer(toy_config(updates=1), tmp_path, resume=False).run()
    with pytest.raises(TrainingError, match=r"other settings \(\['ppo.lr'\]\)"):
        Trainer(toy_config(updates=2, ppo={"lr": 0.5}), tmp_path)


def test_resume_may_extend_the_number_of_updates(tmp_path):
    Trainer(toy_config(updates=1), tmp_path, resume=False).run()
    trainer = Trainer(toy_config(updates=2), tmp_path)
    assert trainer.run()["update"] == 2


def test_time_limit_stops_after_the_current_update_with_a_resumable_checkpoint(tmp_path):
    config = toy_config(updates=1000, checkpoint_every=1000, time_limit_min=1e-9)
    summary = Trainer(config, tmp_path, resume=False).run()
    assert summary["update"] == 1
    resumed = Trainer(toy_config(updates=2, checkpoint_every=1000), tmp_path)
    assert resumed.update == 1 and resumed.run()["update"] == 2


def test_a_negative_time_limit_is_refused():
    with pytest.raises(ConfigError, match="time_limit_min"):
        toy_config(time_limit_min=-1.0)


def test_an_unknown_training_difficulty_is_refused():
    with pytest.raises(ConfigError, match="difficulties"):
        toy_config(env={"difficulties": ["extreme"]})


def test_ctrl_c_finishes_the_update_checkpoints_and_stops_the_workers(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it: the subprocess workers ignore it,
    the trainer finishes its update, checkpoints it and exits 0; nothing of the group is left running."""
    config = tmp_path / "toy.yaml"
    toy = (REPO / "config" / "train_toy.yaml").read_text()
    config.write_text(toy.replace("log_every: 25", "log_every: 1")
                      .replace("num_envs: 8", "num_envs: 2, workers: subprocess"))
    run = subprocess.Popen([sys.executable, "-m", "policies.training", "--config", str(config), "--out",
                            str(tmp_path / "run"), "--updates", "1000000"], cwd=REPO, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert run.stdout is not None
        for line in run.stdout:
            if "update 3/" in line:
                break
        os.killpg(run.pid, signal.SIGINT)
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, output
    assert "stopping after this update" in output
    stopped = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)["update"]
    assert f"interrupted (Ctrl-C) after update {stopped}" in output
    assert int(_rows(tmp_path / "run")[-1]["update"]) == stopped
    deadline = time.monotonic() + 10
    while _group_alive(run.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(run.pid), "a rollout worker outlived the trainer"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
