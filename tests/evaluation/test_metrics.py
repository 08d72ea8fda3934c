"""Metric functions against hand-computed episodes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safevla_node.evaluation.metrics import (
    EpisodeRecord,
    aggregate,
    bootstrap_mean,
    catastrophic_share,
    compare_paired,
    group_by,
    pair_episodes,
    point_biserial,
    shield_effect,
    success_weighted_path_length,
    wilson_interval,
)


def episode(seed: int = 0, *, success: bool = True, cost: float = 0.0, shield: bool = False, policy: str = "p",
            steps: int = 10, **kwargs: object) -> EpisodeRecord:
    return EpisodeRecord(
        key=f"objectnav/medium/none/feasible/{policy}/{shield}/seed-{seed}", seed=seed, task="objectnav",
        difficulty="medium", policy=policy, shield=shield, perturbation="none", feasible=True, success=success,
        cost=cost, steps=steps, **kwargs,  # type: ignore[arg-type]
    )


def test_wilson_interval_matches_the_textbook_values_for_8_of_10() -> None:
    # p = 0.8, z = 1.95996: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.71674, half width 0.22658.
    interval = wilson_interval(8, 10)
    assert interval.value == 0.8
    assert interval.low == pytest.approx(0.49016, abs=1e-4)
    assert interval.high == pytest.approx(0.94332, abs=1e-4)


def test_wilson_interval_stays_inside_zero_one_at_the_extremes() -> None:
    none = wilson_interval(0, 10)
    assert (none.value, none.low) == (0.0, 0.0)
    assert none.high == pytest.approx(0.27753, abs=1e-4)  # z^2 / (n + z^2)
    every = wilson_interval(10, 10)
    assert every.high == 1.0
    assert every.low == pytest.approx(1 - 0.27753, abs=1e-4)


def test_wilson_interval_widens_with_confidence() -> None:
    assert wilson_interval(5, 10, 0.99).low < wilson_interval(5, 10, 0.9).low


def test_wilson_interval_of_no_episodes_is_nan() -> None:
    assert math.isnan(wilson_interval(0, 0).value)


def test_wilson_interval_rejects_more_successes_than_episodes() -> None:
    with pytest.raises(ValueError, match=r"successes=11 must be within \[0, n=10\]"):
        wilson_interval(11, 10)


def test_wilson_interval_rejects_a_confidence_outside_zero_one() -> None:
    with pytest.raises(ValueError, match=r"confidence=1.0 must be in \(0, 1\)"):
        wilson_interval(1, 2, 1.0)


def test_sel_is_the_expert_length_over_the_longer_path_on_success() -> None:
    assert success_weighted_path_length(True, 4.0, 3.0) == pytest.approx(0.75)
    assert success_weighted_path_length(True, 2.0, 3.0) == 1.0  # shorter than the expert: capped at 1


def test_sel_is_zero_on_failure_or_without_an_expert_length() -> None:
    assert success_weighted_path_length(False, 3.0, 3.0) == 0.0
    assert success_weighted_path_length(True, 3.0, None) == 0.0


def test_sel_is_one_when_neither_path_moved() -> None:
    assert success_weighted_path_length(True, 0.0, 0.0) == 1.0


def test_catastrophic_share_counts_cost_strictly_above_ten() -> None:
    records = [episode(0, cost=10.0), episode(1, cost=10.5), episode(2, cost=30.0), episode(3, cost=0.0)]
    assert catastrophic_share(records) == 0.5


def test_catastrophic_share_ignores_crashed_episodes() -> None:
    records = [episode(0, cost=11.0), episode(1, error="RuntimeError: boom")]
    assert catastrophic_share(records) == 1.0


def test_point_biserial_matches_the_hand_computed_correlation() -> None:
    # costs 0, 2, 4, 6 with the first two successful: cov = -1, std(cost) = sqrt(5), std(success) = 0.5.
    assert point_biserial([0, 2, 4, 6], [True, True, False, False]) == pytest.approx(-1 / (math.sqrt(5) * 0.5))


def test_point_biserial_is_zero_when_cost_is_decoupled_from_success() -> None:
    assert point_biserial([1, 3, 1, 3], [True, True, False, False]) == pytest.approx(0.0)


def test_point_biserial_is_undefined_when_every_episode_succeeded() -> None:
    assert math.isnan(point_biserial([1, 2, 3], [True, True, True]))


def test_point_biserial_rejects_sequences_of_different_length() -> None:
    with pytest.raises(ValueError, match=r"costs \(2\) and successes \(1\) must have the same length"):
        point_biserial([1, 2], [True])


def test_bootstrap_mean_is_seeded_and_brackets_the_mean() -> None:
    values = [0.0, 1.0, 5.0, 2.0, 8.0, 3.0]
    first = bootstrap_mean(values, seed=3)
    assert first == bootstrap_mean(values, seed=3)
    assert first.value == pytest.approx(19 / 6)
    assert first.low < first.value < first.high
    assert 0.0 <= first.low and first.high <= 8.0


def test_bootstrap_mean_of_one_value_has_a_zero_width_interval() -> None:
    single = bootstrap_mean([4.0])
    assert (single.value, single.low, single.high) == (4.0, 4.0, 4.0)


def test_bootstrap_mean_rejects_zero_resamples() -> None:
    with pytest.raises(ValueError, match="resamples=0 must be at least 1"):
        bootstrap_mean([1.0, 2.0], resamples=0)


def test_aggregate_of_hand_made_episodes() -> None:
    records = [
        episode(0, success=True, cost=0.0, steps=10, sel=1.0, cost_by_category={"corner": 0.0}),
        episode(1, success=True, cost=2.0, steps=20, sel=0.5, cost_by_category={"corner": 2.0}, stops=2),
        episode(2, success=False, cost=12.0, steps=30, cost_by_category={"danger": 12.0}, replacements=1),
        episode(3, error="ValueError: no target"),
    ]
    agg = aggregate(records)
    assert (agg.episodes, agg.errors) == (3, 1)
    assert agg.sr.value == pytest.approx(2 / 3)
    assert agg.cc.value == pytest.approx(14 / 3)
    assert agg.sel.value == pytest.approx(0.5)
    assert agg.length.value == pytest.approx(20.0)
    assert agg.cost_by_category["corner"] == pytest.approx(2 / 3)
    assert agg.cost_by_category["danger"] == pytest.approx(4.0)
    assert agg.catastrophic == pytest.approx(1 / 3)
    assert (agg.cc_success, agg.cc_failure) == (1.0, 12.0)
    assert agg.interventions == pytest.approx(1.0)
    assert agg.cost_success_correlation < 0


def test_aggregate_summary_writes_nan_as_null() -> None:
    data = aggregate([episode(0, success=True)]).to_dict()
    assert data["cc_failure"] is None
    assert data["sr"] == {"value": 1.0, "low": pytest.approx(0.2065, abs=1e-4), "high": 1.0}


def test_shield_effect_pairs_the_same_seeds_and_reports_the_lost_success_rate() -> None:
    records = [
        episode(0, success=True, cost=4.0), episode(0, success=True, cost=0.0, shield=True, stops=3),
        episode(1, success=True, cost=6.0), episode(1, success=False, cost=1.0, shield=True, stops=5),
        episode(2, success=True, cost=9.0),  # no shielded twin: not a pair
    ]
    effect = shield_effect(records)
    assert effect.pairs == 2
    assert (effect.sr_off, effect.sr_on, effect.sr_cost.value) == (1.0, 0.5, 0.5)
    # Resampling 2 pairs: the SR cost (0 or 1 per pair) averages 0, 0.5 or 1.
    assert (effect.sr_cost.low, effect.sr_cost.high) == (0.0, 1.0)
    assert (effect.cc_off, effect.cc_on) == (5.0, 0.5)
    assert effect.cc_change.value == pytest.approx(-4.5)  # changes -4 and -5
    assert effect.cc_change.low == pytest.approx(-5.0) and effect.cc_change.high == pytest.approx(-4.0)
    assert effect.interventions == 4.0


def test_paired_comparison_is_the_mean_of_per_episode_differences() -> None:
    baseline = [episode(s, success=s < 2, cost=c, policy="a") for s, c in enumerate([0.0, 2.0, 4.0, 6.0])]
    candidate = [episode(s, success=s in (0, 3), cost=c, policy="b") for s, c in enumerate([0.0, 1.0, 1.0, 2.0])]
    c = compare_paired(pair_episodes(baseline, candidate, lambda r: r.seed))
    assert c.pairs == 4
    assert (c.sr_baseline, c.sr_candidate, c.sr_difference.value) == (0.5, 0.5, 0.0)
    assert (c.cc_baseline, c.cc_candidate) == (3.0, 1.0)
    assert c.cc_difference.value == pytest.approx(-2.0)  # differences 0, -1, -3, -4
    assert -4.0 <= c.cc_difference.low <= -2.0 <= c.cc_difference.high <= 0.0


def test_pairing_removes_what_the_episodes_share() -> None:
    # Episode difficulty varies a lot, the candidate is always 1 cheaper: unpaired the two overlap, paired the
    # difference is exactly -1.
    costs = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    baseline = [episode(s, cost=c + 1.0, policy="a") for s, c in enumerate(costs)]
    candidate = [episode(s, cost=c, policy="b") for s, c in enumerate(costs)]
    c = compare_paired(pair_episodes(baseline, candidate, lambda r: r.seed))
    assert (c.cc_difference.value, c.cc_difference.low, c.cc_difference.high) == (-1.0, -1.0, -1.0)
    assert bootstrap_mean([r.cost for r in baseline]).low < bootstrap_mean([r.cost for r in candidate]).high


def test_pairing_leaves_out_crashed_and_unmatched_episodes_and_refuses_ambiguous_ones() -> None:
    baseline = [episode(0, policy="a"), episode(1, policy="a"), episode(2, policy="a", error="Boom")]
    candidate = [episode(1, policy="b"), episode(2, policy="b"), episode(3, policy="b")]
    pairs = pair_episodes(baseline, candidate, lambda r: r.seed)
    assert [(b.seed, c.seed) for b, c in pairs] == [(1, 1)]
    with pytest.raises(ValueError, match="pair with the same episode"):
        pair_episodes(baseline + [episode(1, policy="a", shield=True)], candidate, lambda r: r.seed)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 50), st.booleans(), st.floats(0, 50)), min_size=1,
                max_size=30))
def test_swapping_baseline_and_candidate_negates_the_paired_differences(rows) -> None:
    a = [episode(i, success=sa, cost=ca, policy="a") for i, (sa, ca, _, _) in enumerate(rows)]
    b = [episode(i, success=sb, cost=cb, policy="b") for i, (_, _, sb, cb) in enumerate(rows)]
    forward = compare_paired(pair_episodes(a, b, lambda r: r.seed))
    backward = compare_paired(pair_episodes(b, a, lambda r: r.seed))
    for there, back in ((forward.sr_difference, backward.sr_difference),
                        (forward.cc_difference, backward.cc_difference)):
        assert there.value == pytest.approx(-back.value, abs=1e-9)
        assert there.low == pytest.approx(-back.high, abs=1e-9)
        assert there.high == pytest.approx(-back.low, abs=1e-9)
        assert there.low <= there.value + 1e-9 and there.value <= there.high + 1e-9
    assert forward.cc_difference.value == pytest.approx(forward.cc_candidate - forward.cc_baseline, abs=1e-9)


def test_group_by_keeps_groups_in_order_of_first_appearance() -> None:
    records = [episode(0, policy="b"), episode(1, policy="a"), episode(2, policy="b")]
    groups = group_by(records, lambda r: r.policy)
    assert list(groups) == ["b", "a"]
    assert [r.seed for r in groups["b"]] == [0, 2]


def test_episode_record_round_trips_through_json() -> None:
    record = episode(4, cost=3.0, cost_by_category={"corner": 1.0, "danger": 2.0}, expert_path_length=2.5,
                     error=None, wall_time_s=1.25)
    assert EpisodeRecord.from_json(record.to_json()) == record
    assert replace(record, wall_time_s=9.0).to_json() != record.to_json()


def test_episode_record_rejects_unknown_fields() -> None:
    line = episode().to_json().replace('"cost":', '"costs":')
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['costs'\]"):
        EpisodeRecord.from_json(line)


def test_episode_record_rejects_a_line_that_is_not_json() -> None:
    with pytest.raises(ValueError, match="episode record is not JSON"):
        EpisodeRecord.from_json('{"key": ')
