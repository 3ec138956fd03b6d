"""Daily-use tools: TensorBoard events, the final policy and `sweep eval`, presets, `sweep keys`,
a fast CLI, the analysis names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agent import build_config, run_trial
from agent.config import ConfigError
from agent.policy import POLICY_FILE, PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "sac": {
        "agent": "sac",
        "total_steps": 300,
        "eval_every": 150,
        "eval_episodes": 2,
        "sac.learning_starts": 100,
        "sac.batch_size": 32,
        "sac.hidden": [32, 32],
        "diag_states": 50,
    },
    "ppo": {
        "agent": "ppo",
        "total_steps": 512,
        "eval_every": 256,
        "eval_episodes": 2,
        "ppo.n_steps": 64,
        "ppo.num_envs": 2,
        "ppo.hidden": [16, 16],
        "diag_states": 50,
    },
}


def sweep(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "sweeps.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    """One tiny finished trial per agent: (config, directory, metrics rows)."""
    out = {}
    for name, values in TINY.items():
        cfg = build_config(values)
        path = tmp_path_factory.mktemp(name)
        run_trial(cfg, path)
        out[name] = (cfg, path, pd.read_csv(path / "metrics.csv"))
    return out


# --- TensorBoard ---------------------------------------------------------------------------------


def _accumulators(tb_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = []
    for f in sorted(tb_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
        acc.Reload()
        out.append(acc)
    return out


def test_tensorboard_events_have_env_steps_init_histograms_and_hparams(trials):
    cfg, path, metrics = trials["sac"]
    accs = _accumulators(path / "tb")
    assert accs, "no event files in tb/"
    scalars = {tag: acc.Scalars(tag) for acc in accs for tag in acc.Tags()["scalars"]}
    # the x axis is env steps: the same steps and values as metrics.csv
    assert [e.step for e in scalars["eval/return"]] == list(metrics["env_step"])
    np.testing.assert_allclose(
        [e.value for e in scalars["eval/return"]], metrics["eval/return"], rtol=1e-5
    )
    for tag in ("init/action_clip_frac", "init/action_coverage", "init/entropy"):
        assert [e.step for e in scalars[tag]] == [0]
        assert scalars[tag][0].value == pytest.approx(metrics[tag].iloc[0], rel=1e-5)
    assert [e.step for e in scalars["loss/critic"]] == list(metrics["env_step"][1:])
    hists = {tag: acc.Histograms(tag) for acc in accs for tag in acc.Tags()["histograms"]}
    assert set(hists) == {"init/actions/dim0"}  # Pendulum: one action dimension
    (event,) = hists["init/actions/dim0"]
    assert event.step == 0 and event.histogram_value.num == cfg.diag_states
    diag = json.loads((path / "init_diagnostics.json").read_text())[str(cfg.seed)]
    np.testing.assert_allclose(
        np.asarray(event.histogram_value.bucket) / cfg.diag_states, diag["hist"][0], atol=1e-9
    )
    # hparams: the resolved config with the final metric (mean of the last 3 evaluations)
    final = [
        e.value
        for acc in accs
        if "hparams/eval/return" in acc.Tags()["scalars"]
        for e in acc.Scalars("hparams/eval/return")
    ]
    assert final == [pytest.approx(metrics["eval/return"].iloc[-3:].mean(), rel=1e-5)]
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    starts = []
    for acc in accs:
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:  # the scalars file
            continue
        starts.append(HParamsPluginData.FromString(content["_hparams_/session_start_info"]))
    (start,) = starts
    hparams = start.session_start_info.hparams
    assert hparams["agent"].string_value == "sac"
    assert hparams["sac.batch_size"].number_value == 32
    assert hparams["init.scheme"].string_value == cfg.init.scheme


# --- the final policy and sweep eval ------------------------------------------------------------


@pytest.mark.parametrize("name", ["sac", "ppo"])
def test_policy_file_is_weights_only_and_replays_the_final_evaluation(trials, name):
    cfg, path, metrics = trials[name]
    state = torch.load(path / POLICY_FILE, weights_only=True)
    assert state["agent"] == name and state["env_steps"] == cfg.total_steps
    assert (path / POLICY_FILE).stat().st_size < 200_000
    shutil.rmtree(path / "checkpoints")  # the policy survives dropped training checkpoints
    policy = load_policy(path)
    # the trial's own evaluation episodes, replayed from the file: the same returns
    returns = policy.evaluate(cfg.eval_episodes, seed=10_000 + 1000 * cfg.seed)
    assert returns.mean() == pytest.approx(metrics["eval/return"].iloc[-1], abs=1e-3)
    action = policy.act(np.zeros(3, dtype=np.float32))
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0  # Pendulum's torque bounds


def test_policy_errors_name_the_problem(trials, tmp_path):
    with pytest.raises(PolicyError, match="not a trial directory"):
        load_policy(tmp_path)
    (tmp_path / "trials").mkdir()
    with pytest.raises(PolicyError, match="sweep directory: pass one of its trials"):
        load_policy(tmp_path)
    _, path, _ = trials["sac"]
    copy = tmp_path / "old_trial"
    shutil.copytree(path, copy)
    (copy / POLICY_FILE).unlink()
    with pytest.raises(PolicyError, match=r"has no policy\.pt"):
        load_policy(copy)
    out = sweep("eval", str(copy))
    assert out.returncode == 2 and "has no policy.pt" in out.stderr
    assert "Traceback" not in out.stderr


def test_sweep_eval_prints_returns_and_writes_a_video(trials, tmp_path):
    _, path, _ = trials["ppo"]
    gif = tmp_path / "pendulum.gif"
    out = sweep(
        "eval", str(path), "--episodes", "2", "--seed", "3", "--stochastic", "--video", str(gif)
    )
    assert out.returncode == 0, out.stderr
    assert "2 stochastic episodes" in out.stdout and "+-" in out.stdout
    import imageio.v2 as imageio
    from PIL import Image

    frames = imageio.mimread(gif)
    # Pendulum's 200 steps + the reset frame, at its 30 frames/s; the GIF encoder merges
    # pixel-identical consecutive frames (adding their durations), so count playing time
    with Image.open(gif) as im:
        total_ms = 0
        for i in range(im.n_frames):
            im.seek(i)
            total_ms += im.info["duration"]
    assert 150 <= len(frames) <= 201
    assert abs(total_ms - 201 * 1000 / 30) <= 201 * 5  # GIF stores 10 ms ticks per frame
    assert np.std(frames[0]) > 0  # a drawn pendulum, not a blank image
    bad = sweep("eval", str(path), "--video", str(tmp_path / "x.avi"))
    assert bad.returncode == 2 and ".mp4 or .gif" in bad.stderr


# --- presets --------------------------------------------------------------------------------------


def test_preset_applies_under_explicit_keys_and_is_recorded():
    cfg = build_config({"agent": "ppo", "env": "Walker2d-v5", "ppo.lr": 1e-3})
    assert cfg.preset == "Walker2d-v5"
    assert cfg.ppo.lr == 1e-3  # explicit wins
    assert (cfg.ppo.n_steps, cfg.ppo.clip, cfg.ppo.num_envs) == (512, 0.1, 1)  # rl-zoo3's
    assert cfg.to_dict()["preset"] == "Walker2d-v5"
    assert build_config(cfg.to_dict()).to_dict() == cfg.to_dict()  # a stored config rebuilds
    off = build_config({"agent": "ppo", "env": "Walker2d-v5", "preset": "none"})
    assert off.ppo.n_steps == 1024 and "preset" not in off.to_dict()
    named = build_config({"agent": "sac", "env": "Hopper-v5", "preset": "Walker2d-v5"})
    assert named.sac.lr == 3e-4 and named.preset == "Walker2d-v5"
    mb = build_config({"agent": "mb_ppo", "env": "Pendulum-v1"})
    assert (mb.world_model.deter, mb.preset) == (64, "Pendulum-v1")
    td3 = build_config({"agent": "td3", "env": "Walker2d-v5", "td3.actor_lr": 3e-4})
    assert (td3.td3.hidden, td3.td3.learning_starts, td3.td3.actor_lr) == ([400, 300], 10_000, 3e-4)


def test_bad_presets_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match=r"unknown preset 'Walkr2d-v5'.*did you mean"):
        build_config({"agent": "sac", "preset": "Walkr2d-v5"})
    import agent.presets as presets

    monkeypatch.setattr(presets, "table", lambda agent: {"Pendulum-v1": {"ppo.lr": 1.0}})
    with pytest.raises(ConfigError, match=r"'ppo\.lr' is not in a section agent 'sac' reads"):
        build_config({"agent": "sac", "env": "Pendulum-v1"})


def test_every_preset_validates():
    from agent.presets import names

    for agent in ("sac", "td3", "ppo", "mb_ppo", "mb_sac", "dreamer", "world_model"):
        assert set(names(agent)) >= {"Pendulum-v1", "Walker2d-v5"}
        for env in names(agent):
            build_config({"agent": agent, "env": env})  # raises on a bad key or value


def test_shipped_sweeps_mean_what_they_meant():
    """Presets change no shipped sweep: no trial config of a `preset: none` file records one."""
    from sweeps.schema import load_sweep

    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        if "preset: none" in path.read_text():
            assert all("preset" not in t.config for t in load_sweep(path).trials), path.name


def test_a_stored_sweep_still_resumes(tmp_path):
    from sweeps.runner import _check_same
    from sweeps.schema import load_sweep

    stored = ROOT / "results" / "init_ppo"
    copy = tmp_path / "init_ppo"
    copy.mkdir()
    for name in ("sweep.yaml", "sweep_resolved.json"):
        shutil.copy(stored / name, copy / name)
    budget = json.loads((copy / "sweep_resolved.json").read_text())["budget"]
    for source in (ROOT / "sweeps" / "init_ppo.yaml", copy / "sweep.yaml"):
        _check_same(load_sweep(source, budget), copy)  # raises CLIError on any difference


# --- the CLI --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, "train", "run", "report", "eval", "keys"])
def test_help_imports_no_torch(command):
    code = (
        f"import sys, sweeps.cli as c; p = c.build_parser({command!r}); p.format_help(); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'seaborn', 'matplotlib', 'ray', 'pandas', 'gymnasium')); "
        "assert not heavy, heavy"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr


def test_version_help_and_global_flags_after_the_command():
    out = sweep("--version")
    assert out.returncode == 0 and out.stdout.startswith("sweep (initablate) ")
    out = sweep("--help")
    for cmd in ("train", "run", "report", "eval", "keys", "validate", "status"):
        assert cmd in out.stdout
    assert "``" not in out.stdout and ":func:" not in out.stdout  # no reST in help texts
    out = sweep("run", "--help")
    assert "--budget" in out.stdout and "trainable" not in out.stdout
    out = sweep("list", "scenarios", "--import", "no_such_module_xyz")
    assert out.returncode == 2 and "no_such_module_xyz" in out.stderr


def test_sweep_keys_lists_types_defaults_and_descriptions():
    out = sweep("keys", "agent=ppo")
    assert out.returncode == 0, out.stderr
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.stdout.splitlines()
        if line.startswith("  ")
    }
    assert rows["ppo.lr"][:2] == ["float", "0.0003"]
    assert rows["ppo.num_envs"][:2] == ["int", "4"]
    assert "parallel envs" in " ".join(rows["ppo.num_envs"])
    assert rows["init.scheme"][:2] == ["str", "fanin"]
    assert "sac.lr" not in rows  # only the sections a ppo trial reads
    assert "presets of ppo" in out.stdout and "Walker2d-v5" in out.stdout
    bad = sweep("keys", "env=Pendulum-v1")
    assert bad.returncode == 2 and "agent=NAME" in bad.stderr


# --- the analysis names ------------------------------------------------------------------------


def test_analysis_load_is_callable_and_still_the_module():
    import analysis
    from analysis import load

    df = load(ROOT / "results" / "init_ppo")
    assert df.equals(analysis.load_sweep(ROOT / "results" / "init_ppo"))
    assert load.load_trials is analysis.load_trials
    assert callable(analysis.iqm) and callable(analysis.write_report)


# --- the README's examples ----------------------------------------------------------------------


def _readme_examples() -> list[str]:
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Daily tools") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_python_examples_run(trials, tmp_path, monkeypatch):
    examples = _readme_examples()
    assert len(examples) == 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").symlink_to(ROOT / "results")
    shutil.copytree(trials["sac"][1], tmp_path / "runs" / "sac0")  # `sweep train --out runs/sac0`
    policy_example, api_example = examples
    scope: dict = {}
    exec(compile(policy_example, "README policy example", "exec"), scope)
    assert scope["returns"].shape == (3,) and scope["action"].shape == (1,)
    scope = {}
    exec(compile(api_example, "README API example", "exec"), scope)
    assert scope["analysis"].rank_groups(scope["table"], "iqm") == [
        "fanin",
        "kaiming",
        "orthogonal",
    ]  # IQM of the 15 stored runs of each scheme
    for name in ("intervals.png", "curves.png"):
        assert (tmp_path / name).stat().st_size > 10_000
