"""The trial loop with real agents: failures (NaN losses, crashed envs, bad envs), other envs.

Determinism and exact resume from checkpoints of every registered agent:
tests/test_agent_contract.py. Small networks and short runs keep this fast.
"""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from agent import TrialError, build_config, run_trial
from agent.common.envs import EnvError
from agent.config import ConfigError, TrialConfig
from agent.registry import agents

# eval_every does not divide the PPO rollout (2 envs x 64 steps), so checkpoints fall mid-rollout;
# 600 steps cross a Pendulum time limit (200 steps per env) for both agents.
SETTINGS = {
    "sac": {"sac.hidden": [32, 32], "sac.batch_size": 32, "sac.learning_starts": 100},
    "ppo": {
        "ppo.hidden": [16, 16],
        "ppo.num_envs": 2,
        "ppo.n_steps": 64,
        "ppo.minibatch_size": 32,
        "ppo.epochs": 2,
        "ppo.value_clip": 0.2,
    },
}
STEPS = 600


def config(agent: str, total_steps: int = STEPS, **extra):
    return build_config(
        {
            "agent": agent,
            "env": "Pendulum-v1",
            "seed": 3,
            "total_steps": total_steps,
            "eval_every": 100,
            "eval_episodes": 2,
            "diag_states": 50,
            **SETTINGS[agent],
            **extra,
        }
    )


@pytest.mark.parametrize("agent", ["sac", "ppo"])
def test_nan_loss_fails_the_trial_and_keeps_the_last_checkpoint(agent, tmp_path, monkeypatch):
    cls = agents.get(agent)
    update = cls.update

    def poisoned(self):
        stats = update(self)
        if self.env_steps <= 300:
            return stats
        if isinstance(stats, dict):
            return {k: v * math.nan for k, v in stats.items()}
        return stats * math.nan

    monkeypatch.setattr(cls, "update", poisoned)
    with pytest.raises(TrialError, match=r"non-finite loss/\w+.* at env step \d+.*checkpoint"):
        run_trial(config(agent), tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and "non-finite" in status["error"]
    state = torch.load(tmp_path / "checkpoints" / "state.pt", weights_only=False)
    assert 200 <= state["env_steps"] <= 400 and state["env_steps"] == status["env_steps"]
    assert all(math.isfinite(r["eval/return"]) for r in state["rows"])
    # the surviving checkpoint is a usable one: a fixed run resumes from it
    monkeypatch.setattr(cls, "update", update)
    rows = run_trial(config(agent), tmp_path)
    assert rows[-1]["env_step"] == STEPS
    assert (
        json.loads((tmp_path / "status.json").read_text())["restored_from_step"]
        == state["env_steps"]
    )


@pytest.mark.parametrize("agent", ["sac", "ppo"])
def test_discrete_or_unknown_env_is_a_clear_error(agent):
    message = r"'CartPole-v1' has a Discrete action space.*continuous \(Box\)"
    with pytest.raises(ConfigError, match="env: env " + message):
        build_config({"agent": agent, "env": "CartPole-v1"})
    with pytest.raises(EnvError, match=message):  # a config made without build_config's checks
        agents.get(agent)(TrialConfig(agent=agent, env="CartPole-v1"))
    with pytest.raises(ConfigError, match=r"env: unknown environment 'Pendulm-v1'.*Pendulum-v1"):
        build_config({"agent": agent, "env": "Pendulm-v1"})


@pytest.mark.parametrize("agent", ["sac", "ppo"])
def test_other_box_env_trains_with_actions_in_its_bounds(agent, tmp_path):
    # MountainCarContinuous: a 1-D action in [-1, 1], a 2-D observation; no registry entry
    cfg = build_config(
        {
            "agent": agent,
            "env": "MountainCarContinuous-v0",
            "seed": 0,
            "total_steps": 200,
            "eval_every": 200,
            "eval_episodes": 1,
            "diag_states": 20,
            **SETTINGS[agent],
        }
    )
    rows = run_trial(cfg, tmp_path)
    assert rows[-1]["env_step"] == 200 and math.isfinite(rows[-1]["eval/return"])
    assert json.loads(Path(tmp_path, "config.json").read_text())["env"] == cfg.env


class _CrashingPendulum:
    """Pendulum-v1 whose simulator raises on its ``crash_at``-th step (counted over resets)."""

    def __init__(self, crash_at: int):
        import gymnasium as gym

        self.env, self.n, self.crash_at = gym.make("Pendulum-v1"), 0, crash_at

    def __getattr__(self, name):
        return getattr(self.env, name)

    def step(self, action):
        self.n += 1
        if self.n == self.crash_at:
            raise FloatingPointError("simulator diverged (injected)")
        return self.env.step(action)


@pytest.mark.parametrize("agent", ["sac", "ppo", "mb_ppo"])
def test_env_crash_names_env_and_step_and_keeps_the_metrics(agent, tmp_path, monkeypatch):
    from agent.common import envs

    settings = SETTINGS.get(
        agent,
        {
            "world_model.deter": 16,
            "world_model.stoch": 4,
            "world_model.hidden": 16,
            "world_model.seq_len": 8,
            "world_model.batch_size": 4,
            "world_model.eval_batch": 2,
            "world_model.eval_horizons": [1, 2],
            "mb_ppo.hidden": [16],
            "mb_ppo.prefill": 50,
            "mb_ppo.explore_steps": 50,
            "mb_ppo.model_updates": 1,
            "mb_ppo.num_sequences": 2,
            "mb_ppo.sequence_length": 8,
            "mb_ppo.minibatch_size": 8,
            "mb_ppo.updates_per_iteration": 1,
            "mb_ppo.imagine_horizon": 3,
        },
    )
    cfg = build_config(
        {
            "agent": agent,
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": 600,
            "eval_every": 100,
            "eval_episodes": 1,
            "diag_states": 0,
            **settings,
        }
    )
    made = []

    def make(self, **kwargs):  # the training env(s) crash after 250 steps; eval envs do not
        env = _CrashingPendulum(250 if len(made) < (2 if agent == "ppo" else 1) else 10**9)
        made.append(env)
        return env

    monkeypatch.setattr(envs.EnvSpec, "make", make)
    with pytest.raises(
        EnvError,
        match=r"env 'Pendulum-v1' crashed at step \d+: simulator "
        r"diverged \(injected\)",
    ):
        run_trial(cfg, tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and "crashed at step" in status["error"]
    rows = pd.read_csv(tmp_path / "metrics.csv")
    assert rows["env_step"].max() >= 100  # evaluations before the crash are kept
    assert (tmp_path / "config.json").is_file()


def test_tensors_to_moves_every_tensor_of_a_checkpoint_piece():
    """What a checkpoint restores into a GPU agent (or a CPU one, from a GPU machine's file): a
    Latent dataclass, nested dicts and lists; other values pass through unchanged. The meta
    device stands in for the GPU on a CPU machine (tests/test_cuda.py covers the real one)."""
    from agent.base import tensors_to
    from agent.common.rssm import Latent

    latent = Latent(torch.zeros(2, 3), torch.ones(2, 4), torch.ones(2, 8))
    piece = {"latent": latent, "norm": [torch.ones(2), (torch.zeros(1), 7)], "step": 5, "x": None}
    moved = tensors_to(piece, torch.device("meta"))
    assert isinstance(moved["latent"], Latent)
    assert {moved["latent"].deter.device.type, moved["latent"].stats.device.type} == {"meta"}
    assert moved["latent"].stoch.shape == (2, 4)
    assert moved["norm"][0].device.type == "meta" and isinstance(moved["norm"][1], tuple)
    assert moved["norm"][1][0].device.type == "meta" and moved["norm"][1][1] == 7
    assert moved["step"] == 5 and moved["x"] is None
    assert latent.deter.device.type == "cpu"  # the original is left as it was


@pytest.mark.parametrize("name", ["world_model", "dreamer", "mb_ppo", "sac", "ppo"])
def test_a_config_written_out_validates_again(name):
    """config.json spells out every field; on resume it is built again. A short seq_len once
    kept the default eval horizons [1, 5, 15] on the first build and refused them on the second."""
    extra = {} if name in ("sac", "ppo") else {"world_model.seq_len": 8}
    cfg = build_config({"agent": name, "env": "Pendulum-v1", **extra})
    again = build_config(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()
    if extra:
        assert cfg.world_model.eval_horizons == [1, 5]


def test_explicit_eval_horizons_beyond_seq_len_are_still_refused():
    with pytest.raises(ConfigError, match="horizons must lie in"):
        build_config(
            {"agent": "world_model", "world_model.seq_len": 8, "world_model.eval_horizons": [1, 9]}
        )
