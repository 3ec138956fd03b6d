"""Early stopping with Tune's ASHA (issue 21: "schedulers (ASHA) are welcome as options where
they serve a user who is tuning"): the `scheduler:` block is validated like every other key,
the dry run says where trials may stop, a stopped trial is final (state "stopped", never rerun
by --resume) and the report gives it no final score."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_sweep_run import TINY, ray_address  # noqa: F401  (the module's `ray start` cluster)

from sweeps.cli import main
from sweeps.schema import Scheduler, SweepError, load_sweep

# an agent whose metric train/grade is its learning rate x 1000: ASHA's decision is known
GRADED = """\
from agent.registry import agents, register
from agent.sac import SAC

if "graded_sac" not in agents:
    @register("graded_sac", "SAC reporting train/grade = 1000 x sac.lr")
    class GradedSAC(SAC):
        def train(self, until):
            metrics = super().train(until)
            metrics["train/grade"] = 1000.0 * self.c.lr
            return metrics
"""


ASHA = "scheduler:\n  name: asha\n  grace_period: 200\n  reduction_factor: 2\n"


def _write(tmp_path: Path, scheduler: str, name: str = "asha") -> Path:
    (tmp_path / "graded.py").write_text(GRADED)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nimports: [graded.py]\n"
        + TINY.replace("agent: sac", "agent: graded_sac").replace("400", "600")
        + "grid:\n  sac.lr: [1.0e-3, 1.0e-4]\nmetric: train/grade\nmode: max\n"
        + scheduler
    )
    return path


def test_rungs():
    sch = Scheduler(name="asha", grace_period=100, reduction_factor=3)
    assert sch.rungs(1000) == [100, 300, 900]
    assert sch.rungs(900) == [100, 300]
    assert sch.rungs(100) == []


@pytest.mark.parametrize(
    ("block", "where", "says"),
    [
        (
            "scheduler:\n  name: asha\n  grace_period: 200\n  grace: 200\n",
            "scheduler.grace",
            "did you mean 'grace_period'",
        ),
        ("scheduler:\n  name: hyperband\n  grace_period: 200\n", "scheduler.name", "'asha'"),
        (
            "scheduler:\n  name: asha\n  grace_period: 200\n  reduction_factor: 1\n",
            "scheduler.reduction_factor",
            "greater than 1",
        ),
        ("scheduler:\n  name: asha\n", "scheduler.grace_period", "missing required key"),
        ("scheduler: asha\n", "scheduler", "mapping"),
    ],
)
def test_bad_scheduler_blocks_are_named(tmp_path, block, where, says):
    path = _write(tmp_path, block)
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    text = str(err.value)
    assert re.search(rf"asha\.yaml:\d+: {re.escape(where)}: ", text) and says in text


def test_dry_run_says_where_trials_may_stop(tmp_path, capsys):
    path = _write(tmp_path, ASHA)
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "ASHA on train/grade (max)" in out and "env steps 200, 400;" in out
    resolved = load_sweep(path).resolved()
    assert resolved["scheduler"] == {
        "name": "asha",
        "grace_period": 200,
        "reduction_factor": 2.0,
        "brackets": 1,
    }


@pytest.mark.ray
def test_asha_stops_the_worse_trial_for_good(tmp_path, ray_address, capsys):  # noqa: F811
    """One trial at a time: the better learning rate reaches each rung first and goes on; the
    worse one is below the rung's median at 200 steps and stops there."""
    path = _write(tmp_path, ASHA)
    storage = tmp_path / "out"
    args = ["run", str(path), "--storage", str(storage), "--address", ray_address]
    assert main([*args, "--max-concurrent", "1"]) == 0
    trials = storage / "trials"
    good = json.loads((trials / "t000_0.001_s0" / "status.json").read_text())
    bad = json.loads((trials / "t001_0.0001_s0" / "status.json").read_text())
    assert good["state"] == "finished" and good["env_steps"] == 600
    assert bad["state"] == "stopped" and bad["env_steps"] < 600
    assert bad["stopped_by"] == f"ASHA at env step {bad['env_steps']:,} of 600"
    metrics = (trials / "t001_0.0001_s0" / "metrics.csv").read_text()
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0  # nothing left to run: the stop is final
    assert (trials / "t001_0.0001_s0" / "metrics.csv").read_text() == metrics
    assert json.loads((trials / "t001_0.0001_s0" / "status.json").read_text())["state"] == (
        "stopped"
    )
    assert main(["status", str(storage)]) == 0
    out = capsys.readouterr().out
    assert "stopped 1" in out and f"stopped by ASHA at env step {bad['env_steps']:,}" in out
    assert main(["report", str(storage), "--formats", "png"]) == 0
    report = (storage / "report.md").read_text()
    assert "1 of 2 trials were stopped early by the sweep's scheduler" in report
    assert "Partial data" not in report  # a stopped trial is not unfinished work


def test_final_scores_give_stopped_runs_no_score():
    import pandas as pd

    from analysis.stats import final_scores

    df = pd.DataFrame(
        {
            "trial_id": ["a"] * 3 + ["b"] * 2,
            "seed": [0] * 5,
            "env": ["Pendulum-v1"] * 5,
            "state": ["finished"] * 3 + ["stopped"] * 2,
            "env_step": [100, 200, 300, 100, 200],
            "eval/return": [-900.0, -500.0, -200.0, -950.0, -800.0],
        }
    )
    runs = final_scores(df, last_k=1).set_index("trial_id")
    assert runs.loc["a", "score"] == -200.0 and runs.loc["b", "last_step"] == 200
    assert pd.isna(runs.loc["b", "score"]) and pd.isna(runs.loc["b", "auc"])
