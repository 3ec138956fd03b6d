"""The `sweep` command: help, list, diagnose, train, and status-2 errors without tracebacks."""

import subprocess
import sys

import pandas as pd
import pytest


def sweep(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "sweeps.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def test_help_lists_subcommands():
    out = sweep("--help")
    assert out.returncode == 0
    for cmd in ("list", "diagnose", "train"):
        assert cmd in out.stdout


def test_list_one_registry():
    out = sweep("list", "scenarios")
    assert out.returncode == 0
    names = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert names == [
        "no_small",
        "small_critic_std",
        "small_mean_critic",
        "small_outputs",
        "small_std",
    ]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["list", "initz"], "did you mean 'inits'"),
        (["train", "agent=sacc"], "unknown agent 'sacc'; did you mean 'sac'"),
        (["train", "init.scheme=orthogonl"], "init.scheme: unknown init scheme"),
        (["train", "init.scenario=small"], "init.scenario: unknown init scenario"),
        (["train", "sac.activation_fn=relu"], "sac.activation_fn: unknown key"),
        (["train", "env=CartPole-v1", "total_steps=10"], "Discrete action space"),
        (["train", "env=NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
        (["train", "seed=-3"], "seed: Input should be greater than or equal to 0"),
        (["train", "total_steps"], "not of the form key=value"),
        (["--import", "no_such_module_xyz", "list"], "no_such_module_xyz"),
        (["diagnose", "init.scheme=bogus", "seeds=1"], "unknown init scheme 'bogus'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args, needle, tmp_path):
    out = (
        sweep(*args, "--out", str(tmp_path / "o"))
        if args[0] in ("train", "diagnose")
        else sweep(*args)
    )
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_diagnose_writes_csv_and_png_per_scheme(tmp_path):
    out = sweep(
        "diagnose",
        "agent=sac",
        "env=Pendulum-v1",
        "init.scheme=fanin,orthogonal",
        "init.scenario=no_small",
        "seeds=2",
        "states=200",
        "--out",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(tmp_path / "init_diagnostics.csv")
    assert set(table["init.scheme"]) == {"fanin", "orthogonal"}
    assert len(table) == 2 * 2  # 2 schemes x 2 seeds x 1 action dim
    assert table["clip_frac"].between(0, 1).all() and table["coverage"].between(0, 1).all()
    assert (tmp_path / "init_action_histograms.png").stat().st_size > 1000


def test_train_writes_result_files_and_refuses_to_overwrite(tmp_path):
    run = tmp_path / "run"
    args = [
        "train",
        "agent=sac",
        "total_steps=300",
        "eval_every=150",
        "eval_episodes=1",
        "sac.learning_starts=100",
        "sac.batch_size=32",
        "sac.hidden=[32,32]",
        "diag_states=50",
        "--out",
        str(run),
    ]
    out = sweep(*args)
    assert out.returncode == 0, out.stderr
    metrics = pd.read_csv(run / "metrics.csv")
    assert list(metrics["env_step"]) == [0, 150, 300]
    assert metrics["init/action_clip_frac"].notna().iloc[0]
    for name in ("config.json", "status.json", "init_record.json", "checkpoints/state.pt"):
        assert (run / name).exists()
    again = sweep(*args)
    assert again.returncode == 2 and "--resume" in again.stderr
    assert pd.read_csv(run / "metrics.csv").equals(metrics)  # nothing overwritten
