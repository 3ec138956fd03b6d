"""Tuning-cost analysis (analysis/tuning.py, analysis/tuning_report.py) on hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import write_report
from analysis.tuning import (
    config_improvement,
    expected_best,
    expected_best_at_budget,
    expected_best_curve,
    percentile_normalise,
    sensitivity_phi,
    sensitivity_table,
    success_table,
    tuning_curves,
    variance_explained,
    wilson_interval,
)
from tests.fixtures_analysis import ENV_SCORES, write_trial

# --- expected best score after n trials ---------------------------------------------------------


def test_expected_best_by_hand():
    # sorted v = 1, 2, 3, 4; P(max of n <= v_i) = (i/4)^n
    # n = 1: the mean, 2.5
    # n = 2: (1*1 + 2*3 + 3*5 + 4*7) / 16 = 50/16
    # n = 4: (1*1 + 2*15 + 3*65 + 4*175) / 256 = 926/256
    got = expected_best([3.0, 1.0, 4.0, 2.0], [1, 2, 4])
    np.testing.assert_allclose(got, [2.5, 50 / 16, 926 / 256])
    # ties count twice: v = 1, 1, 3, 4, n = 2: (1*1 + 1*3 + 3*5 + 4*7) / 16 = 47/16
    np.testing.assert_allclose(expected_best([3, 1, 4, 1], 2), 47 / 16)
    # lower is better: the expected minimum, by symmetry 5 - 50/16
    np.testing.assert_allclose(expected_best([1, 2, 3, 4], 2, mode="min"), 5 - 50 / 16)
    # many trials find the best; NaNs are no configuration
    assert expected_best([1, 2, 3, 4], 200) == pytest.approx(4.0, abs=1e-6)
    np.testing.assert_allclose(expected_best([1, np.nan, 3], 1), 2.0)
    with pytest.raises(ValueError, match="n must be integers >= 1"):
        expected_best([1, 2], 0)


def test_expected_best_curve_paired_seed_bootstrap():
    # 3 configurations x 2 seeds; configuration scores (means) 1.5, 4, 0.5
    m = np.array([[1.0, 2.0], [3.0, 5.0], [0.0, 1.0]])
    curve = expected_best_curve(m, reps=400, seed=1)
    assert list(curve["n"]) == [1, 2, 3]
    # n = 2 over {0.5, 1.5, 4}: (0.5*1 + 1.5*3 + 4*5) / 9 = 25/9
    np.testing.assert_allclose(curve["estimate"], [2.0, 25 / 9, expected_best([1.5, 4, 0.5], 3)])
    # a resample takes seed 0 twice (config means 1, 3, 0) or seed 1 twice (2, 5, 1) or both:
    # the n = 1 band spans [4/3, 8/3] and holds the estimate
    assert curve["low"][0] == pytest.approx(4 / 3) and curve["high"][0] == pytest.approx(8 / 3)
    assert (curve["low"] <= curve["estimate"]).all() and (curve["estimate"] <= curve["high"]).all()
    # identical seeds: no seed noise, a band of zero width
    flat = expected_best_curve(np.array([[1.0, 1.0], [3.0, 3.0]]), reps=50)
    np.testing.assert_allclose(flat["low"], flat["estimate"])
    np.testing.assert_allclose(flat["high"], flat["estimate"])
    # resampling the configurations too widens the band
    wide = expected_best_curve(
        np.array([[1.0, 1.0], [3.0, 3.0]]), reps=200, resample="seeds+configs"
    )
    assert wide["low"][0] == pytest.approx(1.0) and wide["high"][0] == pytest.approx(3.0)


def test_tuning_curves_count_the_env_steps_of_every_trial():
    runs = pd.DataFrame(
        {
            "agent": ["a"] * 4 + ["b"] * 4,
            "config": ["a0", "a0", "a1", "a1", "b0", "b0", "b1", "b1"],
            "seed": [0, 1] * 4,
            "score": [1.0, 3.0, 2.0, 2.0, 5.0, 5.0, 0.0, 0.0],
            "steps": [1000] * 4 + [5000] * 4,
        }
    )
    curves = tuning_curves(runs, ["agent"], reps=0)
    a = curves[curves["agent"] == "a"]
    # a configuration of `a` costs 2 seeds x 1000 steps
    assert list(a["env_steps"]) == [2000.0, 4000.0]
    np.testing.assert_allclose(a["estimate"], [2.0, 2.0])
    b = curves[curves["agent"] == "b"]
    assert list(b["env_steps"]) == [10000.0, 20000.0]
    # {0, 5}: n = 1 mean 2.5, n = 2: 0*1/4 + 5*3/4
    np.testing.assert_allclose(b["estimate"], [2.5, 3.75])
    assert set(curves["configs"]) == {2} and set(curves["seeds"]) == {2}
    # at b's cost of one configuration (10k steps) `a` runs 5 trials of 2k
    equal = expected_best_at_budget(runs, ["agent"], 10000, reps=0).set_index("agent")
    assert equal.loc["a", "n"] == 5 and equal.loc["a", "beyond_search"]
    assert equal.loc["a", "estimate"] == pytest.approx(2.0)
    assert equal.loc["b", "n"] == 1 and equal.loc["b", "estimate"] == pytest.approx(2.5)
    assert not equal.loc["b", "over_budget"]
    # a budget below one configuration still runs one
    small = expected_best_at_budget(runs, ["agent"], 3000, reps=0).set_index("agent")
    assert small.loc["b", "n"] == 1 and small.loc["b", "over_budget"]
    assert small.loc["a", "n"] == 1 and not small.loc["a", "over_budget"]


# --- per-knob sensitivity ------------------------------------------------------------------------


def test_variance_explained_by_hand():
    # groups {1, 3} and {5, 7}: grand mean 4, SS_total = 9+1+1+9 = 20, SS_between = 2*4+2*4
    assert variance_explained(["a", "a", "b", "b"], [1, 3, 5, 7]) == pytest.approx(0.8)
    # a knob that does nothing: equal group means
    assert variance_explained([64, 128, 64, 128], [1, 1, 3, 3]) == pytest.approx(0.0)
    # continuous values: 4 quantile bins of 2 (by rank, so log or not is the same)
    values = [1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3, 6.4e-3, 1.28e-2]
    scores = [0, 0, 1, 1, 2, 2, 3, 3]
    assert variance_explained(values, scores) == pytest.approx(1.0)
    assert variance_explained(np.log(values), scores) == pytest.approx(1.0)
    assert np.isnan(variance_explained([1, 1, 1], [1, 2, 3]))  # one group
    assert np.isnan(variance_explained([1, 2, 3], [2, 2, 2]))  # no variance
    # every value alone in its group "explains" everything: not estimable
    assert np.isnan(variance_explained(["a", "b", "c", "d"], [1, 2, 3, 4]))
    assert np.isnan(variance_explained([1e-4, 1e-3, 1e-2], [1, 2, 3]))


def test_sensitivity_table_ranks_the_knob_that_matters():
    rng = np.random.default_rng(0)
    lr = 10 ** rng.uniform(-4, -2, 40)
    batch = rng.choice([64, 256], 40)
    configs = pd.DataFrame(
        {
            "agent": "sac",
            "lr": lr,
            "batch": batch,
            "score": -((np.log10(lr) + 3) ** 2) + 0.01 * rng.normal(size=40),
        }
    )
    table = sensitivity_table(configs, ["lr", "batch"], ["agent"])
    assert list(table["key"]) == ["lr", "batch"]
    assert table["variance_share"].iloc[0] > 0.5 > table["variance_share"].iloc[1]
    best = configs.loc[configs["score"].idxmax(), "lr"]
    assert table["best_value"].iloc[0] == best


# --- across environments ---------------------------------------------------------


def test_percentile_normalise_by_hand():
    scores = np.r_[np.arange(101.0), np.arange(101.0) * 10]
    envs = np.array(["A"] * 101 + ["B"] * 101)
    out = percentile_normalise(scores, envs)
    # A: p5 = 5, p95 = 95; B: p5 = 50, p95 = 950
    assert out[50] == pytest.approx(0.5) and out[5] == pytest.approx(0.0)
    assert out[101 + 95] == pytest.approx(1.0) and out[101 + 50] == pytest.approx(0.5)
    lower = percentile_normalise(scores, envs, mode="min")
    assert lower[5] == pytest.approx(1.0) and lower[95] == pytest.approx(0.0)


def _phi_runs(gamma: dict[str, np.ndarray], seeds: int = 3, noise: float = 0.0) -> pd.DataFrame:
    """Runs whose seed-mean normalised score is gamma[family][setting, env]."""
    rows = []
    offsets = np.linspace(-noise, noise, seeds)
    for fam, g in gamma.items():
        for h in range(g.shape[0]):
            for e in range(g.shape[1]):
                for s in range(seeds):
                    rows.append(
                        {
                            "agent": fam,
                            "config": h,
                            "env": f"env{e}",
                            "seed": s,
                            "normalised": g[h, e] + offsets[s],
                        }
                    )
    return pd.DataFrame(rows)


def test_phi_is_zero_for_a_family_insensitive_by_construction():
    # flat: setting quality + env difficulty, so setting 2 is the best in every env: Phi = 0.
    # swapped: setting 0 is the best in env0, setting 1 in env1, each useless in the other env:
    #   per-env tuned = mean(1, 1) = 1; best single setting = max(mean(1, 0), mean(0, 1)) = 0.5
    gamma = {
        "flat": np.array([0.1, 0.3, 0.6])[:, None] + np.array([0.0, 0.2, 0.3])[None, :],
        "swapped": np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.2]]),
    }
    phi = sensitivity_phi(_phi_runs(gamma, noise=0.05), reps=200).set_index("agent")
    assert phi.loc["flat", "phi"] == pytest.approx(0.0, abs=1e-12)
    assert phi.loc["flat", "best_setting"] == 2
    assert phi.loc["flat", "per_env_tuned"] == pytest.approx(0.6 + 0.5 / 3)
    assert phi.loc["swapped", "per_env_tuned"] == pytest.approx(1.0)
    assert phi.loc["swapped", "cross_env_tuned"] == pytest.approx(0.5)
    assert phi.loc["swapped", "phi"] == pytest.approx(0.5)
    # the seed bootstrap keeps the flat family near 0 and the swapped one far from it
    assert phi.loc["flat", "phi_high"] < 0.1 < 0.4 < phi.loc["swapped", "phi_low"]
    assert phi.loc["flat", "envs"] == 3 and phi.loc["swapped", "settings"] == 3


def test_phi_uses_only_settings_run_in_every_env():
    runs = _phi_runs({"a": np.array([[0.5, 0.5], [0.9, 0.1]])}, seeds=1)
    runs = pd.concat(
        [
            runs,
            pd.DataFrame(
                [{"agent": "a", "config": 7, "env": "env0", "seed": 0, "normalised": 5.0}]
            ),
        ]
    )
    phi = sensitivity_phi(runs).iloc[0]
    assert phi["settings"] == 2
    assert phi["per_env_tuned"] == pytest.approx((0.9 + 0.5) / 2)
    assert phi["cross_env_tuned"] == pytest.approx(0.5)


# --- robustness to the settings -----------------------------------------------------------


def test_wilson_interval_by_hand():
    # 1 of 10 at 95% (z = 1.959964): centre = (0.1 + z^2/20) / (1 + z^2/10) = 0.21075...,
    # half = z / (1 + z^2/10) * sqrt(0.009 + z^2/400) = 0.19314...: [0.01788, 0.40415]
    low, high = wilson_interval(1, 10)
    assert low == pytest.approx(0.017876, abs=1e-5) and high == pytest.approx(0.404150, abs=1e-5)
    # no success is not a share of exactly 0: z^2 / (n + z^2) above it
    z2 = 1.959964**2
    assert wilson_interval(0, 8) == pytest.approx((0.0, z2 / (8 + z2)), abs=1e-6)
    assert wilson_interval(8, 8) == pytest.approx((8 / (8 + z2), 1.0), abs=1e-6)
    assert all(np.isnan(wilson_interval(0, 0)))
    with pytest.raises(ValueError, match="successes must be in"):
        wilson_interval(3, 2)


def test_success_table_counts_working_settings_and_the_data_to_find_one():
    configs = pd.DataFrame(
        {
            "family": ["a"] * 4 + ["b"] * 2 + ["c"],
            "env": ["E"] * 6 + ["F"],
            "score": [-100.0, -140.0, -300.0, -150.0, -900.0, -800.0, 5.0],
            "steps": [30_000.0] * 4 + [200_000.0] * 2 + [1.0],
        }
    )
    table = success_table(configs, ["family", "env"], {"E": -150.0}).set_index("family")
    # F has no threshold: family c is left out
    assert list(table.index) == ["a", "b"]
    # a: -100, -140 and -150 (at the threshold counts) reach it: 3 of 4
    a = table.loc["a"]
    assert (a["successes"], a["configs"], a["share"]) == (3, 4, 0.75)
    assert (a["share_low"], a["share_high"]) == pytest.approx(wilson_interval(3, 4))
    # 1 / 0.75 trials until the first working setting, each 30k real steps
    assert a["trials"] == pytest.approx(4 / 3) and a["env_steps"] == pytest.approx(40_000)
    assert a["trials_low"] == pytest.approx(1 / a["share_high"])
    assert a["env_steps_high"] == pytest.approx(30_000 / a["share_low"])
    # b: none works; only a lower bound on what finding one costs
    b = table.loc["b"]
    assert b["successes"] == 0 and np.isinf(b["trials"]) and np.isinf(b["env_steps_high"])
    assert b["env_steps_low"] == pytest.approx(200_000 / wilson_interval(0, 2)[1])
    # lower is better: at or below the threshold
    low = success_table(
        configs.assign(score=-configs["score"]), ["family"], {"E": 150.0}, mode="min"
    )
    assert list(low["successes"]) == [3, 0]


def test_config_improvement_by_hand():
    # a = 1, 2, 3 vs b = 0, 0.5, 2: wins 2 + 2.5 (a tie) + 3 of 9 pairs
    p, low, high = config_improvement([1, 2, 3], [0, 0.5, 2], reps=500)
    assert p == pytest.approx(7.5 / 9)
    assert 0 <= low <= p <= high <= 1
    # lower is better flips it; NaNs are no configuration
    assert config_improvement([1, 2, 3, np.nan], [0, 0.5, 2], mode="min", reps=0)[0] == (
        pytest.approx(1.5 / 9)
    )
    # separate families: the band comes from resampling each family's configurations, so it
    # is not degenerate when they overlap ...
    _, low, high = config_improvement([0, 1, 2, 3], [0.5, 1.5, 2.5, 3.5], reps=500)
    assert low < 0.5 < high
    # ... and [1, 1] when every configuration of one beats every one of the other
    assert config_improvement([5, 6], [1, 2], reps=100) == (1.0, 1.0, 1.0)
    assert all(np.isnan(config_improvement([], [1.0])))


# --- the report section ---------------------------------------------------------


def _write_search_sweep(root: Path, quality: dict[str, list[float]], envs: list[str]) -> Path:
    """A finished search sweep: agents x envs x draws x 2 seeds, final normalised score
    quality[agent][draw] (+-0.02 per seed), and sac.lr / ppo.lr as the searched knob."""
    planned, group = [], 0
    lrs = [1e-4, 3e-4, 1e-3, 3e-3]
    for agent, levels in quality.items():
        for env in envs:
            for r, level in enumerate(levels):
                for seed in (0, 1):
                    trial_id = f"t{group:03d}_{agent}_{env}_r{r}_s{seed}"
                    # every section is in a trial's config: the other agents' at defaults
                    config = {
                        "agent": agent,
                        "env": env,
                        "seed": seed,
                        "total_steps": 1000,
                        **{a: {"lr": 5e-4} for a in quality},
                        agent: {"lr": lrs[r]},
                    }
                    planned.append(
                        {
                            "trial_id": trial_id,
                            "group": f"t{group:03d}",
                            "config": config,
                            "draw": r,
                        }
                    )
                    write_trial(
                        root,
                        trial_id,
                        config,
                        {seed: level + (0.02 if seed else -0.02)},
                        budget=1000,
                        n_evals=10,
                    )
                group += 1
    resolved = {
        "name": "tiny_tuning",
        "budget": None,
        "metric": "eval/return",
        "mode": "max",
        "seeds": [0, 1],
        "grid": {"agent": list(quality), "env": envs},
        "varying_keys": ["agent", "env"],
        "trials": planned,
        "search": {
            "samples": len(next(iter(quality.values()))),
            "seed": 0,
            "draws": "shared",
            "distributions": {f"{a}.lr": ["loguniform(0.0001, 0.003)"] for a in quality},
        },
    }
    (root / "sweep_resolved.json").write_text(json.dumps(resolved))
    return root


def test_report_has_a_tuning_section_with_the_expected_best(tmp_path):
    # sac: one good setting out of 4; ppo: every setting mediocre
    quality = {"sac": [0.1, 0.9, 0.1, 0.1], "ppo": [0.5, 0.5, 0.5, 0.5]}
    root = _write_search_sweep(tmp_path / "sweep", quality, ["Pendulum-v1", "Walker2d-v4"])
    md = write_report(root, progress=False, reps=200, curve_reps=50, formats=("png",), dpi=60)
    text = md.read_text()
    assert "## Tuning cost (random search)" in text
    curves = pd.read_csv(root / "report" / "tuning_curves.csv")
    sac = curves[(curves["family"] == "sac") & (curves["env"] == "Pendulum-v1")]
    span = ENV_SCORES["Pendulum-v1"]["reference"] - ENV_SCORES["Pendulum-v1"]["random"]
    raw = ENV_SCORES["Pendulum-v1"]["random"] + span * np.array(quality["sac"])
    np.testing.assert_allclose(sac["estimate"], expected_best(raw, [1, 2, 3, 4]), rtol=1e-6)
    assert list(sac["env_steps"]) == [2000.0, 4000.0, 6000.0, 8000.0]
    # the draw's band (configurations resampled too): sac's scores are one 0.9 and three 0.1s,
    # so a random configuration's mean can fall anywhere from all-bad to mostly-good; the
    # seeds alone (+-0.02) barely move it
    n1 = sac.iloc[0]
    assert n1["draw_low"] <= n1["estimate"] <= n1["draw_high"]
    assert n1["draw_high"] - n1["draw_low"] > 10 * (n1["high"] - n1["low"])
    assert "configurations too" in text
    assert "At equal real data, tuning included" in text
    # how many settings work, against the env's reference score (the report's threshold):
    # sac's one good draw (0.9 of the way from random to reference) falls short of it
    success = pd.read_csv(root / "report" / "tuning_success.csv")
    assert set(success["family"]) == {"sac", "ppo"}
    assert (success["successes"] == 0).all() and (success["configs"] == 4).all()
    assert "How many settings work" in text and "none found" in text
    versus = pd.read_csv(root / "report" / "tuning_versus.csv")
    pend = versus[versus["env"] == "Pendulum-v1"].iloc[0]
    # sac's 0.9 beats ppo's four 0.5s, its three 0.1s lose: P(sac > ppo) = 4 / 16
    assert (pend["a"], pend["b"]) == ("sac", "ppo") and pend["p"] == pytest.approx(0.25)
    assert pend["verdict"] == "not supported"
    # the same draw is best in both envs for sac, and ppo is flat: Phi ~ 0 for both
    phi = pd.read_csv(root / "report" / "tuning_phi.csv").set_index("family")
    assert phi.loc["sac", "best_setting"] == 1
    assert abs(phi.loc["sac", "phi"]) < 0.05
    sens = pd.read_csv(root / "report" / "tuning_sensitivity.csv")
    # each family's own knob only (another section's default is not a searched knob)
    assert sorted(zip(sens["family"], sens["key"])) == sorted(
        [("sac", "sac.lr")] * 2 + [("ppo", "ppo.lr")] * 2
    )
    for name in (
        "tuning_expected_best_vs_trials",
        "tuning_expected_best_vs_env_steps",
        "tuning_slices_sac",
        "tuning_slices_ppo",
    ):
        assert (root / "report" / "figures" / f"{name}.png").is_file()
        assert f"report/figures/{name}.png" in text


def test_report_without_search_has_no_tuning_section(tmp_path):
    from tests.fixtures_analysis import write_sweep

    root = write_sweep(tmp_path / "plain", seeds=(0, 1, 2))
    text = write_report(
        root, progress=False, reps=50, curve_reps=20, formats=("png",), dpi=60
    ).read_text()
    assert "Tuning cost" not in text
    assert not (root / "report" / "tuning_curves.csv").exists()
