"""analysis.load: the documented layout -> tidy tables; nothing dropped silently."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_analysis import write_sweep

from analysis import AnalysisError, load


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("load") / "load_sweep"
    return write_sweep(
        root,
        schemes=("fanin", "orthogonal"),
        scenarios=("small_outputs", "no_small"),
        envs=("Pendulum-v1", "Walker2d-v4"),
        seeds=(0, 1, 2),
        n_evals=4,
        failed=[("Pendulum-v1", "fanin", "no_small", 1)],
        running=[("Walker2d-v4", "orthogonal", "no_small", 2)],
        pending=[("Walker2d-v4", "fanin", "no_small", 0)],
        batched=[("Walker2d-v4", "fanin", "small_outputs")],
    )


def test_trials_table_marks_every_state(sweep):
    trials = load.load_trials(sweep)
    # 2 envs x 2 schemes x 2 scenarios x 3 seeds = 24 runs; one combo batched into 1 trial
    assert len(trials) == 24 - 3 + 1
    states = trials.set_index("trial_id")["state"]
    assert states["Pendulum-v1-fanin-no_small-s1"] == "failed"
    assert states["Walker2d-v4-orthogonal-no_small-s2"] == "running"
    assert states["Walker2d-v4-fanin-no_small-s0"] == "pending"  # planned, no directory
    assert (states == "finished").sum() == len(trials) - 3
    failed = trials.set_index("trial_id").loc["Pendulum-v1-fanin-no_small-s1"]
    assert "NaN in actor loss" in failed["error"]
    assert failed["env_steps"] == 2500 and failed["planned_steps"] == 10_000  # stopped at 40%
    assert trials.attrs["config_keys"] == ["init.scheme", "init.scenario"]


def test_tidy_table_rows_and_columns(sweep):
    df = load.load_sweep(sweep)
    for col in ("trial_id", "seed", "env", "state", "init.scheme", "init.scenario", "env_step"):
        assert col in df.columns
    assert "sac.lr" not in df.columns  # constant config keys are not columns
    assert "seed" not in df.attrs["config_keys"]
    assert {"eval/return", "loss/actor", "init/action_clip_frac"} <= set(df.attrs["metric_columns"])
    # finished run: 5 evaluation rows (steps 0, 2500, ..., 10000)
    one = df[df["trial_id"] == "Pendulum-v1-orthogonal-no_small-s0"]
    assert list(one["env_step"]) == [0, 2500, 5000, 7500, 10_000]
    # failed run is kept with the rows it wrote (up to 40%), marked failed
    failed = df[df["trial_id"] == "Pendulum-v1-fanin-no_small-s1"]
    assert list(failed["env_step"]) == [0, 2500] and set(failed["state"]) == {"failed"}
    # pending trial: one placeholder row without env_step
    pending = df[df["trial_id"] == "Walker2d-v4-fanin-no_small-s0"]
    assert len(pending) == 1 and pending["env_step"].isna().all()
    # seed-batched trial: K rows per evaluation told apart by seed
    batch = df[df["trial_id"] == "Walker2d-v4-fanin-small_outputs-batch"]
    assert sorted(batch["seed"].unique()) == [0, 1, 2] and len(batch) == 3 * 5
    assert df.loc[one.index, "env_score_reference"].eq(-150.0).all()
    assert pending["env_score_reference"].isna().all()  # no status.json yet


def test_half_written_files_make_a_trial_damaged_not_a_wrong_number(tmp_path):
    """Files are replaced atomically, so a row cut mid-line or a status cut mid-write is damage:
    the trial is named (path and defect) and none of its numbers reaches the tables."""
    root = write_sweep(tmp_path / "live", seeds=(0, 1), n_evals=4)
    trial = next(p for p in (root / "trials").iterdir() if p.name.endswith("-s0"))
    with open(trial / "metrics.csv", "a") as f:
        f.write("12500,9.0,0,-3")  # a row cut mid-line
    other = next(p for p in (root / "trials").iterdir() if p.name.endswith("-s1"))
    (other / "status.json").write_text('{"state": "runn')  # cut mid-write
    df = load.load_sweep(root)
    rows = df[df["trial_id"] == trial.name]
    assert len(rows) == 1 and rows["env_step"].isna().all()  # placeholder only
    assert set(rows["state"]) == {"damaged"}
    damaged = {d["trial_id"]: d for d in df.attrs["damaged"]}
    assert set(damaged) == {trial.name, other.name}
    assert damaged[trial.name]["path"] == str(trial)
    assert "metrics.csv is truncated mid-line" in damaged[trial.name]["defects"]
    assert "status.json is not valid JSON" in damaged[other.name]["defects"]
    trials = load.load_trials(root)
    assert trials.set_index("trial_id").loc[other.name, "state"] == "damaged"
    with pytest.raises(AnalysisError, match=rf"2 damaged trial\(s\).*{trial.name}"):
        load.load_sweep(root, strict=True)


def test_init_diagnostics_tables(sweep):
    summary, hist = load.load_init_diagnostics(sweep)
    # Pendulum has 1 action dim, Walker2d 6; the pending run wrote nothing
    n_runs = {"Pendulum-v1": 12, "Walker2d-v4": 11}
    assert len(summary) == n_runs["Pendulum-v1"] * 1 + n_runs["Walker2d-v4"] * 6
    assert len(hist) == 20 * len(summary)
    sums = hist.groupby(["trial_id", "seed", "action_dim"])["frac"].sum()
    assert sums.round(9).eq(1.0).all()
    assert hist["bin_lo"].min() == -1.0 and hist["bin_hi"].max() == 1.0
    assert {"init.scheme", "init.scenario", "coverage", "clip_frac", "entropy"} <= set(summary)


def test_no_diagnostics_gives_empty_tables(tmp_path):
    root = write_sweep(tmp_path / "nodiag", seeds=(0,), diagnostics=False)
    summary, hist = load.load_init_diagnostics(root)
    assert summary.empty and hist.empty


def test_errors_name_the_path(tmp_path):
    with pytest.raises(AnalysisError, match=str(tmp_path / "missing")):
        load.load_sweep(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match=r"no trials in .*empty"):
        load.load_trials(tmp_path / "empty")
    bad = write_sweep(tmp_path / "bad", seeds=(0,))
    trial = next((bad / "trials").iterdir())
    (trial / "metrics.csv").write_text("step,eval/return\n0,1\n")
    df = load.load_sweep(bad)  # the other trials stay usable; this one is named
    assert [d["trial_id"] for d in df.attrs["damaged"]] == [trial.name]
    assert "metrics.csv has no 'env_step' column" in df.attrs["damaged"][0]["defects"]
    with pytest.raises(AnalysisError, match=f"{trial}: metrics.csv has no 'env_step' column"):
        load.load_sweep(bad, strict=True)


def test_flatten_config():
    flat = load.flatten_config({"agent": "sac", "init": {"scheme": "fanin", "gains": {"q": 1}}})
    assert flat == {"agent": "sac", "init.scheme": "fanin", "init.gains.q": 1}


def test_list_valued_config_keys_become_groupable(tmp_path):
    root = write_sweep(tmp_path / "lists", seeds=(0,), scenarios=("all",))
    for i, trial in enumerate(sorted((root / "trials").iterdir())):
        config = json.loads((trial / "config.json").read_text())
        config["sac"]["hidden"] = [64] * (i + 1)
        (trial / "config.json").write_text(json.dumps(config))
        plan = json.loads((root / "sweep_resolved.json").read_text())  # the plan says so too
        for entry in plan["trials"]:
            if entry["trial_id"] == trial.name:
                entry["config"] = config
        (root / "sweep_resolved.json").write_text(json.dumps(plan))
    df = load.load_sweep(root)
    assert set(df["sac.hidden"]) == {"[64]", "[64, 64]"}
    df.to_parquet(tmp_path / "t.parquet")  # parquet-safe


def test_analysis_never_imports_torch_or_ray():
    code = (
        "import sys, analysis, analysis.report; "
        "bad = [m for m in ('torch', 'ray') if m in sys.modules]; "
        "assert not bad, bad"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
