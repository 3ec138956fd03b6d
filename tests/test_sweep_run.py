"""Sweeps on Ray Tune: end to end, failures, and resume after kill -9.

One `ray start --head` cluster (on free ports, its own temp dir) serves the in-process runs via
``--address``; the kill -9 test runs ``sweep run`` in a subprocess with its own embedded Ray.
The cluster is stopped by killing the process group this fixture started (not `ray stop`, which
would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.status import live_writer

pytestmark = pytest.mark.ray

TINY = """\
base:
  agent: sac
  total_steps: 400
  eval_every: 200
  eval_episodes: 1
  diag_states: 50
  sac.learning_starts: 100
  sac.batch_size: 64
  sac.hidden: [32, 32]
"""

FAULTY_AGENTS = '''\
"""Agents that fail on purpose: NaN losses, or an exception, after 200 env steps."""
from agent.registry import agents, register
from agent.sac import SAC

if "nan_sac" not in agents:
    @register("nan_sac", "SAC whose critic loss turns NaN after 200 steps")
    class NanSAC(SAC):
        def train(self, until):
            metrics = super().train(until)
            if self.env_steps > 200:
                metrics["loss/critic"] = float("nan")
            return metrics

    @register("crash_sac", "SAC that raises after 200 steps")
    class CrashSAC(SAC):
        def train(self, until):
            metrics = super().train(until)
            if self.env_steps > 200:
                raise RuntimeError("simulated crash in the env")
            return metrics
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """A local `ray start --head` cluster with 2 CPUs; yields its address."""
    if shutil.which("ray") is None:
        pytest.skip("the ray CLI is not installed")
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's socket paths are limited
    port = _free_port()
    cmd = [
        "ray",
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--num-cpus=2",
        "--disable-usage-stats",
        "--include-dashboard=false",
        f"--dashboard-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--temp-dir={temp}",
        "--node-ip-address=127.0.0.1",
    ]
    # `ray start` enables token auth when ~/.ray/auth_token exists; a driver given an explicit
    # address only sends the token when told to
    old_mode = os.environ.get("RAY_AUTH_MODE")
    if (Path.home() / ".ray" / "auth_token").exists() and old_mode is None:
        os.environ["RAY_AUTH_MODE"] = "token"
    log = open(Path(temp) / "ray_start.log", "w")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"ray start failed: {(Path(temp) / 'ray_start.log').read_text()}")
                time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        _kill_group(proc, grace=3.0)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        if old_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)


def _kill_group(proc: subprocess.Popen, grace: float) -> None:
    """End the process group started for ``proc`` (its own session): TERM, then KILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_for_reaping(trial_dirs: list[Path], timeout_s: float = 30.0) -> None:
    """Wait until no live process still writes these trials (what `sweep run` also waits for)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not any(live_writer(_status(d)) for d in trial_dirs if (d / "status.json").exists()):
            return
        time.sleep(0.2)
    pytest.fail("the killed sweep's workers were not reaped within 30 s")


def _sweep_file(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{TINY}{body}")
    return path


def _status(trial_dir: Path) -> dict:
    return json.loads((trial_dir / "status.json").read_text())


def _rows(trial_dir: Path) -> list[dict]:
    with open(trial_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_end_to_end_2x2_seeds(tmp_path, ray_address, capsys):
    path = _sweep_file(tmp_path, "e2e", "grid:\n  init.scheme: [fanin, orthogonal]\nseeds: 2\n")
    storage = tmp_path / "e2e"
    args = ["run", str(path), "--storage", str(storage), "--address", ray_address]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "finished 4   running 0   pending 0   failed 0" in out

    assert (storage / "sweep.yaml").read_text() == path.read_text()
    resolved = json.loads((storage / "sweep_resolved.json").read_text())
    assert resolved["name"] == "e2e" and resolved["metric"] == "eval/return"
    assert resolved["seeds"] == [0, 1] and resolved["grid"] == {
        "init.scheme": ["fanin", "orthogonal"]
    }
    assert resolved["varying_keys"] == ["init.scheme"]
    ids = [t["trial_id"] for t in resolved["trials"]]
    assert ids == ["t000_fanin_s0", "t000_fanin_s1", "t001_orthogonal_s0", "t001_orthogonal_s1"]
    assert sorted(p.name for p in (storage / "trials").iterdir()) == ids
    for t in resolved["trials"]:
        d = storage / "trials" / t["trial_id"]
        assert json.loads((d / "config.json").read_text()) == t["config"]
        status = _status(d)
        assert status["state"] == "finished" and status["env_steps"] == 400
        assert status["planned_steps"] == 400 and status["restores"] == 0
        rows = _rows(d)
        assert [int(r["env_step"]) for r in rows] == [0, 200, 400]
        assert {r["seed"] for r in rows} == {str(t["config"]["seed"])}
        for col in (
            "wall_time",
            "eval/return",
            "eval/return_std",
            "eval/episode_returns",
            "loss/critic",
            "perf/env_steps_per_s",
            "init/action_clip_frac",
        ):
            assert col in rows[0]
        assert float(rows[-1]["eval/return"]) < 0  # Pendulum returns are negative
        assert json.loads((d / "init_diagnostics.json").read_text()).keys() == {
            str(t["config"]["seed"])
        }
    # Ray Tune's experiment state and one checkpoint per trial; TensorBoard events only in
    # the trials' own tb/ (env steps on the x axis), none from Tune's loggers under ray/
    ray_dir = storage / "ray"
    assert list(ray_dir.glob("experiment_state-*.json")) and (ray_dir / "tuner.pkl").exists()
    for tid in ids:
        assert len(list((ray_dir / tid).glob("checkpoint_*"))) == 1
        assert not list((ray_dir / tid).glob("events.out.tfevents.*"))
        assert not list((ray_dir / tid).glob("progress.csv"))
        assert list((storage / "trials" / tid / "tb").glob("events.out.tfevents.*"))
    events = sorted(p.relative_to(storage) for p in storage.rglob("events.out.tfevents.*"))
    assert {p.parts[:2] for p in events} == {("trials", tid) for tid in ids}

    # status; and running into the existing sweep refuses unless --resume
    assert main(["status", str(storage)]) == 0
    assert "finished 4" in capsys.readouterr().out
    mtime = (storage / "trials" / ids[0] / "metrics.csv").stat().st_mtime_ns
    assert main(args) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert "all 4 trials already finished" in capsys.readouterr().out
    assert (storage / "trials" / ids[0] / "metrics.csv").stat().st_mtime_ns == mtime


def test_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path, ray_address, capsys):
    (tmp_path / "faulty_agents.py").write_text(FAULTY_AGENTS)
    path = _sweep_file(
        tmp_path,
        "faults",
        "grid:\n  agent: [sac, nan_sac, crash_sac]\nimports: [faulty_agents]\nmax_failures: 1\n",
    )
    storage = tmp_path / "faults"
    assert main(["run", str(path), "--storage", str(storage), "--address", ray_address]) == 1
    out = capsys.readouterr().out
    assert "finished 1   running 0   pending 0   failed 2" in out
    trials = storage / "trials"
    ok, nan, crash = (
        trials / f"t00{i}_{a}_s0" for i, a in enumerate(["sac", "nan_sac", "crash_sac"])
    )
    assert _status(ok)["state"] == "finished"
    nan_status, crash_status = _status(nan), _status(crash)
    assert nan_status["state"] == "failed"
    assert "non-finite loss/critic at env step 400" in nan_status["error"]
    assert crash_status["state"] == "failed"
    assert crash_status["error"] == "RuntimeError: simulated crash in the env"
    # max_failures: 1 -> Ray retried once, from the checkpoint at the first evaluation
    assert crash_status["restores"] == 1 and crash_status["restored_from_step"] == 200
    assert "failed t002_crash_sac_s0: RuntimeError: simulated crash in the env" in out


@pytest.mark.slow  # ~60 s: a second, embedded Ray in a subprocess
def test_resume_after_kill_9(tmp_path, capsys, ray_address):
    """kill -9 of the whole sweep (embedded Ray), then --resume: finished trials are not rerun,
    interrupted ones continue from their last checkpoint, losing at most one eval interval."""
    path = _sweep_file(tmp_path, "killed", "grid:\n  total_steps: [400, 2400]\nseeds: 2\n")
    storage = tmp_path / "killed"
    trials = storage / "trials"
    short = [trials / "t000_400_s0", trials / "t000_400_s1"]
    long = [trials / "t001_2400_s0", trials / "t001_2400_s1"]
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", "run", str(path), "--storage", str(storage)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp_path,
    )
    at_kill: dict[str, int] = {}
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            states = {d.name: _status(d) for d in short + long if (d / "status.json").exists()}
            finished = [n for n, s in states.items() if s["state"] == "finished"]
            progressed = [
                n
                for n, s in states.items()
                if s["state"] == "running" and 600 <= s["env_steps"] < 2400
            ]
            if {d.name for d in short} <= set(finished) and progressed:
                break
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            time.sleep(0.2)
        else:
            pytest.fail("the sweep did not get far enough to be killed")
    finally:
        _kill_group(proc, grace=0)  # SIGKILL only: the process group, with its embedded Ray
        log.close()
    _wait_for_reaping(short + long)  # the killed sweep's workers until its watchdog ends them
    for d in short + long:
        if (d / "status.json").exists():
            at_kill[d.name] = _status(d)["env_steps"]
    before = {d.name: (d / "metrics.csv").read_bytes() for d in short}
    interrupted = [d for d in long if 0 < at_kill.get(d.name, 0) < 2400]
    assert interrupted

    assert (
        main(["run", str(path), "--storage", str(storage), "--resume", "--address", ray_address])
        == 0
    )
    assert "finished 4   running 0   pending 0   failed 0" in capsys.readouterr().out
    for d in short:  # finished before the kill: never rerun
        assert (d / "metrics.csv").read_bytes() == before[d.name]
        assert _status(d)["restores"] == 0
    for d in interrupted:  # restarted from a checkpoint at most one eval interval back
        status = _status(d)
        assert status["state"] == "finished" and status["env_steps"] == 2400
        assert status["restores"] >= 1
        assert at_kill[d.name] - 200 <= status["restored_from_step"] <= at_kill[d.name], status
        steps = [int(r["env_step"]) for r in _rows(d)]
        assert steps == list(range(0, 2401, 200))  # no step trained twice, none lost
