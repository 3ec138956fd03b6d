"""Paired-by-seed comparisons, cluster bootstrap, identical runs, declared scores.

Synthetic data with a known answer: arms share seeds (common random numbers), and a seed's
start states move every arm's score together.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from fixtures_analysis import write_sweep

from analysis import report, stats
from sweeps.schema import SweepError, load_sweep


def _runs(seeds_a, seeds_b, effect, seed_sd, noise_sd, rng_seed=0, runs_per_seed=1, pool=None):
    """Final scores of arms A and B: ``seed_effect[s] + effect (A only) + noise``.

    ``pool``: a pooled factor (its values x ``runs_per_seed``); each of its levels shifts
    every arm by the same large amount, as a scenario does.
    """
    rng = np.random.default_rng(rng_seed)
    seed_effect = {s: rng.normal(0, seed_sd) for s in set(seeds_a) | set(seeds_b)}
    rows = []
    levels = pool or [None]
    for arm, seeds, shift in (("A", seeds_a, effect), ("B", seeds_b, 0.0)):
        for s in seeds:
            for i, level in enumerate(levels):
                score = seed_effect[s] + shift + 10.0 * i + rng.normal(0, noise_sd)
                row = {
                    "trial_id": f"{arm}-{level}-s{s}",
                    "seed": s,
                    "env": "E",
                    "arm": arm,
                    "score": score,
                }
                if level is not None:
                    row["scenario"] = level
                rows.append(row)
    return pd.DataFrame(rows)


def _row(table, a, b):
    return table[(table["a"] == a) & (table["b"] == b)].iloc[0]


def test_paired_detects_a_small_effect_that_seed_variance_hides_from_the_unpaired_test():
    seeds = list(range(8))
    runs = _runs(seeds, seeds, effect=2.0, seed_sd=50.0, noise_sd=0.5)
    table = stats.paired_poi_table(runs, ["arm"], match=[], reps=1000)
    ab = _row(table, "A", "B")
    assert ab["analysis"] == "paired"
    assert ab["p"] == 1.0 and ab["wins"] == 8 and ab["losses"] == 0
    assert ab["supported"]  # every seed agrees: CI [1, 1], 8 seeds
    assert ab["sign_p"] == pytest.approx(2 / 2**8)
    assert 0.5 < ab["diff_low"] < ab["diff"] < ab["diff_high"] < 3.5  # effect 2, in score units
    assert not ab["supported_unpaired"]  # across seeds, the effect is lost in seed variance
    assert ab["low_unpaired"] < 0.5 < ab["high_unpaired"]
    assert not ab["agree"]
    ba = _row(table, "B", "A")  # the mirrored row
    assert ba["p"] == 0.0 and ba["wins"] == 0 and ba["diff"] == pytest.approx(-ab["diff"])


def test_independent_seeds_are_compared_unpaired_and_both_analyses_agree():
    # no shared seeds: nothing to pair, the unpaired analysis is the analysis
    runs = _runs(range(0, 8), range(10, 18), effect=30.0, seed_sd=1.0, noise_sd=1.0)
    ab = _row(stats.paired_poi_table(runs, ["arm"], match=[], reps=1000), "A", "B")
    assert ab["analysis"] == "unpaired"
    assert ab["p"] == ab["p_unpaired"] and ab["supported"] == ab["supported_unpaired"]
    assert ab["supported"] and ab["agree"]
    # shared seeds but no seed effect (independent draws): both see the same thing
    for effect, supported in ((30.0, True), (0.0, False)):
        runs = _runs(range(8), range(8), effect=effect, seed_sd=0.0, noise_sd=5.0, rng_seed=3)
        ab = _row(stats.paired_poi_table(runs, ["arm"], match=[], reps=1000), "A", "B")
        assert ab["analysis"] == "paired"
        assert ab["supported"] == ab["supported_unpaired"] == supported
        assert ab["agree"]


def test_pooled_groups_are_matched_on_seed_and_the_pooled_factor():
    # A beats B by 2 within every (seed, scenario); scenarios differ by 10, seeds by ~30
    runs = _runs(range(6), range(6), effect=2.0, seed_sd=30.0, noise_sd=0.3, pool=["x", "y", "z"])
    table = stats.paired_poi_table(runs, ["arm"], match=["scenario"], reps=1000)
    ab = _row(table, "A", "B")
    assert ab["n_pairs"] == 18 and ab["n_seeds"] == 6  # 6 seeds x 3 scenarios, seeds the unit
    assert ab["p"] == 1.0 and ab["supported"]
    assert ab["diff"] == pytest.approx(2.0, abs=0.3)
    # matched on the seed alone, A's x runs meet B's z runs: the scenario gap blurs the pairs
    seed_only = _row(stats.paired_poi_table(runs, ["arm"], match=[], reps=1000), "A", "B")
    assert seed_only["n_pairs"] == 6 * 9 and seed_only["p"] < 0.8


def test_clustered_pooling_gives_wider_cis_than_naive_pooling():
    runs = _runs(range(5), range(5), effect=0.0, seed_sd=40.0, noise_sd=2.0, pool=list("vwxyz"))
    clustered = stats.interval_table(runs, ["arm"], metrics=("iqm", "mean"), reps=2000)
    naive = stats.interval_table(runs, ["arm"], metrics=("iqm", "mean"), reps=2000, cluster=None)
    assert (clustered["n_runs"] == 25).all() and (clustered["n_clusters"] == 5).all()
    assert (naive["n_clusters"] == 25).all()
    pd.testing.assert_series_equal(clustered["estimate"], naive["estimate"])
    wide = clustered["high"] - clustered["low"]
    narrow = naive["high"] - naive["low"]
    assert (wide > 1.3 * narrow).all(), (wide.tolist(), narrow.tolist())


def test_cluster_bootstrap_by_hand():
    # two seeds of two runs each: a resample is seed 0 twice, seed 1 twice, or one of each,
    # so the resampled means can only be 1, 2 or 3
    est, low, high = stats.cluster_bootstrap_ci(
        [np.array([1.0, 1.0, 3.0, 3.0])], [np.array([0, 0, 1, 1])], stats.aggregate_mean, reps=400
    )
    assert est == 2.0 and low == 1.0 and high == 3.0
    # unbalanced clusters take the slow path; the bounds stay within the data
    est, low, high = stats.cluster_bootstrap_ci(
        [np.array([0.0, 0.0, 0.0, 6.0])], [np.array([0, 0, 0, 1])], stats.aggregate_mean, reps=200
    )
    assert est == 1.5 and 0.0 <= low <= high <= 6.0
    # one cluster: nothing to resample
    _, low, high = stats.cluster_bootstrap_ci(
        [np.array([1.0, 2.0])], [np.array([7, 7])], stats.aggregate_mean
    )
    assert np.isnan(low) and np.isnan(high)
    with pytest.raises(ValueError, match="one id per run"):
        stats.cluster_bootstrap_ci([np.ones(3)], [np.zeros(2)], stats.aggregate_mean)


def test_paired_improvement_by_hand():
    res = stats.paired_improvement([{0: 1.0, 1: 1.0, 2: 0.0}], [{0: 3.0, 1: 1.0, 2: -1.0}])
    assert res["p"] == pytest.approx(2 / 3) and res["diff"] == pytest.approx(1.0)
    assert (res["wins"], res["losses"], res["n_seeds"]) == (2, 1, 3)
    assert res["sign_p"] == pytest.approx(1.0)
    assert 0.0 <= res["low"] <= res["p"] <= res["high"] <= 1.0


def _tidy(values_by_trial):
    rows = []
    for trial, (seed, values) in values_by_trial.items():
        for step, v in zip((0, 500, 1000), values, strict=True):
            rows.append(
                {
                    "trial_id": trial,
                    "seed": seed,
                    "env": "E",
                    "env_step": step,
                    "eval/return": v,
                    "perf/steps_per_s": np.random.rand(),
                }
            )
    return pd.DataFrame(rows)


def test_identical_runs_found_and_timings_ignored():
    df = _tidy(
        {
            "t0": (0, [1.0, 2.0, 3.0]),
            "t1": (0, [1.0, 2.0, 3.0]),
            "t2": (1, [1.0, 2.0, 3.0]),
            "t3": (0, [1.0, 2.0, 3.5]),
        }
    )
    twins = stats.identical_runs(df)
    assert twins[["trial_id", "seed", "same_as_trial"]].values.tolist() == [["t1", 0, "t0"]]
    # with init records: equal numbers but different inits are not the same run
    records = {"t0": "a", "t1": "b", "t2": "a", "t3": "a"}
    assert stats.identical_runs(df, records).empty
    assert len(stats.identical_runs(df, {"t0": "a", "t1": "a", "t2": "a", "t3": "a"})) == 1
    assert stats.identical_runs(df, {"t0": "a"}).empty  # no record: never a repeat


# --- the declared score in sweep files ----------------------------------------------------------


def _sweep_file(tmp_path, analysis_text, budgets=""):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nbase: {agent: sac, env: Pendulum-v1, total_steps: 2000}\n"
        + textwrap.dedent(analysis_text)
        + budgets
    )
    return path


def test_analysis_block_is_validated_with_file_key_and_line(tmp_path):
    path = _sweep_file(
        tmp_path,
        """\
        analysis:
          final: {last: 3, from: 100}
          auc: maybe
          threshhold: -200
        """,
    )
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    text = str(err.value)
    assert f"{path}:4: analysis.final: give either `last`" in text
    assert f"{path}:5: analysis.auc: must be true or false, got 'maybe'" in text
    assert f"{path}:6: analysis.threshhold: unknown key; did you mean 'threshold'?" in text
    path = _sweep_file(
        tmp_path,
        "analysis: {final: {last: 3}}\n",
        "budgets:\n  b:\n    analysis:\n      final: {from: 900, to: 800}\n",
    )
    with pytest.raises(SweepError, match=r":7: budgets\.b\.analysis\.final: `from` \(900\) is"):
        load_sweep(path)


def test_declared_score_recorded_and_a_budget_replaces_it(tmp_path):
    path = _sweep_file(
        tmp_path,
        "analysis: {final: {last: 2}, threshold: -200}\n",
        "budgets:\n  long:\n    total_steps: 4000\n    analysis: {final: {from: 3000, to: 4000}}\n",
    )
    plain, long = load_sweep(path), load_sweep(path, "long")
    assert plain.resolved()["analysis"] == {"final": {"last": 2}, "auc": False, "threshold": -200}
    assert long.resolved()["analysis"] == {
        "final": {"from": 3000.0, "to": 4000.0},
        "auc": False,
        "threshold": -200.0,
    }
    # the budget's analysis is not a trial setting
    assert "analysis" not in json.dumps([t.config for t in long.trials])
    assert "analysis" not in load_sweep(_sweep_file(tmp_path, "")).resolved()


SHIPPED_WITH_RESULTS = (
    "init_ablation",
    "init_output_gain",
    "init_ppo",
    "mb_ppo_knobs",
    "model_based",
    "proprio_aux",
    "proprio_model",
    "return_estimator",
    "world_model_init",
)


@pytest.mark.parametrize("name", SHIPPED_WITH_RESULTS)
def test_shipped_sweeps_with_results_declare_their_score(name):
    sweep = load_sweep(name)
    assert sweep.analysis is not None
    assert sweep.resolved()["analysis"]["final"] == {"last": 3}  # what every report had used
    assert "AFTER the runs" in sweep.file.read_text()  # and says when it was declared


# --- the report: declared score, exploratory views, identical runs ---------------------------


@pytest.fixture(scope="module")
def declared_sweep(tmp_path_factory):
    """5 seeds, orthogonal 0.1 better than fanin in every seed; seed offsets 0.3 apart."""
    root = write_sweep(
        tmp_path_factory.mktemp("declared") / "dec",
        schemes=("fanin", "orthogonal"),
        scenarios=("small_out",),
        seeds=(0, 1, 2, 3, 4),
        offsets=[-0.6, -0.3, 0.0, 0.3, 0.6],
        level=lambda env, scheme, scenario: {"fanin": 0.3, "orthogonal": 0.4}[scheme],
        diagnostics=False,
    )
    resolved = json.loads((root / "sweep_resolved.json").read_text())
    resolved["analysis"] = {"final": {"from": 8000, "to": 10000}, "auc": True, "threshold": -400}
    (root / "sweep_resolved.json").write_text(json.dumps(resolved))
    return root


def test_report_uses_the_declared_score_and_pairs_by_seed(declared_sweep):
    md = report.write_report(declared_sweep, progress=False, reps=300).read_text()
    head = md.split("## What ran")[0]
    assert "final score of a run = mean of its evaluations at 8,000-10,000 env steps" in head
    assert "recorded in `sweep_resolved.json`" in head and "Exploratory" not in head
    assert "**Analysis: paired by seed.**" in head
    assert "(exploratory)" not in md
    assert "declared in the sweep file (`analysis.threshold: -400`)" in md
    # paired: 5 of 5 seeds, supported; the seed offsets hide it from the unpaired analysis
    assert "| fanin | 1.00 [1.00, 1.00] | 5 of 5 (sign test p = 0.062) |" in md
    assert "supported: orthogonal better (unpaired: not supported" in md
    assert "AUC (normalised)" in md and "(not a declared score)" not in md


def test_other_views_are_labelled_exploratory(declared_sweep, tmp_path):
    out = tmp_path / "early"
    md = report.write_report(
        declared_sweep, progress=False, reps=200, up_to=5000, threshold=-300, out_dir=out
    ).read_text()
    first = md.split("## What ran")[0]
    assert "**Exploratory view**" in first
    assert "`--up-to 5000`" in first and "`--threshold -300`" in first
    assert "## Ranking (final performance, 95% CIs) (exploratory)" in md
    assert "## Which differences are supported (exploratory)" in md
    assert "Steps to -300.0 (exploratory)" in md
    md = report.write_report(
        declared_sweep, progress=False, reps=200, last_k=2, out_dir=tmp_path / "k2"
    ).read_text()
    assert "mean of the last 2 evaluations (`--last-k 2`), not the declared" in md


def test_identical_runs_are_counted_once_in_the_report(tmp_path):
    # two scenarios with the same level write identical metrics; with equal init records they
    # are the same runs (e.g. pytorch_default, whose layers no scenario changes)
    root = write_sweep(
        tmp_path / "twins",
        schemes=("fanin", "orthogonal"),
        scenarios=("small_out", "all"),
        seeds=(0, 1, 2, 3),
        level=lambda env, scheme, scenario: {"fanin": 0.3, "orthogonal": 0.6}[scheme],
        diagnostics=False,
    )
    for trial in (root / "trials").iterdir():
        scheme = trial.name.split("-")[2]
        if scheme == "fanin":  # fanin: both scenarios leave every layer the same
            (trial / "init_record.json").write_text(json.dumps([{"layer": "a", "std": 1.0}]))
        else:
            scenario = trial.name.split("-")[3]
            (trial / "init_record.json").write_text(json.dumps([{"layer": "a", "s": scenario}]))
    md = report.write_report(root, progress=False, reps=200).read_text()
    assert "**Identical runs counted once:** 4 run(s) of 4 trial(s)" in md
    ranking = md.split("## Ranking")[1].split("## Which")[0]
    # the twin group is gone; the first by trial id (`...-fanin-all-s0` < `...-small_out-s0`) stays
    assert "fanin / small_out" not in ranking
    assert "| fanin / all | 4 |" in ranking and "| orthogonal / small_out | 4 |" in ranking


def test_a_consistent_edge_against_the_mean_difference_is_not_supported():
    # in every seed A wins two of three matched pairs by 0.1 and loses the third by 5: P(A > B)
    # is 2/3 with a CI of [2/3, 2/3], but on average B is better; no verdict either way
    rows = []
    for s in range(6):
        for level, edge in (("x", 0.1), ("y", 0.1), ("z", -5.0)):
            base = 10.0 * s
            rows.append(
                {
                    "trial_id": f"A{level}{s}",
                    "seed": s,
                    "env": "E",
                    "arm": "A",
                    "scenario": level,
                    "score": base + edge,
                }
            )
            rows.append(
                {
                    "trial_id": f"B{level}{s}",
                    "seed": s,
                    "env": "E",
                    "arm": "B",
                    "scenario": level,
                    "score": base,
                }
            )
    table = stats.paired_poi_table(pd.DataFrame(rows), ["arm"], match=["scenario"], reps=500)
    ab = _row(table, "A", "B")
    assert ab["p"] == pytest.approx(2 / 3) and ab["low"] > 0.5
    assert ab["diff_high"] < 0
    assert not ab["supported"] and not _row(table, "B", "A")["supported"]


def _curves(values):
    """A tidy table: arm -> {seed: (value at step 1, value at step 2)} for metrics a/x and b/y
    (b/y is twice a/x)."""
    rows = []
    for arm, per_seed in values.items():
        for s, (v1, v2) in per_seed.items():
            for step, v in ((1, v1), (2, v2)):
                rows.append(
                    {
                        "trial_id": f"{arm}-s{s}",
                        "seed": s,
                        "env": "E",
                        "state": "finished",
                        "arm": arm,
                        "env_step": step,
                        "a/x": v,
                        "b/y": 2 * v,
                    }
                )
    return pd.DataFrame(rows)


def test_paired_metric_table_by_hand():
    # final value = mean of the last 2 evaluations: A 1.5, 3.5, 5.5 and B 1, 2, 3 on seeds 0-2;
    # C has seed 0 only (and one of its own, 7, which B lacks: unmatched)
    df = _curves(
        {
            "A": {0: (1, 2), 1: (3, 4), 2: (5, 6)},
            "B": {0: (1, 1), 1: (2, 2), 2: (3, 3)},
            "C": {0: (0, 0), 7: (9, 9)},
        }
    )
    table = stats.paired_metric_table(df, ["a/x", "b/y", "nope/z"], ["arm"], "B", last_k=2)
    assert set(table["metric"]) == {"a/x", "b/y"}  # absent metrics are skipped
    a = table[(table["metric"] == "a/x") & (table["group"] == "A")].iloc[0]
    assert a["runs"] == 3 and a["median"] == 3.5 and a["seeds"] == 3 and a["above"] == 3
    # per-seed differences 0.5, 1.5, 2.5
    assert a["diff_mean"] == pytest.approx(1.5) and a["diff_median"] == pytest.approx(1.5)
    assert 0.5 <= a["diff_low"] < 1.5 < a["diff_high"] <= 2.5
    b2 = table[(table["metric"] == "b/y") & (table["group"] == "A")].iloc[0]
    assert b2["diff_mean"] == pytest.approx(3.0)  # the same runs, metric doubled
    c = table[(table["metric"] == "a/x") & (table["group"] == "C")].iloc[0]
    assert c["runs"] == 2 and c["seeds"] == 1 and c["diff_mean"] == pytest.approx(-1.0)
    assert c["above"] == 0 and np.isnan(c["diff_low"])  # one seed: no interval
    ref = table[(table["metric"] == "a/x") & (table["group"] == "B")].iloc[0]
    assert np.isnan(ref["diff_mean"]) and ref["runs"] == 3


def test_report_also_tabulates_other_metrics_against_a_chosen_group(tmp_path):
    root = write_sweep(tmp_path / "sw", seeds=(0, 1, 2, 3), n_evals=4, diagnostics=False)
    groups = "orthogonal / small_out"
    md = report.write_report(
        root,
        progress=False,
        reps=200,
        formats=["png"],
        dpi=40,
        also=["train/*", "loss/actor"],
        versus=groups,
    ).read_text()
    section = md.split("## Other metrics (exploratory)")[1].split("\n## ")[0]
    assert f"### Pendulum-v1: against {groups}" in section
    assert "`train/return`" in section and "`loss/actor`" in section
    assert "--also 'train/*' 'loss/actor' --versus" in md  # how it was made
    table = pd.read_csv(root / "report" / "other_metrics.csv")
    assert set(table["metric"]) == {"train/return", "loss/actor"}
    assert (table["versus"] == groups).all() and table["group"].nunique() == 4
    ref = table[table["group"] == groups]
    assert ref["diff_mean"].isna().all()
    others = table[table["group"] != groups]
    assert (others["seeds"] == 4).all() and others["diff_mean"].notna().all()
    # bad input: a pattern matching nothing, a group that is not there
    with pytest.raises(report.AnalysisError, match=r"--also eval/nope.*train/\*"):
        report.write_report(root, progress=False, reps=50, formats=["png"], also=["eval/nope"])
    with pytest.raises(report.AnalysisError, match=r"--versus 'nope'.*fanin / all"):
        report.write_report(
            root, progress=False, reps=50, formats=["png"], also=["loss/*"], versus="nope"
        )
