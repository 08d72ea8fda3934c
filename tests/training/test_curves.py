"""Training curves: metrics.csv parsing, the trailing mean, and the PNG every run ends with."""

from __future__ import annotations

import math

import pytest

from policies.training.curves import CURVES_FILE, main, read_metrics, trailing_mean
from policies.training.trainer import Trainer
from safevla_node.errors import TrainingError
from tests.training.toy import toy_config


def test_trailing_mean_skips_updates_without_finished_episodes():
    nan = math.nan
    assert trailing_mean([nan, 1.0, nan, 3.0, 5.0], 3) == [pytest.approx(v, nan_ok=True)
                                                          for v in (nan, 1.0, 1.0, 2.0, 4.0)]


def test_a_run_ends_with_its_curves_and_the_command_redraws_them(tmp_path, capsys):
    Trainer(toy_config(updates=3), tmp_path, resume=False).run()
    png = tmp_path / CURVES_FILE
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png.unlink()
    assert main([str(tmp_path), "--window", "2"]) == 0
    assert png.is_file() and str(png) in capsys.readouterr().out
    assert [r["update"] for r in read_metrics(tmp_path / "metrics.csv")] == [1.0, 2.0, 3.0]


def test_bad_metrics_files_get_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="metrics.csv not found"):
        read_metrics(tmp_path / "metrics.csv")
    (tmp_path / "metrics.csv").write_text("update,cost_total\n1,0.5\n2,lots\n")
    with pytest.raises(TrainingError, match=r"metrics.csv:3: could not convert"):
        read_metrics(tmp_path / "metrics.csv")
    (tmp_path / "metrics.csv").write_text("update,cost_total\n")
    with pytest.raises(TrainingError, match="no updates yet"):
        read_metrics(tmp_path / "metrics.csv")


def test_panels_show_cost_categories_not_the_cost_critic_loss_and_the_policy_spread(tmp_path, monkeypatch):
    import matplotlib.axes

    labels: list[str] = []
    original = matplotlib.axes.Axes.plot

    def recording_plot(self, *args, **kwargs):
        labels.append(kwargs.get("label", ""))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", recording_plot)
    Trainer(toy_config(updates=2), tmp_path, resume=False).run()
    assert "value_loss" not in labels
    assert {"total", "success_rate", "lambda_total", "entropy", "kl_to_reference"} <= set(labels)
