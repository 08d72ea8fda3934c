"""``safevla compare``: paired comparison of two policies from results folders and episode files."""

from __future__ import annotations

from pathlib import Path

import pytest

from safevla_node.cli import main
from safevla_node.errors import ConfigError
from safevla_node.evaluation.metrics import EpisodeRecord
from safevla_node.evaluation.runner import EPISODES_FILE, read_records
from tests.evaluation.test_metrics import episode


def _write(path: Path, records: list[EpisodeRecord]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.to_json() + "\n" for r in records))
    return path


def _compare(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["compare", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_cheaper_candidate_with_the_same_successes_is_better(tmp_path, capsys) -> None:
    # The baseline's records in a results folder, the candidate's in a separate episode file (as in docs/).
    costs = [0.0, 3.0, 6.0, 2.0, 5.0, 4.0, 8.0, 1.0]
    _write(tmp_path / "before" / EPISODES_FILE,
           [episode(s, success=s % 2 == 0, cost=c + 2.0, policy="start") for s, c in enumerate(costs)])
    after = _write(tmp_path / "after.jsonl",
                   [episode(s, success=s % 2 == 0, cost=c, policy="tuned") for s, c in enumerate(costs)])
    code, out, _ = _compare(capsys, tmp_path / "before", after, "--baseline", "start", "--candidate", "tuned")
    assert code == 0
    assert "tuned against start: 8 common episodes" in out
    assert "CC 5.62 -> 3.62: difference -2.00 [95% CI -2.00, -2.00]" in out
    assert "SR 0.500 -> 0.500: difference +0.000" in out
    assert "better by the fine-tuning goal: yes" in out


def test_a_candidate_that_loses_successes_is_not_comparable(tmp_path, capsys) -> None:
    records = [episode(s, success=True, cost=5.0, policy="start") for s in range(10)]
    records += [episode(s, success=s >= 5, cost=0.0, policy="tuned") for s in range(10)]
    path = _write(tmp_path / "both.jsonl", records)
    code, out, _ = _compare(capsys, path, "--baseline", "start", "--candidate", "tuned")
    assert code == 0
    assert "CC lower: yes" in out
    assert "SR comparable: no" in out
    assert "better by the fine-tuning goal: no" in out
    # A wide enough margin accepts the same loss.
    _, out, _ = _compare(capsys, path, "--baseline", "start", "--candidate", "tuned", "--sr-margin", "0.9")
    assert "SR comparable: yes" in out


def test_unknown_policies_and_disjoint_episodes_are_clear_errors(tmp_path, capsys) -> None:
    path = _write(tmp_path / "e.jsonl", [episode(0, policy="a"), episode(1, policy="b", shield=True)])
    code, _, err = _compare(capsys, path, "--baseline", "a", "--candidate", "c")
    assert code == 2 and "no episodes of policy 'c'" in err and "['a', 'b']" in err
    code, _, err = _compare(capsys, path, "--baseline", "a", "--candidate", "b")
    assert code == 2 and "no episode in common" in err
    code, _, err = _compare(capsys, tmp_path / "missing.jsonl", "--baseline", "a", "--candidate", "b")
    assert code == 2 and "cannot read episode records" in err


def test_reading_an_episode_file_skips_a_cut_off_line_and_leaves_the_file_alone(tmp_path) -> None:
    text = episode(0).to_json() + "\n" + episode(1).to_json()[:40]
    path = tmp_path / "e.jsonl"
    path.write_text(text)
    assert [r.seed for r in read_records(path).values()] == [0]
    assert path.read_text() == text
    path.write_text(episode(0).to_json() + "\nnot a record\n")
    with pytest.raises(ConfigError, match=r"e\.jsonl:2: episode record is not JSON"):
        read_records(path)


def test_the_comparison_of_the_third_fine_tuning_run_in_docs_is_reproduced(capsys) -> None:
    # docs/finetuning.md quotes this output: the recorded episodes of bc_tiny_v2 and of the third run.
    docs = Path(__file__).resolve().parents[2] / "docs"
    code, out, _ = _compare(capsys, docs / "bc_v2" / "eval_episodes.jsonl",
                            docs / "finetune_bc_v2_cpu" / "eval_episodes.jsonl",
                            "--baseline", "bc_tiny_v2", "--candidate", "bc_tiny_v2_ppo_cpu")
    assert code == 0
    assert "60 common episodes" in out
    assert "SR 0.100 -> 0.050: difference -0.050 [95% CI -0.117, +0.017]" in out
    assert "CC 1.63 -> 0.28: difference -1.35 [95% CI -3.03, -0.02]" in out
    assert "better by the fine-tuning goal: no" in out
