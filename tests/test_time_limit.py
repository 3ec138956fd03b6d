"""`sweep run --time-limit`: trials that cannot finish are not started, running ones stop at a
checkpoint, the run exits 75 saying what is done and what is left, and --resume finishes the
rest from the trials' own checkpoints (issue 25)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import torch
from test_sweep_run import ray_address  # noqa: F401  (the module's `ray start` cluster)

from sweeps import runner
from sweeps.cli import main

SWEEP = """\
name: limited
base:
  agent: sac
  total_steps: 6000
  eval_every: 200
  eval_episodes: 1
  diag_states: 20
  sac.learning_starts: 100
  sac.batch_size: 32
  sac.hidden: [16, 16]
grid:
  init.scheme: [fanin, orthogonal]
seeds: 2
"""


def test_parse_duration():
    assert runner.parse_duration("2h30m") == 9000
    assert runner.parse_duration("90m") == 5400 and runner.parse_duration("45s") == 45
    assert runner.parse_duration("1.5h") == 5400 and runner.parse_duration("3600") == 3600
    for bad in ("2 hours", "h", "-5m", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            runner.parse_duration(bad)


def _trial(root: Path, name: str, steps: int, wall: float, status: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.csv").write_text(f"env_step,wall_time,seed\n0,0.0,0\n{steps},{wall},0\n")
    if status is not None:
        (d / "status.json").write_text(json.dumps(status))
    return d


def test_can_finish_uses_the_measured_time_per_step(tmp_path):
    """Own pace first (a resumed trial), then its config group's, then the sweep's; with no
    measurement at all the trial starts (the evaluation-time check stops it in time)."""
    from agent.config import build_config

    cfg = build_config({"agent": "sac", "total_steps": 1000})
    other = _trial(tmp_path, "other", 1000, 100.0)  # 0.1 s per step: the sweep's pace
    spec = {
        "out_dir": str(tmp_path / "new"),
        "group_dirs": [],
        "trials_root": str(tmp_path),
        "min_start_s": 5.0,
    }
    now = time.time()
    assert runner._can_finish(spec, cfg, now + 120)  # 1000 steps x 0.1 s = 100 s fit in 120
    assert not runner._can_finish(spec, cfg, now + 90)
    fast = _trial(tmp_path, "fast_s0", 1000, 10.0)  # its group runs at 0.01 s per step
    assert runner._can_finish({**spec, "group_dirs": [str(fast)]}, cfg, now + 20)
    half = _trial(tmp_path, "half", 500, 200.0, {"env_steps": 500})  # own pace: 0.4 s/step
    assert not runner._can_finish({**spec, "out_dir": str(half)}, cfg, now + 150)
    assert runner._can_finish({**spec, "out_dir": str(half)}, cfg, now + 250)  # 500 left
    assert not runner._can_finish(spec, cfg, now + 4)  # under min_start_s: never
    # no own or group pace: trials of the same agent and env come before the whole sweep
    slow_kind = _trial(tmp_path, "dreamer_s0", 1000, 1000.0)  # 1 s per step, same kind
    kind = {**spec, "kind_dirs": [str(slow_kind)]}
    # the sweep's pace: 1310 s over 3500 steps, 374 s for 1000: fits in 400; its kind's does not
    assert runner._can_finish(spec, cfg, now + 400)
    assert not runner._can_finish(kind, cfg, now + 400)
    assert runner._can_finish({**kind, "group_dirs": [str(fast)]}, cfg, now + 20)  # group first
    assert runner.trial_kind({"agent": "sac", "env": "Walker2d-v5", "seed": 3}) == (
        "sac",
        "Walker2d-v5",
    )
    for d in (other, fast, half, slow_kind):
        (d / "metrics.csv").unlink()
    assert runner._can_finish(spec, cfg, now + 60)  # nothing measured: start it


def test_a_running_trial_stops_at_the_last_evaluation_that_fits(tmp_path):
    """A clock that advances 10 s per evaluation and a limit 45 s away (margin 2 s): at the
    evaluation at 400 (40 s) the next would end at 52 s, past 43 s, so the trial stops there,
    checkpointed (checkpoint_every=3 would not have saved 400), "interrupted", and resume
    finishes it."""
    from agent.config import build_config
    from agent.trial import TrialInterrupted, run_trial

    cfg = build_config(
        {
            "agent": "sac",
            "env": "Pendulum-v1",
            "preset": "none",
            "seed": 3,
            "total_steps": 600,
            "eval_every": 100,
            "eval_episodes": 1,
            "diag_states": 20,
            "sac.hidden": [16, 16],
            "sac.batch_size": 32,
            "sac.learning_starts": 100,
            "checkpoint_every": 3,
        }
    )
    ticks = iter(range(0, 1000, 10))
    check = runner.deadline_check(45.0, cfg.total_steps, 2.0, clock=lambda: next(ticks))
    with pytest.raises(TrialInterrupted) as err:
        run_trial(cfg, tmp_path, on_eval=lambda row, _: check(row["env_step"]))
    assert err.value.reason == "time limit" and err.value.env_steps == 400
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "interrupted" and status["resumable_from_step"] == 400
    state = torch.load(tmp_path / "checkpoints" / "state.pt", weights_only=False)
    assert state["env_steps"] == 400
    rows = run_trial(cfg, tmp_path)
    assert sorted({r["env_step"] for r in rows}) == list(range(0, 601, 100))
    assert json.loads((tmp_path / "status.json").read_text())["restored_from_step"] == 400


@pytest.mark.ray
@pytest.mark.slow  # a minute or two: a limited run, then a limited resume
def test_time_limit_path_with_ray(tmp_path, ray_address, capsys, monkeypatch):  # noqa: F811
    """A short trial and one of 10^6 steps: the long one is never started (its measured cost
    cannot fit), the run exits 75 saying what is done and left; a resume with a limit again
    keeps what finished and still does not start the long one."""
    monkeypatch.setattr(runner, "MIN_START_S", 2.0)  # the margin kept before the limit
    path = tmp_path / "limited.yaml"
    path.write_text(
        SWEEP.replace("total_steps: 6000", "total_steps: 1000").replace(
            "grid:\n  init.scheme: [fanin, orthogonal]\nseeds: 2",
            "grid:\n  total_steps: [1000, 1000000]\nseeds: 1",
        )
    )
    storage = tmp_path / "limited"
    args = [
        "run",
        str(path),
        "--storage",
        str(storage),
        "--address",
        ray_address,
        "--max-concurrent",
        "1",
    ]
    assert main([*args, "--time-limit", "60s"]) == runner.EXIT_TIME_LIMIT
    out = capsys.readouterr().out
    assert "time limit 1m00s reached: " in out
    assert "continue with: sweep run" in out and "--resume --time-limit DURATION" in out
    short, long = storage / "trials" / "t000_1000_s0", storage / "trials" / "t001_1000000_s0"
    assert not long.exists()  # never started: 10^6 steps cannot fit
    status = json.loads((short / "status.json").read_text()) if short.exists() else None
    assert status is None or status["state"] in ("finished", "interrupted")
    done = int(status is not None and status["state"] == "finished")
    stopped = int(status is not None and status["state"] == "interrupted")
    assert f"{done}/2 trials finished; {stopped} stopped at a checkpoint" in out
    assert f"; {2 - done - stopped} not started" in out
    if stopped:  # stopped right after a checkpointed evaluation
        rows = (short / "metrics.csv").read_text().splitlines()
        state = torch.load(short / "checkpoints" / "state.pt", weights_only=False)
        assert status["env_steps"] == int(rows[-1].split(",")[0]) == state["env_steps"]
        assert status["interrupted"] == "time limit"
    before = (short / "metrics.csv").read_bytes() if done else None

    assert main([*args, "--resume", "--time-limit", "45s"]) == runner.EXIT_TIME_LIMIT
    assert not long.exists()
    if done:  # finished trials are never rerun
        assert (short / "metrics.csv").read_bytes() == before
