"""Fault injection: damaged trial directories, checkpoints and interrupted runs (issue 23).

Every reader (analysis.load, sweep status, sweep report, the trial loop's resume) either
recovers exactly or names the damage: the trial directory, the file and the defect. Nothing
already computed is deleted or overwritten by a reader or by a refused resume.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fixtures_analysis import write_sweep

from analysis import stats
from analysis.load import AnalysisError, load_sweep, load_trials
from sweeps.status import format_status, read_states
from sweeps.trialdir import atomic_write_json, check_trial

TRIAL = "Pendulum-v1-fanin-small_out-s0"  # a finished single-seed trial of the fixture sweep


# --- helpers -----------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (to prove nothing was changed)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def sweep(tmp_path: Path) -> Path:
    return write_sweep(tmp_path / "sw", seeds=(0, 1), n_evals=5, budget=10_000)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def edit_metrics(fn):
    def damage(trial: Path) -> None:
        path = trial / "metrics.csv"
        path.write_text("".join(fn(lines(path))))

    return damage


def set_cell(rows: list[str], row: int, col: str, value: str) -> list[str]:
    header = rows[0].rstrip("\n").split(",")
    cells = rows[row].rstrip("\n").split(",")
    cells[header.index(col)] = value
    rows[row] = ",".join(cells) + "\n"
    return rows


def edit_json(name: str, fn):
    def damage(trial: Path) -> None:
        path = trial / name
        path.write_text(fn(path.read_text()))

    return damage


def patch_json(name: str, **values):
    return edit_json(name, lambda text: json.dumps({**json.loads(text), **values}))


# name -> (damage applied to the trial directory, a phrase the named defect must contain)
DAMAGES = {
    # metrics.csv
    "truncated mid-line": (
        edit_metrics(lambda r: ["".join(r)[:-17]]),
        "metrics.csv is truncated mid-line",
    ),
    "finished but short": (
        edit_metrics(lambda r: r[:-2]),
        "says finished but metrics.csv stops at env step 6000 of 10000",
    ),
    "empty metrics": (
        lambda t: (t / "metrics.csv").write_bytes(b""),
        "metrics.csv is empty (0 bytes)",
    ),
    "header only": (edit_metrics(lambda r: r[:1]), "metrics.csv has a header but no rows"),
    "binary garbage": (
        lambda t: (t / "metrics.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"),
        "metrics.csv is not UTF-8 text",
    ),
    "zeroed block": (
        lambda t: (t / "metrics.csv").write_bytes(
            (t / "metrics.csv").read_bytes()[:100] + b"\x00" * 64 + b"\n"
        ),
        "NUL bytes",
    ),
    "metric not a number": (
        edit_metrics(lambda r: set_cell(r, 3, "eval/return", "abc")),
        "metrics.csv row 3: eval/return 'abc' is not a number",
    ),
    "env_step not an integer": (
        edit_metrics(lambda r: set_cell(r, 2, "env_step", "2e3x")),
        "env_step '2e3x' is not an integer",
    ),
    "negative env_step": (
        edit_metrics(lambda r: set_cell(r, 2, "env_step", "-2000")),
        "env_step '-2000' is negative",
    ),
    "extra field": (
        edit_metrics(lambda r: [*r[:2], r[2].rstrip("\n") + ",9\n", *r[3:]]),
        "metrics.csv row 2 has 11 fields, the header 10",
    ),
    "no env_step column": (
        edit_metrics(lambda r: [x.split(",", 1)[1] for x in r]),
        "metrics.csv has no 'env_step' column",
    ),
    "duplicated row": (
        edit_metrics(lambda r: [*r[:3], r[2], *r[3:]]),
        "duplicated rows: seed 0 env_step 2000 appears 2 times",
    ),
    "file appended twice": (edit_metrics(lambda r: r + r), "env_step 'env_step' is not an integer"),
    "rows out of order": (
        edit_metrics(lambda r: [r[0], r[1], r[3], r[2], *r[4:]]),
        "env_step goes back from 4000 to 2000",
    ),
    "mixed seeds": (
        edit_metrics(lambda r: r[:4] + [x.replace(",0,", ",7,", 1) for x in r[4:]]),
        "rows of seed(s) [7] but the trial trains [0] (mixed seeds)",
    ),
    "metrics missing": (
        lambda t: (t / "metrics.csv").unlink(),
        "metrics.csv is missing but status.json says finished",
    ),
    # status.json
    "status truncated": (
        edit_json("status.json", lambda s: s[: len(s) // 2]),
        "status.json is not valid JSON",
    ),
    "status empty": (edit_json("status.json", lambda s: ""), "status.json is empty"),
    "status wrong type": (
        edit_json("status.json", lambda s: "[1, 2]"),
        "status.json holds a list, not an object",
    ),
    "status unknown state": (
        patch_json("status.json", state="done"),
        "status.json state 'done' is none of",
    ),
    "status steps wrong type": (
        patch_json("status.json", env_steps="lots"),
        "status.json env_steps is 'lots'",
    ),
    "status ahead of metrics": (
        patch_json("status.json", env_steps=20_000),
        "status.json says 20000 env steps but metrics.csv stops at",
    ),
    # config.json, init_diagnostics.json
    "config truncated": (
        edit_json("config.json", lambda s: s[:10]),
        "config.json is not valid JSON",
    ),
    "config wrong type": (edit_json("config.json", lambda s: '"sac"'), "config.json holds a str"),
    "config not the plan": (
        patch_json("config.json", sac={"lr": 0.1, "hidden": [64, 64]}),
        "config.json differs from the sweep's plan (sweep_resolved.json): sac.lr: 0.0003 -> 0.1",
    ),
    "diagnostics truncated": (
        edit_json("init_diagnostics.json", lambda s: s[:-5]),
        "init_diagnostics.json is not valid JSON",
    ),
}


# --- every reader names the damage, uses none of its numbers, changes nothing ------------------


@pytest.mark.parametrize("name", list(DAMAGES))
def test_every_reader_names_a_damaged_trial_and_keeps_it_out(tmp_path, name):
    root = sweep(tmp_path)
    baseline = stats.final_scores(load_sweep(root)).set_index(["trial_id", "seed"])
    damage, phrase = DAMAGES[name]
    trial = root / "trials" / TRIAL
    damage(trial)
    before = snapshot(root)

    df = load_sweep(root)  # the analysis loader
    [entry] = df.attrs["damaged"]
    assert entry["trial_id"] == TRIAL and entry["path"] == str(trial)
    assert phrase in entry["defects"], entry["defects"]
    own = df[df["trial_id"] == TRIAL]
    assert set(own["state"]) == {"damaged"} and own["eval/return"].isna().all()
    runs = stats.final_scores(df).set_index(["trial_id", "seed"])
    assert TRIAL not in runs.index.get_level_values(0)
    assert len(runs) == len(baseline) - 1  # every other run is there, with the same score
    assert runs["score"].equals(baseline.drop(TRIAL, level=0)["score"])
    with pytest.raises(AnalysisError, match=f"damaged trial.*{trial}: .*{_re(phrase)}"):
        load_sweep(root, strict=True)
    trials = load_trials(root).set_index("trial_id")
    assert trials.loc[TRIAL, "state"] == "damaged" and phrase in trials.loc[TRIAL, "damage"]

    states = {s.trial_id: s for s in read_states(root)}  # sweep status
    assert states[TRIAL].state == "damaged" and phrase in states[TRIAL].error
    assert states[TRIAL].value is None
    text = format_status(root)
    assert "damaged trials (kept out of the ranking" in text
    assert f"{trial}: " in text and phrase in text

    assert snapshot(root) == before  # no reader repaired, moved or deleted anything


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_leftovers_of_a_write_killed_before_its_rename_are_ignored(tmp_path):
    """A writer killed mid-write leaves NAME.tmp beside the intact file: readers recover
    exactly (the same tables as before), and a blank line at the end is harmless too."""
    root = sweep(tmp_path)
    before = load_sweep(root)
    trial = root / "trials" / TRIAL
    (trial / "metrics.csv.tmp").write_text((trial / "metrics.csv").read_text()[:57])
    (trial / "status.json.tmp").write_text('{"state": "fini')
    with open(trial / "metrics.csv", "a") as f:
        f.write("\n")
    after = load_sweep(root)
    assert not after.attrs["damaged"] and not check_trial(trial).damaged
    assert after.drop(columns="state").equals(before.drop(columns="state"))


def test_atomic_write_keeps_the_old_file_when_killed_before_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    atomic_write_json(path, {"state": "running", "env_steps": 100})
    old = path.read_bytes()

    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies between write and rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(path, {"state": "finished", "env_steps": 200})
    assert path.read_bytes() == old  # never half a file
    assert len(list(tmp_path.glob("status.json.*.tmp"))) == 1  # the new one, left whole aside


def test_damaged_trials_section_in_the_report_and_strict(tmp_path):
    from analysis.report import write_report

    root = sweep(tmp_path)
    DAMAGES["truncated mid-line"][0](root / "trials" / TRIAL)
    md = write_report(root, progress=False, reps=200, curve_reps=50, formats=("png",)).read_text()
    section = md[md.index("### Damaged trials (1, excluded from the statistics)") :]
    assert f"{root / 'trials' / TRIAL}" in section
    assert "metrics.csv is truncated mid-line" in section
    with pytest.raises(AnalysisError, match="damaged"):
        write_report(root, progress=False, strict=True, out_dir=tmp_path / "strict")


def test_status_strict_exits_2_and_stale_trials(tmp_path, capsys):
    from sweeps.cli import main

    root = sweep(tmp_path)
    DAMAGES["empty metrics"][0](root / "trials" / TRIAL)
    assert main(["status", str(root)]) == 0
    assert main(["status", str(root), "--strict"]) == 2
    assert "--strict: 1 damaged trial(s)" in capsys.readouterr().err

    # a trial whose process died is shown stale, not running
    dead = subprocess.Popen(["true"])
    dead.wait()
    other = root / "trials" / "Pendulum-v1-fanin-all-s1"
    status = json.loads((other / "status.json").read_text())
    status.update(state="running", pid=dead.pid, host=socket.gethostname(), updated=time.time())
    (other / "status.json").write_text(json.dumps(status))
    text = format_status(root)
    assert f"stale (process {dead.pid} is gone" in text


# --- the trial loop: resume, checkpoints, signals ----------------------------------------------

torch = pytest.importorskip("torch")


def cfg(total: int = 400, **extra):
    from agent.config import build_config

    return build_config(
        {
            "agent": "sac",
            "env": "Pendulum-v1",
            "preset": "none",
            "seed": 3,
            "total_steps": total,
            "eval_every": 100,
            "eval_episodes": 1,
            "diag_states": 20,
            "sac.hidden": [16, 16],
            "sac.batch_size": 32,
            "sac.learning_starts": 100,
            **extra,
        }
    )


def curve(rows: list[dict]) -> list[tuple]:
    keep = sorted({k for r in rows for k in r if k != "wall_time" and not k.startswith("perf/")})
    return [tuple(r.get(k) for k in keep) for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 400-step curve every resumed run must reproduce exactly."""
    from agent.trial import run_trial

    return curve(run_trial(cfg(), tmp_path_factory.mktemp("reference")))


@pytest.mark.parametrize(
    "change,key",
    [
        ({"seed": 4}, "seed: 3 -> 4"),
        ({"sac.lr": 1e-3}, "sac.lr: 0.0003 -> 0.001"),
        ({"init.scheme": "orthogonal"}, "init.scheme"),
    ],
)
def test_resume_with_another_config_is_refused_and_writes_nothing(tmp_path, change, key):
    from agent.trial import ResumeMismatch, run_trial

    out = tmp_path / "t"
    run_trial(cfg(200), out)
    before = snapshot(out)
    with pytest.raises(ResumeMismatch, match=_re(key)) as err:
        run_trial(cfg(200, **change), out)
    assert "Nothing was written" in str(err.value)
    assert snapshot(out) == before
    # the checkpoint itself knows its config (a Ray restore passes only the checkpoint)
    (out / "config.json").unlink()
    with pytest.raises(ResumeMismatch, match=_re(key)):
        run_trial(cfg(200, **change), tmp_path / "elsewhere", restore_from=out / "checkpoints")
    assert not (tmp_path / "elsewhere").exists()


def test_sweep_train_resume_mismatch_exits_2_naming_the_key(tmp_path, capsys):
    from sweeps.cli import main

    out = tmp_path / "t"
    args = [
        "agent=sac",
        "env=Pendulum-v1",
        "preset=none",
        "total_steps=200",
        "eval_every=100",
        "eval_episodes=1",
        "diag_states=20",
        "sac.hidden=[16,16]",
        "sac.batch_size=32",
        "sac.learning_starts=100",
    ]
    assert main(["train", *args, "seed=3", "--out", str(out)]) == 0
    before = snapshot(out)
    assert main(["train", *args, "seed=4", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "seed: 3 -> 4" in err and "Nothing was written" in err
    assert snapshot(out) == before
    (tmp_path / "file").write_text("x")
    assert main(["train", *args, "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_longer_budget_may_resume_and_continues_exactly(tmp_path, reference):
    from agent.trial import run_trial

    run_trial(cfg(200), tmp_path)
    assert curve(run_trial(cfg(400), tmp_path)) == reference


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip(p: Path) -> None:
    """Flip one bit inside the largest tensor's bytes (silent damage: the file still loads)."""
    import struct
    import zipfile

    with zipfile.ZipFile(p) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(p.read_bytes())
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _not_a_checkpoint(p: Path) -> None:
    torch.save({"x": 1}, p)
    p.with_name(p.name + ".sha256").unlink()


CKPT_DAMAGES = {
    "truncated": (_truncate, "cannot be loaded"),
    "bit flip": (_flip, "sha256 differs from state.pt.sha256"),
    "empty": (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "not a checkpoint": (_not_a_checkpoint, "not a trial checkpoint"),
}


@pytest.mark.parametrize("name", list(CKPT_DAMAGES))
def test_a_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, reference, name):
    from agent.trial import run_trial

    run_trial(cfg(300), tmp_path)  # checkpoints: state.pt at 300, state.prev.pt at 200
    damage, phrase = CKPT_DAMAGES[name]
    damage(tmp_path / "checkpoints" / "state.pt")
    rows = run_trial(cfg(400), tmp_path)
    assert curve(rows) == reference  # exact: the interval after 200 is simply trained again
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["restored_from_step"] == 200
    assert status["restored_from"].endswith("state.prev.pt")
    assert (
        f"checkpoint {tmp_path / 'checkpoints' / 'state.pt'} is damaged ({phrase}"
        in status["warnings"][0]
    )


def test_no_intact_checkpoint_is_an_error_naming_each_file(tmp_path):
    from agent.trial import TrialError, run_trial

    run_trial(cfg(300), tmp_path)
    _truncate(tmp_path / "checkpoints" / "state.pt")
    _flip(tmp_path / "checkpoints" / "state.prev.pt")
    before = snapshot(tmp_path)
    with pytest.raises(TrialError) as err:
        run_trial(cfg(400), tmp_path)
    msg = str(err.value)
    assert "no intact checkpoint" in msg and "Nothing was overwritten" in msg
    assert f"{tmp_path / 'checkpoints' / 'state.pt'} is damaged (cannot be loaded" in msg
    assert f"{tmp_path / 'checkpoints' / 'state.prev.pt'} is damaged (sha256" in msg
    assert snapshot(tmp_path) == before


def test_kill_during_a_checkpoint_write_leaves_one_intact(tmp_path, reference):
    """What a kill between moving state.pt aside and renaming the new file leaves on disk:
    state.prev.pt and a half state.pt.new. Resume takes state.prev.pt and is exact."""
    from agent.trial import run_trial

    run_trial(cfg(300), tmp_path)
    ckpt = tmp_path / "checkpoints"
    os.replace(ckpt / "state.pt", ckpt / "state.prev.pt")
    os.replace(ckpt / "state.pt.sha256", ckpt / "state.prev.pt.sha256")
    (ckpt / "state.pt.new").write_bytes(b"PK\x03\x04 half a zip")
    rows = run_trial(cfg(400), tmp_path)
    assert curve(rows) == reference
    assert json.loads((tmp_path / "status.json").read_text())["restored_from_step"] == 300


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_an_evaluation_checkpoints_first_and_resume_loses_nothing(
    tmp_path, reference, sig
):
    """checkpoint_every=3: the evaluation at 200 is not normally checkpointed; a signal there
    saves it before stopping, marks the trial interrupted (not failed), and resume redoes
    nothing."""
    from agent.trial import TrialInterrupted, run_trial

    def on_eval(row, ckpt_dir):
        if row["env_step"] == 200:
            os.kill(os.getpid(), sig)

    with pytest.raises(TrialInterrupted) as err:
        run_trial(cfg(checkpoint_every=3), tmp_path, on_eval=on_eval)
    assert err.value.env_steps == 200 and err.value.reason == sig.name
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "interrupted" and status["error"] is None
    assert status["interrupted"] == sig.name and status["resumable_from_step"] == 200
    assert signal.getsignal(sig) is not None  # the handlers were put back
    rows = run_trial(cfg(checkpoint_every=3), tmp_path)
    assert json.loads((tmp_path / "status.json").read_text())["restored_from_step"] == 200
    assert curve(rows) == reference


def test_ctrl_c_during_sweep_train_exits_130_saying_how_to_resume(tmp_path, capsys):
    from sweeps.cli import main

    out = tmp_path / "t"
    args = [
        "agent=sac",
        "env=Pendulum-v1",
        "preset=none",
        "seed=3",
        "total_steps=100000",
        "eval_every=100",
        "eval_episodes=1",
        "diag_states=20",
        "sac.hidden=[16,16]",
        "sac.batch_size=32",
        "sac.learning_starts=100",
    ]

    def interrupt_after_the_first_evaluation():
        deadline = time.time() + 120
        while not (out / "status.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_after_the_first_evaluation, daemon=True).start()
    assert main(["train", *args, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted (SIGINT)" in err
    assert f"Continue with: sweep train {' '.join(args)} --out {out} --resume" in err
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "interrupted" and status["resumable_from_step"] >= 100


# --- sweep files ---------------------------------------------------------------------------------


def test_a_huge_grid_is_counted_and_refused_before_expanding(tmp_path, capsys):
    from sweeps.cli import main

    values = ", ".join(str(i) for i in range(1, 101))
    path = tmp_path / "huge.yaml"
    path.write_text(
        "name: huge\nseeds: 100\nbase: {agent: sac}\ngrid:\n"
        f"  sac.batch_size: [{values}]\n  sac.utd: [{values}]\n"
        f"  eval_episodes: [{values}]\n"
    )
    started = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    assert time.perf_counter() - started < 60  # not minutes, not gigabytes
    err = capsys.readouterr().err
    assert (
        "expands to 100,000,000 trials (grid 100 sac.batch_size x 100 sac.utd x 100 "
        "eval_episodes x 100 seeds), more than the limit of 20,000" in err
    )
    assert "--max-trials 100000000" in err
    small = tmp_path / "small.yaml"
    small.write_text("name: small\nseeds: 3\nbase: {agent: sac}\ngrid:\n  sac.utd: [1, 2]\n")
    assert main(["validate", str(small), "--max-trials", "5"]) == 2
    assert "expands to 6 trials" in capsys.readouterr().err
    assert main(["validate", str(small), "--max-trials", "6"]) == 0  # confirmed by the flag


def test_small_input_errors_name_the_problem(tmp_path, capsys):
    from sweeps.cli import main

    (tmp_path / "adir").mkdir()
    assert main(["validate", str(tmp_path / "adir")]) == 2
    assert "is a directory, not a sweep file" in capsys.readouterr().err
    assert main(["diagnose", "seeds=abc"]) == 2
    assert "seeds=abc: seeds must be a positive integer" in capsys.readouterr().err


def test_watchdog_kills_what_a_killed_driver_leaves(tmp_path):
    """`kill -9` of a driver (here a stand-in that starts two grandchildren, like ray.init's
    GCS and raylet) leaves no orphans: the watchdog kills the descendants it saw."""
    from sweeps import watchdog

    code = (
        "import subprocess, time\n"
        "procs = [subprocess.Popen(['sleep', '300']) for _ in range(2)]\n"
        "print(' '.join(str(p.pid) for p in procs), flush=True)\n"
        "time.sleep(300)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    children = [int(p) for p in driver.stdout.readline().split()]
    dog = watchdog.start(driver.pid)
    time.sleep(2.5)  # it has seen the descendants
    assert all(watchdog.alive(p) for p in children)
    driver.kill()
    driver.wait()
    dog.wait(timeout=30)
    deadline = time.time() + 10
    while any(watchdog.alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(watchdog.alive(p) for p in children)
