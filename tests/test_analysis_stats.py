"""analysis.stats: hand-computed values, agreement with rliable, CI coverage, known sweeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_analysis import ENV_SCORES, import_rliable_library, write_sweep
from rliable import metrics as rly_metrics

from analysis import load, stats

# --------------------------------------------------------------------------------------------
# point estimates by hand


def test_iqm_by_hand():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(4.5)  # outlier trimmed
    assert stats.iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # int(1.25) = 1 cut per side
    np.testing.assert_allclose(stats.iqm([[1, 2, 3, 4], [0, 0, 0, 8]]), [2.5, 0.0])


def test_nan_iqm_ignores_missing_runs():
    x = np.array([[1.0, 2.0, np.nan, 3.0, 4.0], [np.nan] * 5, [5.0, 1.0, 2.0, 3.0, 4.0]])
    out = stats.nan_iqm(x)
    assert out[0] == pytest.approx(2.5)  # IQM of 1, 2, 3, 4
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(stats.iqm(x[2]))


def test_aggregates_on_unequal_strata_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0])
    assert stats.aggregate_mean(a, b) == pytest.approx((2 + 10) / 2)
    assert stats.aggregate_median(a, b, np.array([4.0])) == pytest.approx(4.0)  # of 2, 10, 4
    assert stats.aggregate_iqm(a, b) == pytest.approx(2.5)  # pooled 1, 2, 3, 10 -> 2, 3
    # gamma 3: task a falls short by 3 - 2 = 1, task b not at all (clipped at 3)
    assert stats.aggregate_optimality_gap(a, b, gamma=3.0) == pytest.approx(0.5)


def test_probability_of_improvement_by_hand():
    x, y = [np.array([1.0, 2.0, 3.0])], [np.array([2.0])]
    assert stats.probability_of_improvement(x, y) == pytest.approx((0 + 0.5 + 1) / 3)
    assert stats.probability_of_improvement([np.array([3.0, 4.0])], [np.array([1.0, 2.0])]) == 1
    # averaged over tasks: task 1 all better, task 2 all worse
    two = stats.probability_of_improvement(
        [np.array([5.0, 6.0]), np.array([0.0])], [np.array([1.0]), np.array([9.0, 9.5])]
    )
    assert two == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    p, q = [rng.normal(size=7)], [rng.normal(size=4)]
    assert stats.probability_of_improvement(p, q) + stats.probability_of_improvement(
        q, p
    ) == pytest.approx(1.0)


def test_normalisation_and_auc_by_hand():
    normalised = stats.normalise_scores([-1200, -150, -675], -1200, -150)
    np.testing.assert_allclose(normalised, [0, 1, 0.5])
    assert stats.normalised_auc([0, 10], [0, 1]) == pytest.approx(0.5)
    assert stats.normalised_auc([0, 5, 10], [0, 1, 1]) == pytest.approx(0.75)
    assert np.isnan(stats.normalised_auc([0], [1]))


def test_performance_profile_by_hand():
    frac, low, high = stats.performance_profile([np.array([0.0, 1.0, 2.0, 3.0])], [-1, 1.5, 3])
    np.testing.assert_allclose(frac, [1.0, 0.5, 0.0])
    assert low[0] == high[0] == 1.0 and low[2] == high[2] == 0.0
    assert 0 <= low[1] < 0.5 < high[1] <= 1  # 4 runs: P(no run above) = 1/16 > 2.5%
    # two tasks weigh the same whatever their run counts
    frac2, _, _ = stats.performance_profile([np.array([1.0, 1.0, 1.0]), np.array([0.0])], [0.5])
    assert frac2[0] == pytest.approx(0.5)


def test_steps_to_threshold_by_hand():
    steps = np.array([0.0, 100.0, 200.0, 300.0])
    # 5 runs; IQM per step = mean of the middle three
    curves = np.array([[0, 0, 0, 0, 0], [1, 2, 3, 4, 5], [5, 6, 7, 8, 9], [9, 9, 9, 9, 9]], float)
    est, low, high = stats.steps_to_threshold(curves, steps, 5.5, reps=300)
    assert est == 200.0  # IQM 3 at step 100, 7 at step 200
    assert 100.0 <= low <= est <= high
    est, low, high = stats.steps_to_threshold(curves, steps, 100.0, reps=100)
    assert est == low == high == np.inf  # never reached


def test_bootstrap_ci_holds_single_run_strata_fixed():
    est, low, high = stats.bootstrap_ci(
        [np.array([5.0]), np.array([1.0, 2.0, 3.0])], stats.aggregate_mean, reps=500
    )
    assert est == pytest.approx(3.5)
    assert 3.0 <= low < est < high <= 4.0  # (5 + mean of a resample of 1..3) / 2
    est, low, high = stats.bootstrap_ci([np.array([2.0])], stats.aggregate_mean)
    assert est == 2.0 and np.isnan(low) and np.isnan(high)


# --------------------------------------------------------------------------------------------
# against rliable on the same data


@pytest.fixture(scope="module")
def rly():
    return import_rliable_library()


@pytest.mark.parametrize(
    "name, reference",
    [
        ("iqm", rly_metrics.aggregate_iqm),
        ("mean", rly_metrics.aggregate_mean),
        ("median", rly_metrics.aggregate_median),
        ("optimality_gap", rly_metrics.aggregate_optimality_gap),
    ],
)
def test_point_estimates_equal_rliable(name, reference):
    scores = np.random.default_rng(1).gamma(2.0, 0.3, size=(10, 3))  # runs x tasks
    ours = stats.AGGREGATES[name](*scores.T)
    assert ours == pytest.approx(reference(scores), rel=1e-12)


@pytest.mark.parametrize("name", ["iqm", "mean"])
def test_confidence_intervals_match_rliable(rly, name):
    scores = np.random.default_rng(3).gamma(2.0, 0.3, size=(10, 3))
    func = {"iqm": rly_metrics.aggregate_iqm, "mean": rly_metrics.aggregate_mean}[name]
    np.random.seed(0)  # rliable samples from numpy's global generator
    _, intervals = rly.get_interval_estimates(
        {"x": scores}, lambda s: np.array([func(s)]), reps=5000
    )
    ref_low, ref_high = intervals["x"].ravel()
    _, low, high = stats.bootstrap_ci(list(scores.T), stats.AGGREGATES[name], reps=5000, seed=1)
    width = ref_high - ref_low
    assert width > 0.15  # a real interval, so the tolerance below is meaningful
    assert low == pytest.approx(ref_low, abs=0.06 * width)
    assert high == pytest.approx(ref_high, abs=0.06 * width)


def test_probability_of_improvement_matches_rliable(rly):
    rng = np.random.default_rng(5)
    x, y = rng.gamma(2.0, 0.3, size=(8, 2)), rng.gamma(2.0, 0.25, size=(6, 2))
    assert stats.probability_of_improvement(list(x.T), list(y.T)) == pytest.approx(
        rly_metrics.probability_of_improvement(x, y)
    )
    np.random.seed(0)
    _, intervals = rly.get_interval_estimates(
        {"xy": [x, y]},
        lambda a, b: np.array([rly_metrics.probability_of_improvement(a, b)]),
        reps=1000,  # rliable loops in Python (mannwhitneyu per resample): keep it small
    )
    ref_low, ref_high = intervals["xy"].ravel()
    _, low, high = stats.probability_of_improvement_ci(list(x.T), list(y.T), reps=4000, seed=2)
    assert ref_high - ref_low > 0.3
    assert low == pytest.approx(ref_low, abs=0.05)
    assert high == pytest.approx(ref_high, abs=0.05)


def test_iqm_ci_coverage_near_nominal():
    """95% intervals of the IQM of N(mu, 1) samples (IQM of the population = mu) cover mu."""
    rng = np.random.default_rng(7)
    mu, hits, trials = 2.0, 0, 200
    for i in range(trials):
        sample = rng.normal(mu, 1.0, size=(2, 10))  # two tasks x 10 runs
        _, low, high = stats.bootstrap_ci(list(sample), stats.aggregate_iqm, reps=400, seed=i)
        hits += low <= mu <= high
    # percentile intervals with 20 runs under-cover slightly; far off would mean a bug
    assert 0.85 <= hits / trials <= 0.99


# --------------------------------------------------------------------------------------------
# synthetic sweeps with a known answer

LEVELS = {"orthogonal": 0.8, "fanin": 0.5}  # normalised final score of each scheme
OFFSETS = [-0.1, -0.05, 0.0, 0.05, 0.1]  # per seed


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("known") / "known"
    return write_sweep(
        root,
        schemes=("fanin", "orthogonal"),
        scenarios=("small_outputs", "no_small"),
        envs=("Pendulum-v1", "Walker2d-v4"),
        level=lambda env, scheme, scenario: LEVELS[scheme] + 0.01 * (scenario == "no_small"),
        offsets=OFFSETS,
        failed=[("Pendulum-v1", "fanin", "no_small", 1)],
        running=[("Walker2d-v4", "orthogonal", "no_small", 4)],
        pending=[("Walker2d-v4", "fanin", "no_small", 3)],
        batched=[("Walker2d-v4", "fanin", "small_outputs")],
    )


@pytest.fixture(scope="module")
def tidy(sweep):
    return load.load_sweep(sweep)


@pytest.fixture(scope="module")
def runs(tidy):
    return stats.final_scores(tidy, "eval/return", last_k=3)


def _raw(env, norm):
    s = ENV_SCORES[env]
    return s["random"] + norm * (s["reference"] - s["random"])


def test_final_scores_known(runs):
    # 2 envs x 2 schemes x 2 scenarios x 5 seeds = 40 runs, minus 1 failed, minus 1 pending
    assert len(runs) == 38
    assert "failed" not in set(runs["state"])
    run = runs.set_index(["trial_id", "seed"])
    got = run.loc[("Pendulum-v1-orthogonal-small_outputs-s2", 2)]
    assert got["score"] == pytest.approx(_raw("Pendulum-v1", 0.8))
    assert got["score_norm"] == pytest.approx(0.8)
    # the running run stopped at 60%: last 3 evals at 40/50/60% of the linear ramp to 70%
    final = 0.81 + OFFSETS[4]
    expected = final * np.mean([0.4, 0.5, 0.6]) / 0.7
    assert run.loc[("Walker2d-v4-orthogonal-no_small-s4", 4), "score_norm"] == pytest.approx(
        expected
    )
    # the seed-batched trial contributes 5 runs
    batched = runs[runs["trial_id"] == "Walker2d-v4-fanin-small_outputs-batch"]
    assert sorted(batched["seed"]) == [0, 1, 2, 3, 4]
    # AUC of a finished run: ramp to 70% then flat -> 0.7 * f/2 + 0.3 * f
    assert got["auc_norm"] == pytest.approx(0.8 * (0.35 + 0.3))


def test_failed_runs_can_be_included(tidy):
    all_runs = stats.final_scores(tidy, "eval/return", include_failed=True)
    assert len(all_runs) == 39
    assert (all_runs["state"] == "failed").sum() == 1


def test_ranking_iqm_and_ci(runs):
    table = stats.interval_table(runs, ["init.scheme"], value="score_norm", reps=1000)
    iqm = table[table["metric"] == "iqm"].set_index("group")
    assert list(iqm.sort_values("estimate", ascending=False).index) == ["orthogonal", "fanin"]
    # orthogonal: finished runs 0.8/0.81 + offsets pooled over both envs and scenarios
    ortho = runs[runs["init.scheme"] == "orthogonal"]["score_norm"]
    assert iqm.loc["orthogonal", "estimate"] == pytest.approx(stats.iqm(ortho))
    assert iqm.loc["orthogonal", "n_runs"] == 20 and iqm.loc["fanin", "n_runs"] == 18
    for g in ("orthogonal", "fanin"):
        assert iqm.loc[g, "low"] < iqm.loc[g, "estimate"] < iqm.loc[g, "high"]
    assert iqm.loc["fanin", "high"] < iqm.loc["orthogonal", "low"]  # margin 0.3 >> spread


def test_group_with_failed_seed_uses_remaining_seeds(runs):
    sub = runs[runs["env"] == "Pendulum-v1"]
    table = stats.interval_table(sub, ["init.scheme", "init.scenario"], metrics=("iqm",))
    got = table.set_index("group").loc["fanin / no_small"]
    assert got["n_runs"] == 4
    finals = [0.51 + o for i, o in enumerate(OFFSETS) if i != 1]  # seed 1 failed
    assert got["estimate"] == pytest.approx(_raw("Pendulum-v1", np.mean(sorted(finals)[1:3])))


def test_probability_of_improvement_supported_and_not(runs):
    table = stats.poi_table(runs, ["init.scheme", "init.scenario"], reps=1000)
    pairs = table.set_index(["a", "b"])
    clear = pairs.loc[("orthogonal / small_outputs", "fanin / small_outputs")]
    assert clear["p"] == 1.0 and clear["supported"]
    assert clear["n_tasks"] == 2
    # 0.01 apart with seed offsets 0.05 apart: not supported by 5 seeds
    close = pairs.loc[("fanin / no_small", "fanin / small_outputs")]
    assert 0.5 < close["p"] < 0.75 and not close["supported"]
    assert close["low"] < 0.5 < close["high"]
    mirrored = pairs.loc[("fanin / small_outputs", "fanin / no_small")]
    assert mirrored["p"] == pytest.approx(1 - close["p"])


def test_two_perfectly_separated_seeds_are_too_few_for_a_verdict(runs):
    # keep 2 seeds a group: orthogonal still beats fanin in all 4 pairings and the bootstrap CI
    # collapses to [1, 1], but no test of 2 vs 2 can reach 5%, so nothing is "supported"
    one = runs[runs["init.scenario"] == "small_outputs"]
    two = one[one["seed"].isin([0, 2])]
    pair = stats.poi_table(two, ["init.scheme"], reps=500).set_index(["a", "b"])
    row = pair.loc[("orthogonal", "fanin")]
    assert row["p"] == 1.0 and row["low"] == 1.0 and row["n_min"] == 2
    assert not row["supported"]
    four = one[one["seed"].isin([0, 2, 3, 4])]
    row = stats.poi_table(four, ["init.scheme"], reps=500).set_index(["a", "b"])
    assert row.loc[("orthogonal", "fanin"), "n_min"] >= 4
    assert row.loc[("orthogonal", "fanin"), "supported"]


def test_is_supported_needs_the_ci_and_the_runs():
    got = stats.is_supported([0.6, 0.6, 0.3, 0.1], [0.9, 0.9, 0.7, 0.4], [4, 3, 10, 5])
    assert got.tolist() == [True, False, False, True]


def test_learning_curves_known(tidy):
    curves = stats.learning_curves(tidy, "eval/return", ["init.scheme", "init.scenario"], reps=200)
    walker = curves[(curves["env"] == "Walker2d-v4") & (curves["group"] == "orthogonal / no_small")]
    assert list(walker["env_step"]) == [float(s) for s in range(0, 10_001, 1000)]
    # the running run (stopped at 6000) drops out after its last eval
    assert list(walker["n_runs"]) == [5] * 7 + [4] * 4
    last = walker.iloc[-1]
    finals = sorted(0.81 + o for o in OFFSETS[:4])
    assert last["estimate"] == pytest.approx(_raw("Walker2d-v4", np.mean(finals[1:3])))
    assert last["low"] <= last["estimate"] <= last["high"]
    first = walker.iloc[0]
    assert first["estimate"] == pytest.approx(ENV_SCORES["Walker2d-v4"]["random"])


def test_steps_to_threshold_known(tidy):
    table = stats.threshold_table(
        tidy, "eval/return", ["init.scheme"], {"Pendulum-v1": _raw("Pendulum-v1", 0.55)}, reps=200
    )
    assert list(table["env"]) == ["Pendulum-v1", "Pendulum-v1"]  # Walker2d has no threshold
    got = table.set_index("group")
    # orthogonal IQM curve: ~0.8 * f / 0.7 reaches 0.55 at f = 0.48 -> first eval at 5000
    assert got.loc["orthogonal", "estimate"] == 5000.0
    # fanin levels ~0.5 never reach 0.55 in IQM
    assert got.loc["fanin", "estimate"] == np.inf


def test_profile_table_shapes(runs):
    table = stats.profile_table(runs, ["init.scheme"], value="score_norm", taus=[0.0, 0.65, 2.0])
    assert len(table) == 6
    ortho = table[table["group"] == "orthogonal"].set_index("tau")["fraction"]
    assert ortho[0.0] == 1.0 and ortho[2.0] == 0.0
    fanin = table[table["group"] == "fanin"].set_index("tau")["fraction"]
    assert fanin[0.65] == 0.0 and ortho[0.65] > 0.5


def test_group_labels():
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1.0, 0.5]})
    assert list(stats.group_labels(frame, ["a", "b"])) == ["x / 1", "y / 0.5"]
    assert list(stats.group_labels(frame, [])) == ["all", "all"]
