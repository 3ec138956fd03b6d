"""`sweep run --only`: run part of a sweep now, keep the whole design in its directory, run the
rest later with --resume (a campaign spread over sessions: the cheap trials first)."""

from __future__ import annotations

import re

import pytest
from test_sweep_run import TINY, _sweep_file, ray_address  # noqa: F401  (its Ray cluster)

from sweeps import runner
from sweeps.cli import CLIError, main
from sweeps.schema import load_sweep

GRID = "grid:\n  init.scheme: [fanin, orthogonal]\n  sac.lr: [1.0e-3, 3.0e-4]\nseeds: 2\n"


def test_selectors_pick_by_trial_id_glob_or_config_value(tmp_path):
    trials = load_sweep(str(_sweep_file(tmp_path, "pick", GRID))).trials
    ids = [t.trial_id for t in trials]
    assert len(ids) == 8
    assert runner.select_trials(trials, None) == set(ids)
    assert runner.select_trials(trials, ["*_s0"]) == {i for i in ids if i.endswith("_s0")}
    fanin = {t.trial_id for t in trials if t.config["init"]["scheme"] == "fanin"}
    assert len(fanin) == 4 and runner.select_trials(trials, ["init.scheme=fanin"]) == fanin
    # values are read as YAML, so numbers match numbers; several values, several selectors
    lr = runner.select_trials(trials, ["sac.lr=1.0e-3"])
    assert {t.trial_id for t in trials if t.config["sac"]["lr"] == 1e-3} == lr and len(lr) == 4
    either = runner.select_trials(trials, ["seed=1", "init.scheme=fanin"])
    assert either == fanin | {t.trial_id for t in trials if t.seed == 1}
    assert runner.select_trials(trials, ["init.scheme=fanin,orthogonal"]) == set(ids)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("init.schem=fanin", "no trial config has the key 'init.schem'; did you mean 'init.sch"),
        ("init.scheme=kaiming", "no trial has init.scheme in ['kaiming'] (the sweep's values: "),
        ("t9*", "--only t9*: matches no trial id"),
    ],
)
def test_a_selector_that_selects_nothing_is_named(tmp_path, selector, message):
    trials = load_sweep(str(_sweep_file(tmp_path, "pick", GRID))).trials
    with pytest.raises(CLIError, match=re.escape(message)):
        runner.select_trials(trials, [selector])


def test_only_runs_the_selection_and_resume_runs_the_rest(tmp_path, ray_address, capsys):  # noqa: F811
    path = _sweep_file(tmp_path, "part", "grid:\n  init.scheme: [fanin, orthogonal]\nseeds: 1\n")
    storage = tmp_path / "part"
    args = ["run", str(path), "--storage", str(storage), "--address", ray_address]
    first, second = storage / "trials" / "t000_fanin_s0", storage / "trials" / "t001_orthogonal_s0"

    assert main([*args, "--only", "init.scheme=fanin"]) == 0
    out = capsys.readouterr().out
    assert "1 trials were not selected by --only and wait; run them with: sweep run" in out
    assert "[part] 0/1 finished, 0 running, 1 pending, 0 failed; env steps 0/400" in out  # its view
    assert "[part] 1/1 finished, 0 running, 0 pending, 0 failed; env steps 400/400" in out
    assert (first / "status.json").exists() and not second.exists()
    assert '"finished"' in (first / "status.json").read_text()
    before = (first / "metrics.csv").read_bytes()

    # the same selection again: nothing to do; then everything: only the rest runs
    assert main([*args, "--resume", "--only", "t000_*"]) == 0
    assert "all 1 selected trials already finished" in capsys.readouterr().out
    assert main([*args, "--resume"]) == 0
    assert '"finished"' in (second / "status.json").read_text()
    assert (first / "metrics.csv").read_bytes() == before  # never rerun
