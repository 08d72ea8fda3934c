"""The runner on the real MuJoCo backend: resume after an interrupt, crashes recorded, determinism across
in-process and worker-process runs, shield stops spending steps, the report and the command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from safevla_node.cli.eval_command import main as eval_main
from safevla_node.config import from_mapping
from safevla_node.errors import ConfigError
from safevla_node.evaluation.metrics import EpisodeRecord
from safevla_node.evaluation.report import write_report
from safevla_node.evaluation.runner import EPISODES_FILE, LOCK_FILE, Progress, load_records, run_suite
from safevla_node.evaluation.suite import EpisodeSpec, SuiteConfig, expand, load_suite

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "config" / "eval_suite_smoke.yaml"


def small_suite(**block: Any) -> SuiteConfig:
    """Expert ObjectNav on easy homes with a 30-step budget: about a second per episode."""
    return from_mapping(SuiteConfig, {
        "name": "runner-test", "step_budget": 30,
        "policies": [{"name": "expert", "kind": "expert"}],
        "blocks": [{"name": "b", "tasks": ["objectnav"], "difficulties": ["easy"], "shield": [False], **block}],
    })


def without_wall_time(records: dict[str, EpisodeRecord]) -> dict[str, EpisodeRecord]:
    return {k: replace(r, wall_time_s=0.0) for k, r in records.items()}


def test_an_interrupted_run_resumes_with_only_the_missing_episodes(tmp_path: Path) -> None:
    suite = small_suite(seeds=4)
    seen: list[str] = []

    def interrupt_after_two(progress: Progress) -> None:
        seen.append(progress.record.key)
        if progress.done == 2:
            raise KeyboardInterrupt

    first = run_suite(suite, tmp_path, on_progress=interrupt_after_two)
    assert first.interrupted and first.ran == 2
    kept = load_records(tmp_path)
    assert list(kept) == seen

    resumed: list[str] = []
    second = run_suite(suite, tmp_path, on_progress=lambda p: resumed.append(p.record.key))
    assert (second.skipped, second.ran, second.interrupted) == (2, 2, False)
    all_keys = [s.key for s in expand(suite)]
    assert resumed == all_keys[2:]
    final = load_records(tmp_path)
    assert sorted(final) == sorted(all_keys)
    assert all(final[k] == kept[k] for k in kept)  # finished episodes were not rerun
    assert len((tmp_path / EPISODES_FILE).read_text().splitlines()) == 4


def test_a_crashing_episode_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    suite = from_mapping(SuiteConfig, {
        "name": "crash", "step_budget": 20,
        "policies": [{"name": "broken", "kind": "checkpoint", "checkpoint": str(tmp_path / "missing")},
                     {"name": "expert", "kind": "expert"}],
        "blocks": [{"name": "b", "tasks": ["objectnav"], "difficulties": ["easy"], "shield": [False], "seeds": 1}],
    })
    result = run_suite(suite, tmp_path / "out")
    assert (result.ran, result.errors) == (2, 1)
    records = load_records(tmp_path / "out")
    broken = records["objectnav/easy/none/feasible/broken/shield-off/seed-0"]
    assert broken.error is not None
    assert broken.error.startswith("PolicyLoadError: policy checkpoint")
    assert "missing does not exist" in broken.error and "(at policies.py:" in broken.error
    expert = records["objectnav/easy/none/feasible/expert/shield-off/seed-0"]
    assert expert.error is None and expert.steps > 0
    retried = run_suite(suite, tmp_path / "out", retry_errors=True)
    assert (retried.skipped, retried.ran) == (1, 1)


def test_the_shield_replaces_refused_expert_moves_by_the_experts_own_alternatives(tmp_path: Path) -> None:
    # On this medium home the expert's planned path passes closer to walls than the default shield allows;
    # its distribution ranks the alternatives, so the shield substitutes one instead of stopping it.
    suite = from_mapping(SuiteConfig, {
        "name": "replacements", "step_budget": 25,
        "policies": [{"name": "expert", "kind": "expert"}],
        "blocks": [{"name": "b", "tasks": ["objectnav"], "shield": [True], "seeds": 1}],
    })
    run_suite(suite, tmp_path)
    (record,) = load_records(tmp_path).values()
    assert record.error is None
    assert record.replacements > 0
    assert 0 < record.steps <= 25


def test_a_results_folder_of_another_suite_is_refused(tmp_path: Path) -> None:
    run_suite(small_suite(seeds=1), tmp_path, max_episodes=0)
    with pytest.raises(ConfigError, match="holds results of a different suite definition"):
        run_suite(small_suite(seeds=2), tmp_path, max_episodes=0)


def test_a_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path: Path) -> None:
    record = EpisodeRecord("k", 0, "objectnav", "easy", "expert", False, "none", True)
    (tmp_path / EPISODES_FILE).write_text(record.to_json() + "\n" + record.to_json()[:30])
    assert list(load_records(tmp_path)) == ["k"]
    assert (tmp_path / EPISODES_FILE).read_text() == record.to_json() + "\n"


def test_a_corrupt_complete_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    (tmp_path / EPISODES_FILE).write_text("not json\n")
    with pytest.raises(ConfigError, match=r"episodes.jsonl:1: episode record is not JSON.*move the file away"):
        load_records(tmp_path)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke suite, run once in-process."""
    out = tmp_path_factory.mktemp("smoke")
    result = run_suite(load_suite(SMOKE), out)
    assert result.ran == len(expand(load_suite(SMOKE))) and result.errors == 0
    return out


def test_the_seeded_smoke_suite_gives_identical_episodes_in_two_worker_processes(
    smoke_run: Path, tmp_path: Path
) -> None:
    result = run_suite(load_suite(SMOKE), tmp_path, workers=2)
    assert result.errors == 0
    assert without_wall_time(load_records(tmp_path)) == without_wall_time(load_records(smoke_run))


def test_the_report_writes_summary_markdown_and_plots(smoke_run: Path, tmp_path: Path) -> None:
    records = list(load_records(smoke_run).values())
    files = write_report(records, tmp_path, title="smoke")
    summary = json.loads(files.summary.read_text())
    assert summary["episodes"] == len(records)
    assert set(summary["main"]) == {"expert", "expert + shield", "noisy_expert", "noisy_expert + shield"}
    assert summary["extreme_failure"]["expert"]["sr"]["value"] == 0.0
    text = files.markdown.read_text()
    assert "| Policy | ObjNav SR↑/CC↓ | PickUp SR↑/CC↓ | Fetch SR↑/CC↓ |" in text
    assert "| expert + shield | " in text
    assert len(files.plots) == 4
    for plot in files.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({plot.name})" in text


def test_the_report_lists_crashed_episodes(tmp_path: Path) -> None:
    crashed = EpisodeRecord("pickup/easy/none/feasible/x/shield-off/seed-0", 0, "pickup", "easy", "x", False,
                            "none", True, error="ValueError: no target (at tasks.py:80 in sample_task)")
    text = write_report([crashed], tmp_path).markdown.read_text()
    assert "## Crashed episodes" in text and "ValueError: no target" in text


def test_the_command_resumes_a_finished_folder_and_rewrites_the_report(
    smoke_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert eval_main([str(SMOKE), "--out", str(smoke_run)]) == 0
    assert "episodes recorded (0 crashed)" in capsys.readouterr().out
    assert (smoke_run / "report.md").is_file()


def test_the_command_reports_a_bad_suite_file_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "suite.yaml"
    bad.write_text("policies: []\n")
    assert eval_main([str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "the suite lists no policies" in capsys.readouterr().err


def test_a_second_run_on_a_folder_being_written_is_refused_and_the_folder_is_kept(tmp_path: Path) -> None:
    import fcntl

    suite = small_suite(seeds=1)
    run_suite(suite, tmp_path)
    before = (tmp_path / EPISODES_FILE).read_text()
    with (tmp_path / LOCK_FILE).open("a") as other_run:  # another process's run holds the folder
        fcntl.flock(other_run, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConfigError, match="is being written by another run"):
            run_suite(suite, tmp_path, retry_errors=True)
    assert (tmp_path / EPISODES_FILE).read_text() == before
    assert run_suite(suite, tmp_path).skipped == len(expand(suite))  # the lock is free again


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def test_a_terminated_run_stops_its_workers_and_keeps_the_finished_episodes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump({
        "name": "terminate-test", "step_budget": 30, "policies": [{"name": "expert", "kind": "expert"}],
        "blocks": [{"name": "b", "tasks": ["objectnav"], "difficulties": ["easy"], "shield": [False],
                    "seeds": 40}],
    }))
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "safevla_node.evaluation", str(suite_file), "--out", str(out),
                            "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    assert run.stdout is not None
    for line in run.stdout:  # until the second episode is recorded
        if "[2/40]" in line:
            break
    else:
        pytest.fail(f"the run ended before its second episode (exit {run.wait()})")
    children = [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(run.pid)], capture_output=True,
                                               text=True, check=True).stdout.split()]
    run.send_signal(signal.SIGTERM)
    rest = run.stdout.read()
    assert run.wait(timeout=30) == 130, rest  # interrupted: rerun the same command to resume
    assert "interrupted after" in rest
    deadline = time.monotonic() + 10.0
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in children), "worker processes outlived the terminated run"
    assert 2 <= len(load_records(out)) < 40


class TorchThreadsExecutor:
    """Reports, as each record's ``error``, how many intra-op threads torch has in the worker process."""

    def run(self, spec: EpisodeSpec) -> EpisodeRecord:
        import torch

        return EpisodeRecord(key=spec.key, seed=spec.seed, task=spec.task.value, difficulty=spec.difficulty,
                             policy=spec.policy.name, shield=spec.shield, perturbation=spec.perturbation,
                             feasible=spec.feasible, error=f"torch threads {torch.get_num_threads()}")

    def close(self) -> None:
        pass


def test_worker_processes_share_the_cores_instead_of_each_taking_all_of_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run_suite(small_suite(seeds=4), tmp_path, workers=2, executor_factory=TorchThreadsExecutor)
    share = max(1, (os.cpu_count() or 1) // 2)
    assert {r.error for r in load_records(tmp_path).values()} == {f"torch threads {share}"}
