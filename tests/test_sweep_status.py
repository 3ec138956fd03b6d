"""The live view of `sweep run`: counts, best group so far, ETA; lines when not on a terminal."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from sweeps.status import LiveView, TrialState, best_groups, fmt_duration


def states(finished: int, running: int, failed: int = 0) -> list[TrialState]:
    out = []
    for i in range(6):
        group, label = (f"t00{i // 2}", ["fanin", "orthogonal", "kaiming"][i // 2])
        if i < finished:
            st = TrialState(f"{group}_s{i % 2}", group, label, "finished", 400, 400, -200.0 * i)
        elif i < finished + running:
            st = TrialState(f"{group}_s{i % 2}", group, label, "running", 200, 400, -1000.0)
        elif i < finished + running + failed:
            st = TrialState(
                f"{group}_s{i % 2}",
                group,
                label,
                "failed",
                200,
                400,
                None,
                error="TrialError: non-finite loss/critic at env step 200",
            )
        else:
            st = TrialState(f"{group}_s{i % 2}", group, label, "pending", 0, 400)
        out.append(st)
    return out


def test_best_groups_rank_only_comparable_trials():
    """Once a trial finished, only finished ones count: a running seed at fewer steps (-1000 at
    200 of 400) no longer drags its group down; failed trials never count."""
    best = best_groups(states(3, 1), "max")
    assert best[0] == ("fanin", -100.0, 2, 2)
    assert best[1] == ("orthogonal", -400.0, 1, 2)  # its running seed is not comparable
    assert best_groups(states(3, 1), "min")[0][0] == "orthogonal"
    assert [b[0] for b in best_groups(states(2, 1, failed=1), "max")] == ["fanin"]


def test_best_groups_before_any_finished_trial_compare_equal_steps_per_env():
    running = [
        TrialState("a_s0", "a", "fanin", "running", 400, 1000, -100.0, env="Pendulum-v1"),
        TrialState("a_s1", "a", "fanin", "running", 400, 1000, -300.0, env="Pendulum-v1"),
        TrialState("b_s0", "b", "orthogonal", "running", 400, 1000, -150.0, env="Pendulum-v1"),
        # further along: not comparable with the others at 400 steps
        TrialState("b_s1", "b", "orthogonal", "running", 800, 1000, 50.0, env="Pendulum-v1"),
        TrialState("c_s0", "c", "fanin", "failed", 200, 1000, 900.0, env="Pendulum-v1"),
        # another env: ranked on its own, never against Pendulum's returns
        TrialState("d_s0", "d", "fanin", "finished", 1000, 1000, 3000.0, env="Walker2d-v5"),
        TrialState("e_s0", "e", "orthogonal", "finished", 1000, 1000, 1000.0, env="Walker2d-v5"),
    ]
    best = best_groups(running, "max")
    assert best == [
        ("orthogonal [Pendulum-v1] (at 400 steps)", -150.0, 1, 2),
        ("fanin [Pendulum-v1] (at 400 steps)", -200.0, 2, 3),
        ("fanin [Walker2d-v5]", 3000.0, 1, 1),
        ("orthogonal [Walker2d-v5]", 1000.0, 1, 1),
    ]


def test_plain_lines_when_trials_finish_or_fail():
    out = io.StringIO()
    view = LiveView("demo", "eval/return", "max", stream=out, tty=False, interval=3600)
    view.update(states(0, 2))
    view.update(states(0, 2))  # nothing finished: no new line
    view.update(states(2, 2))
    view.update(states(2, 1, failed=1))
    view.stop()  # nothing changed since the last line: no repeat
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[demo] 0/6 finished, 2 running, 4 pending, 0 failed")
    assert "2/6 finished, 2 running, 2 pending, 0 failed; env steps 1,200/2,400 (50%)" in lines[1]
    assert lines[1].endswith("best fanin: -100.00")
    assert "1 failed" in lines[2]


def test_terminal_view_renders_counts_best_and_eta():
    view = LiveView("demo", "eval/return", "max", stream=io.StringIO(), tty=False)
    view.update(states(0, 2))
    view.t0 -= 60  # a minute in: 1,000 steps gained; 800 to go (a failed trial runs no more)
    view.update(states(2, 2, failed=1))
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(view._renderable())
    text = console.export_text()
    assert "2 done  2 running  1 pending  1 failed" in text
    assert "best so far: eval/return" in text and "fanin" in text and "2/2" in text
    assert "ETA 48s" in text
    assert "failed t002_s0: TrialError: non-finite" in text
    assert fmt_duration(3725) == "1h02m" and fmt_duration(None) == "--"


def _status_of(pid: int, updated: float, state: str = "running") -> dict:
    import socket

    return {"state": state, "pid": pid, "host": socket.gethostname(), "updated": updated}


def test_live_writer_names_a_live_process_and_not_a_reused_pid(tmp_path):
    """A worker of a killed sweep that still runs is named; a dead pid, another machine's, a
    finished trial's, or a pid now held by a process started after the last write are not."""
    import subprocess
    import sys
    import time

    from sweeps.status import live_writer

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        assert live_writer(_status_of(proc.pid, time.time())) == proc.pid
        assert live_writer(_status_of(proc.pid, time.time(), state="finished")) is None
        assert live_writer({**_status_of(proc.pid, time.time()), "host": "elsewhere"}) is None
        assert live_writer(_status_of(proc.pid, time.time() - 3600)) is None  # pid reused
    finally:
        proc.kill()
        proc.wait()
    assert live_writer(_status_of(proc.pid, time.time())) is None


def test_resume_waits_for_a_killed_runs_worker_then_refuses(tmp_path, capsys):
    """`sweep run --resume` never starts a trial that a process of an earlier run still writes:
    it waits for it to end, and refuses (naming it, changing nothing) if it does not."""
    import json
    import subprocess
    import sys
    import time

    import pytest

    from sweeps.cli import CLIError
    from sweeps.runner import _wait_for_writers

    trial = tmp_path / "trials" / "t000_s0"
    trial.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        (trial / "status.json").write_text(json.dumps(_status_of(proc.pid, time.time())))
        before = (trial / "status.json").read_bytes()
        with pytest.raises(CLIError, match=rf"t000_s0 \(pid {proc.pid}\).*nothing was changed"):
            _wait_for_writers(tmp_path, ["t000_s0"], timeout_s=0.5, poll_s=0.1)
        assert (trial / "status.json").read_bytes() == before
        assert "waiting up to" in capsys.readouterr().out
        import threading

        threading.Timer(0.5, proc.kill).start()  # the worker ends while the resume waits
        t0 = time.time()
        _wait_for_writers(tmp_path, ["t000_s0"], timeout_s=20, poll_s=0.1)
        assert time.time() - t0 < 10
    finally:
        proc.kill()
        proc.wait()


def test_result_files_lists_ended_trials_files_and_never_checkpoints(tmp_path, capsys):
    """`sweep status DIR --result-files`: what to commit of a campaign. Finished trials' result
    files and the sweep's own files; nothing of running, failed, pending or damaged trials, no
    checkpoint, no TensorBoard file, policy.pt only when asked."""
    from fixtures_analysis import write_sweep

    from sweeps.cli import main

    root = write_sweep(
        tmp_path / "sw",
        schemes=("fanin",),
        scenarios=("all",),
        seeds=(0, 1, 2, 3, 4),
        failed=[("Pendulum-v1", "fanin", "all", 1)],
        running=[("Pendulum-v1", "fanin", "all", 2)],
        pending=[("Pendulum-v1", "fanin", "all", 3)],
    )
    trials = root / "trials"
    for tid in ("Pendulum-v1-fanin-all-s0", "Pendulum-v1-fanin-all-s2"):
        (trials / tid / "checkpoints").mkdir()
        (trials / tid / "checkpoints" / "state.pt").write_bytes(b"x")
        (trials / tid / "policy.pt").write_bytes(b"p")
        (trials / tid / "tb").mkdir()
        (trials / tid / "tb" / "events.out").write_bytes(b"e")
    (trials / "Pendulum-v1-fanin-all-s4" / "metrics.csv").write_text("env_step\n")  # damaged

    assert main(["status", str(root), "--result-files"]) == 0
    listed = capsys.readouterr().out.split()
    s0 = trials / "Pendulum-v1-fanin-all-s0"
    assert listed == [
        str(root / "sweep.yaml"),
        str(root / "sweep_resolved.json"),
        str(s0 / "config.json"),
        str(s0 / "status.json"),
        str(s0 / "metrics.csv"),
        str(s0 / "init_diagnostics.json"),
    ]
    assert main(["status", str(root), "--result-files", "--with-policy"]) == 0
    assert capsys.readouterr().out.split() == [*listed, str(s0 / "policy.pt")]


def test_time_left_per_agent_and_env_at_the_measured_pace(tmp_path):
    """`sweep status` says what is left per (agent, env) at that kind's own pace: wall seconds
    per env step of its trials so far; a kind with no measurement yet is named as such."""
    from fixtures_analysis import write_sweep

    from sweeps.status import format_status, format_time_left, read_resolved, read_states, time_left

    walker = [("Walker2d-v4", "fanin", "all", s) for s in (0, 1)]
    root = write_sweep(
        tmp_path / "sw",
        schemes=("fanin",),
        scenarios=("all",),
        envs=("Pendulum-v1", "Walker2d-v4"),
        seeds=(0, 1, 2, 3),
        running=[("Pendulum-v1", "fanin", "all", 2)],
        pending=[("Pendulum-v1", "fanin", "all", 3), *walker],
        failed=[("Walker2d-v4", "fanin", "all", 2)],
    )
    resolved = read_resolved(root)
    for t in resolved["trials"]:  # the fixture's configs leave total_steps out
        t["config"]["total_steps"] = 10_000
    (root / "sweep_resolved.json").write_text(json.dumps(resolved))
    states = read_states(root)
    pendulum, walker_left = time_left(root, states, resolved)
    # Pendulum: s2 runs at 6,000 of 10,000 steps, s3 has not started: 14,000 steps left; its
    # pace is its trials' wall time over their steps: (15 + 15 + 9) s / 26,000 steps
    assert (pendulum.agent, pendulum.env, pendulum.trials) == ("sac", "Pendulum-v1", 2)
    assert pendulum.env_steps == 14_000
    assert pendulum.seconds_per_step == pytest.approx(39.0 / 26_000)
    assert pendulum.seconds == pytest.approx(14_000 * 39.0 / 26_000)
    # Walker: s0, s1 pending, s2 failed at 4,000 steps (a resume reruns it) and s3 finished:
    # the failed run's 4,000 steps (6.0 s) and the finished one's 10,000 (15.0 s) set the pace
    assert (walker_left.trials, walker_left.env_steps) == (3, 26_000)
    assert walker_left.seconds_per_step == pytest.approx(21.0 / 14_000)
    walker_left.seconds_per_step = None
    lines = format_time_left([pendulum, walker_left])
    assert (
        "  sac on Pendulum-v1: 2 trials, 14,000 env steps, ~0.0 core-hours (1.5 s per 1k"
        in (lines[1])
    )
    assert lines[2] == "  sac on Walker2d-v4: 3 trials, 26,000 env steps, not measured yet"
    assert lines[3].endswith("plus the kinds not measured yet")
    assert "time left at the measured pace" in format_status(root)
    assert format_time_left([]) == []
