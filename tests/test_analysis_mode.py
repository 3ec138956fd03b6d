"""Lower-is-better metrics (``mode: min``): stats, plots and ``sweep report`` read lower as better.

The synthetic sweep is a world-model ablation whose metric is an open-loop prediction error,
``model/open_loop/obs_h15``. A run's error falls linearly from ``START`` to its group's final
error by 70% of the budget and stays flat, so the final performance (mean of the last three
evaluations) is exactly ``FINAL_ERR[scheme] + offset`` (times the env's scale). Group
``orthogonal`` ("A") ends clearly below ``fanin`` ("B"); alphabetically, and under higher-is-
better, B would come first, so every test below fails if the direction is ignored.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh

from analysis import load, plots, report, stats

METRIC = "model/open_loop/obs_h15"
A, B = "orthogonal", "fanin"
FINAL_ERR = {A: 0.1, B: 0.5}
START = 1.0
SCALE = {"Pendulum-v1": 1.0, "Walker2d-v4": 10.0}  # envs have different error scales
ENV_SCORES = {
    "Pendulum-v1": {"random": -1200.0, "reference": -150.0},
    "Walker2d-v4": {"random": 0.0, "reference": 4000.0},
}
SEEDS = (0, 1, 2, 3)  # 4 runs a group: the fewest a "supported" verdict needs
OFFSETS = (-0.02, -0.01, 0.01, 0.02)
BUDGET, N_EVALS = 10_000, 10


def error_curve(final: float, fractions: np.ndarray) -> np.ndarray:
    """Prediction error at the given fractions of the budget: linear to ``final`` at 70%."""
    return final + (START - final) * np.maximum(0.0, 1.0 - fractions / 0.7)


def write_min_sweep(root: Path, *, mode: str = "min") -> Path:
    """A sweep directory in the documented layout whose metric is minimised."""
    planned = []
    steps = np.linspace(0, BUDGET, N_EVALS + 1).round().astype(int)
    for env in SCALE:
        for scheme in (B, A):
            for seed, offset in zip(SEEDS, OFFSETS, strict=True):
                trial_id = f"{env}-{scheme}-s{seed}"
                config = {"agent": "dreamer", "env": env, "init": {"scheme": scheme}, "seed": seed}
                planned.append({"trial_id": trial_id, "config": config})
                trial_dir = root / "trials" / trial_id
                trial_dir.mkdir(parents=True)
                lines = ["env_step,wall_time,seed,eval/return,model/open_loop/obs_h1," + METRIC]
                for i, step in enumerate(steps):
                    err = SCALE[env] * error_curve(FINAL_ERR[scheme] + offset, step / BUDGET)
                    # the world model is untrained at step 0: no open-loop error yet
                    err_text = "" if step == 0 else f"{float(err):.6f}"
                    h1 = "" if step == 0 else f"{float(err) / 3:.6f}"
                    ret = ENV_SCORES[env]["random"] + 10.0 * i * (2 if scheme == A else 1)
                    lines.append(f"{step},{1.5 * i:.2f},{seed},{ret:.3f},{h1},{err_text}")
                (trial_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
                (trial_dir / "config.json").write_text(json.dumps(config))
                status = {
                    "state": "finished",
                    "error": None,
                    "env_steps": BUDGET,
                    "planned_steps": BUDGET,
                    "updated": 1_700_000_000.0,
                    "env_scores": ENV_SCORES[env],
                }
                (trial_dir / "status.json").write_text(json.dumps(status))
    resolved = {
        "name": root.name,
        "budget": {"env_steps": BUDGET},
        "metric": METRIC,
        "mode": mode,
        "seeds": list(SEEDS),
        "grid": {"env": list(SCALE), "init.scheme": [B, A]},
        "varying_keys": ["env", "init.scheme", "seed"],
        "trials": planned,
    }
    (root / "sweep_resolved.json").write_text(json.dumps(resolved, indent=1))
    (root / "sweep.yaml").write_text(f"name: {root.name}\nmetric: {METRIC}\nmode: {mode}\n")
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return write_min_sweep(tmp_path_factory.mktemp("mode") / "wm_ablation")


@pytest.fixture(scope="module")
def tidy(sweep):
    return load.load_sweep(sweep)


@pytest.fixture(scope="module")
def runs(tidy):
    return stats.final_scores(tidy, METRIC)


# --------------------------------------------------------------------------------------------
# array functions by hand


def test_mode_validation():
    assert stats.higher_is_better("max") and not stats.higher_is_better("min")
    for bad in ("minimize", "MIN", None):
        with pytest.raises(ValueError, match="mode must be"):
            stats.check_mode(bad)
    with pytest.raises(ValueError, match="mode must be"):
        stats.probability_of_improvement([np.ones(2)], [np.zeros(2)], mode="lower")
    with pytest.raises(ValueError, match="mode must be"):
        plots.plot_intervals(pd.DataFrame({"group": ["a"], "metric": ["iqm"]}), mode="down")


def test_probability_of_improvement_min_by_hand():
    x, y = [np.array([1.0, 2.0, 3.0])], [np.array([2.5])]
    assert stats.probability_of_improvement(x, y) == pytest.approx(1 / 3)  # 3 > 2.5
    assert stats.probability_of_improvement(x, y, mode="min") == pytest.approx(2 / 3)  # 1, 2
    ties = [np.array([1.0, 2.0])], [np.array([2.0])]
    assert stats.probability_of_improvement(*ties, mode="min") == pytest.approx((1 + 0.5) / 2)
    assert stats.probability_of_improvement(*ties, mode="max") == pytest.approx(0.5 / 2)
    # "x better than y" under min is "y better than x" under max, per task and averaged
    rng = np.random.default_rng(0)
    p, q = [rng.normal(size=6), rng.normal(size=3)], [rng.normal(size=4), rng.normal(size=5)]
    assert stats.probability_of_improvement(p, q, mode="min") == pytest.approx(
        stats.probability_of_improvement(q, p, mode="max")
    )
    est, low, high = stats.probability_of_improvement_ci(
        [np.array([0.1, 0.12, 0.09, 0.11])], [np.array([0.5, 0.52, 0.49])], mode="min", reps=300
    )
    assert est == 1.0 and low > 0.5 and high == 1.0


def test_optimality_gap_min_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0])
    # gamma 2: task a stays above 2 by mean(2, 2, 3) - 2 = 1/3, task b by 8
    assert stats.aggregate_optimality_gap(a, b, gamma=2.0, mode="min") == pytest.approx(
        (1 / 3 + 8) / 2
    )
    assert stats.aggregate_optimality_gap(a, b, gamma=2.0) == pytest.approx((2 - 5 / 3 + 0) / 2)


def test_performance_profile_min_counts_runs_below_tau():
    runs = [np.array([0.0, 1.0, 2.0, 3.0])]
    frac, _, _ = stats.performance_profile(runs, [-1, 1.5, 4], mode="min", reps=100)
    np.testing.assert_allclose(frac, [0.0, 0.5, 1.0])
    frac, _, _ = stats.performance_profile(runs, [-1, 1.5, 4], mode="max", reps=100)
    np.testing.assert_allclose(frac, [1.0, 0.5, 0.0])


def test_steps_to_threshold_min_by_hand():
    steps = np.array([0.0, 100.0, 200.0, 300.0])
    # 5 runs of a falling error; IQM per step = mean of the middle three: 9, 7, 3, 0
    curves = np.array([[9, 9, 9, 9, 9], [5, 6, 7, 8, 9], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]], float)
    est, low, high = stats.steps_to_threshold(curves, steps, 4.5, mode="min", reps=300)
    assert est == 200.0 and 100.0 <= low <= est <= high
    # higher-is-better would call the first evaluation (9 >= 4.5) a hit
    assert stats.steps_to_threshold(curves, steps, 4.5, reps=50)[0] == 0.0
    assert stats.steps_to_threshold(curves, steps, -1.0, mode="min", reps=50) == (
        np.inf,
        np.inf,
        np.inf,
    )


def test_rank_groups_by_mode():
    table = pd.DataFrame(
        {"group": ["a", "b", "c", "d", "a", "b"],
         "metric": ["iqm"] * 4 + ["optimality_gap"] * 2,
         "estimate": [0.5, 0.1, np.nan, 0.9, 0.3, 0.2]}
    )  # fmt: skip
    assert stats.rank_groups(table) == ["d", "a", "b", "c"]
    assert stats.rank_groups(table, mode="min") == ["b", "a", "d", "c"]  # no estimate: last
    assert stats.rank_groups(table, "optimality_gap") == ["b", "a"]  # a gap: lower is better


# --------------------------------------------------------------------------------------------
# DataFrame functions on the min-mode sweep


def test_sweep_info_reads_mode(sweep, tmp_path):
    assert load.read_sweep_info(sweep).mode == "min"
    (tmp_path / "sweep_resolved.json").write_text(json.dumps({"name": "x"}))
    assert load.read_sweep_info(tmp_path).mode == "max"  # the schema's default


def test_final_scores_keep_units_and_normalise_only_returns(tidy, runs):
    assert len(runs) == 16
    run = runs.set_index(["trial_id", "seed"])
    assert run.loc[("Walker2d-v4-orthogonal-s3", 3), "score"] == pytest.approx(10 * 0.12)
    assert run.loc[("Pendulum-v1-fanin-s0", 0), "score"] == pytest.approx(0.48)
    # env scores are returns: an error is not normalised with them
    assert runs["score_norm"].isna().all() and runs["auc_norm"].isna().all()
    forced = stats.final_scores(tidy, METRIC, normalise=True)
    assert forced["score_norm"].notna().all()
    returns = stats.final_scores(tidy, "eval/return")
    assert returns["score_norm"].notna().all()


def test_tables_on_min_sweep(tidy, runs):
    pend = runs[runs["env"] == "Pendulum-v1"]
    table = stats.interval_table(pend, ["init.scheme"], metrics=("iqm",), mode="min", reps=300)
    iqm = table.set_index("group")["estimate"]
    assert iqm[A] == pytest.approx(0.1) and iqm[B] == pytest.approx(0.5)  # own units
    assert stats.rank_groups(table, mode="min") == [A, B]
    assert stats.rank_groups(table, mode="max") == [B, A]

    poi = stats.poi_table(runs, ["init.scheme"], mode="min", reps=300).set_index(["a", "b"])
    assert poi.loc[(A, B), "p"] == 1.0 and poi.loc[(A, B), "supported"]
    assert poi.loc[(A, B), "n_tasks"] == 2
    assert poi.loc[(B, A), "p"] == 0.0
    flipped = stats.poi_table(runs, ["init.scheme"], reps=100).set_index(["a", "b"])
    assert flipped.loc[(A, B), "p"] == 0.0

    steps = stats.threshold_table(
        tidy, METRIC, ["init.scheme"], {"Pendulum-v1": 0.3}, mode="min", reps=200
    ).set_index("group")
    # A: 0.1 + 0.9 (1 - f / 0.7) <= 0.3 from f = 0.544, i.e. the evaluation at 6000 steps
    assert steps.loc[A, "estimate"] == 6000.0
    assert steps.loc[B, "estimate"] == np.inf  # B never gets below 0.48

    prof = stats.profile_table(pend, ["init.scheme"], taus=[0.3], mode="min", reps=100)
    frac = prof.set_index("group")["fraction"]
    assert frac[A] == 1.0 and frac[B] == 0.0


# --------------------------------------------------------------------------------------------
# plots


def _summary() -> pd.DataFrame:
    return pd.DataFrame(
        {"env": "e", "group": ["x", "y", "z"], "init.scheme": ["x", "y", "z"],
         "init.scenario": "s", "metric": "iqm", "estimate": [0.2, 0.1, 0.3],
         "low": [0.15, 0.05, 0.25], "high": [0.25, 0.15, 0.35]}
    )  # fmt: skip


def test_plots_label_and_order_lower_is_better():
    _, axes = plots.plot_intervals(_summary(), units="error", mode="min")
    assert [t.get_text() for t in axes[0, 0].get_yticklabels()] == ["y", "x", "z"]
    assert axes[0, 0].get_xlabel() == "IQM\n(error, lower is better)"  # narrow panels
    _, axes = plots.plot_intervals(_summary(), units="error")
    assert [t.get_text() for t in axes[0, 0].get_yticklabels()] == ["z", "x", "y"]
    assert axes[0, 0].get_xlabel() == "IQM (error)"

    poi = pd.DataFrame({"a": ["x", "y"], "b": ["y", "x"], "p": [0.2, 0.8]})
    _, axes = plots.plot_probability_of_improvement(poi, mode="min")
    assert axes[0, 0].get_title().startswith("P(row < column): lower is better")
    _, axes = plots.plot_probability_of_improvement(poi)
    assert axes[0, 0].get_title() == "P(row > column); * = 95% CI excludes 0.5"
    _, axes = plots.plot_probability_of_improvement(poi, title=None, mode="min")
    assert axes[0, 0].get_title() == ""

    prof = pd.DataFrame({"group": "x", "env": "e", "tau": [0.0, 1.0], "fraction": [0.0, 1.0],
                         "low": 0.0, "high": 1.0})  # fmt: skip
    _, axes = plots.plot_performance_profiles(prof, mode="min")
    assert "< \\tau" in axes[0, 0].get_ylabel() and "lower is better" in axes[0, 0].get_ylabel()
    _, axes = plots.plot_performance_profiles(prof)
    assert "> \\tau" in axes[0, 0].get_ylabel()

    for mode, cmap in (("min", "viridis_r"), ("max", "viridis")):
        _, axes = plots.plot_heatmap(_summary(), facet=None, mode=mode)
        mesh = next(c for c in axes[0, 0].collections if isinstance(c, QuadMesh))
        assert mesh.get_cmap().name == cmap


# --------------------------------------------------------------------------------------------
# sweep report


@pytest.fixture(scope="module")
def min_report(sweep):
    report.write_report(sweep, progress=False, reps=300, curve_reps=100)
    return sweep


def _ranked(md: str, scope: str) -> list[str]:
    section = md.split(f"### {scope}\n", 1)[1]
    return re.findall(r"^\| \d \| \**([a-z_]+?)\**? \|", section, flags=re.M)[:2]


def test_report_ranks_lower_first_and_says_so(min_report):
    md = (min_report / "report.md").read_text()
    assert "Warning" not in md and "read the rankings" not in md
    assert f"Metric: `{METRIC}`, **lower is better** (mode `min`)." in md
    assert "## Ranking (final performance, 95% CIs; lower is better, lowest IQM first)" in md
    for env in SCALE:
        assert _ranked(md, env) == [A, B], env
    assert f"**{A}** has the lowest IQM (lower `{METRIC}` is better)." in md
    assert "P(best < group) [95% CI]" in md
    assert f"supported: {A} better" in md
    # an error is not a return: no env-score normalisation, aggregate or optimality gap
    assert "all envs (normalised)" not in md
    assert "Optimality gap" not in md and "Random score" not in md
    # numbers stay in the metric's units: A's Walker2d IQM is 10 * 0.1 = 1.00
    intervals = pd.read_csv(min_report / "report" / "intervals.csv")
    iqm = intervals[intervals["metric"] == "iqm"].set_index(["env", "group"])["estimate"]
    assert iqm[("Walker2d-v4", A)] == pytest.approx(1.0)
    assert iqm[("Pendulum-v1", B)] == pytest.approx(0.5)


def test_report_probability_of_improvement_and_threshold(min_report):
    poi = pd.read_csv(min_report / "report" / "poi_pairs.csv").set_index(["a", "b"])
    assert poi.loc[(A, B), "p"] >= 0.99 and poi.loc[(A, B), "low"] > 0.5
    md = (min_report / "report.md").read_text()
    # default threshold: median of the two groups' final IQMs = 0.3 (Pendulum), 3.0 (Walker2d)
    assert "| Pendulum-v1 | 0.3 |" in md and "| Walker2d-v4 | 3 |" in md
    assert "median over groups of the final IQM" in md and "at or below it" in md
    section = md.split("### Pendulum-v1\n", 1)[1].split("###", 1)[0]
    assert "Steps to ≤ 0.3" in section
    rows = {m[0]: m[1] for m in re.findall(r"^\| \d \| \**([a-z_]+)\**? \|.*\| ([^|]+) \|$",
                                           section, flags=re.M)}  # fmt: skip
    assert rows[A].startswith("6,000") and rows[B].strip() == "not reached"


def test_report_figures_labelled_lower_is_better(min_report):
    figures = min_report / "report" / "figures"
    for name in ("learning_curves", "final_intervals", "probability_of_improvement"):
        assert "lower is better" in (figures / f"{name}.svg").read_text(), name


def test_mode_option_overrides_the_sweep(sweep, tmp_path, capsys):
    root = shutil.copytree(sweep, tmp_path / "as_max")
    args = [str(root), "--no-progress", "--reps", "200", "--mode", "max", "--group", "init.scheme"]
    assert report.main(args) == 0
    md = (root / "report.md").read_text()
    assert "**higher is better** (mode `max`)" in md and "lower is better" not in md
    for env in SCALE:
        assert _ranked(md, env) == [B, A], env
    assert "P(best > group) [95% CI]" in md

    bad = shutil.copytree(sweep, tmp_path / "bad_mode")
    resolved = json.loads((bad / "sweep_resolved.json").read_text())
    (bad / "sweep_resolved.json").write_text(json.dumps({**resolved, "mode": "lowest"}))
    capsys.readouterr()
    assert report.main([str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown metric mode 'lowest'" in err and str(bad) in err


def test_return_metric_in_min_mode(sweep, tmp_path):
    """Env scores still normalise a return, but the reference is no target when minimising."""
    root = shutil.copytree(sweep, tmp_path / "returns")
    md = report.write_report(
        root, metric="eval/return", progress=False, reps=200, curve_reps=50
    ).read_text()
    assert "Metric: `eval/return`, **lower is better** (mode `min`)." in md
    for scope in (*SCALE, "all envs (normalised)"):
        assert _ranked(md, scope) == [B, A], scope  # B's returns rise half as fast
    assert "| Env | Random score | Reference score | Threshold for steps-to-threshold |" in md
    assert "Optimality gap" not in md and "median over groups of the final IQM" in md
