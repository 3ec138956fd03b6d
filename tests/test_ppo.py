"""PPO: config checks, init roles, the probe, rollout bookkeeping, updates, env checkpoints."""

import io

import numpy as np
import pytest
import torch

from agent import build_config, run_trial
from agent.base import seed_everything
from agent.common.distributions import normal_entropy
from agent.config import ConfigError
from agent.ppo import PENDULUM, PPO, PPOConfig

SMALL = {
    "ppo.hidden": [16, 16],
    "ppo.num_envs": 2,
    "ppo.n_steps": 64,
    "ppo.minibatch_size": 32,
    "ppo.epochs": 2,
}


def small_ppo(env: str = "Pendulum-v1", **extra) -> PPO:
    cfg = build_config(
        {"agent": "ppo", "env": env, "seed": 0, "total_steps": 10_000, **SMALL, **extra}
    )
    seed_everything(0)
    agent = PPO(cfg)
    agent.initialise()
    return agent


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"ppo\.minibatch_size: 512 exceeds the rollout"):
        build_config(
            {"agent": "ppo", "ppo.num_envs": 2, "ppo.n_steps": 128, "ppo.minibatch_size": 512}
        )
    with pytest.raises(ConfigError, match=r"ppo\.gae_lamda: unknown key; did you mean"):
        build_config({"agent": "ppo", "ppo.gae_lamda": 0.9})
    assert build_config({"agent": "ppo", **PENDULUM}).ppo.gamma == 0.9
    assert PPOConfig().num_envs == 4


def test_init_roles_log_std_value_and_small_value_head():
    cfg = build_config({"agent": "ppo", "init.log_std": -0.7, "init.scheme": "orthogonal", **SMALL})
    agent = PPO(cfg)
    records = {r["layer"]: r for r in agent.initialise()}
    assert torch.all(agent.actor.log_std.log_std == -0.7)
    assert records["actor.log_std"]["role"] == "policy_std"
    value_head = agent.critic[-1]
    assert value_head.role == "value" and records["critic.4"]["role"] == "value"
    assert value_head.weight.abs().max() <= 3e-3  # small_outputs keeps the critic output small
    assert records["actor.trunk.0"]["scheme"] == "orthogonal"


def test_init_probe_clips_samples_and_reports_the_policy():
    agent = small_ppo(**{"init.log_std": 0.5})
    obs = np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32)
    rng = torch.get_rng_state()
    probe = agent.init_probe(obs)
    assert torch.equal(torch.get_rng_state(), rng)  # the probe leaves the global RNG alone
    a = probe["actions"]
    assert a.shape == (2000, 1) and a.min() >= -1 and a.max() <= 1
    # std e^0.5 = 1.65 around a near-zero mean: P(|a| > 1) = 2 (1 - Phi(1 / 1.65)) = 0.54
    assert np.mean(np.abs(a) == 1.0) == pytest.approx(0.54, abs=0.04)
    assert probe["std"] == pytest.approx(np.exp(0.5))
    assert probe["entropy"] == pytest.approx(float(normal_entropy(torch.tensor([0.5]))))
    assert probe["mean_abs_mean"] < 0.05 and 0 < probe["critic_scale"] < 0.05
    again = agent.init_probe(obs)
    assert np.array_equal(again["actions"], a)
    # states are standardised by their own statistics: units and offsets do not matter
    shifted = agent.init_probe(obs * 1000.0 + 5.0)
    assert np.allclose(shifted["actions"], a, atol=1e-4)


def test_rollout_bootstraps_truncations_from_the_final_obs():
    agent = small_ppo(**{"ppo.n_steps": 256, "ppo.normalize_obs": False})
    for _ in range(201):
        agent.collect_step()
    r = agent.rollout
    assert agent.env_steps == 402 and agent.t == 201
    # Pendulum's 200-step limit: step 199 of both envs ends by truncation, never termination
    assert r["done"][199].tolist() == [1.0, 1.0] and r["done"][:199].sum() == 0
    assert r["terminated"].sum() == 0
    assert torch.all(r["final_value"][199] != 0) and r["final_value"][:199].abs().sum() == 0
    assert len(agent.completed_returns) == 2 and np.all(agent.episode_returns < 0)
    # the reset obs after the time limit is not the final obs the bootstrap used
    assert not torch.equal(r["obs"][200], r["obs"][199])


def test_act_normalises_with_the_training_stats_without_updating_them():
    agent = small_ppo()
    for _ in range(50):
        agent.collect_step()
    mean = agent.obs_norm.rms.mean.copy()
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    action, _ = agent.act(obs, None)
    assert np.array_equal(agent.obs_norm.rms.mean, mean) and agent.obs_norm.rms.count > 100
    z = (obs - mean) / np.sqrt(agent.obs_norm.rms.var + 1e-8)
    with torch.no_grad():
        expected = agent.actor(torch.as_tensor(z, dtype=torch.float32))[0].clamp(-1, 1)
    assert np.allclose(action, expected.numpy(), atol=1e-6)


def test_train_runs_rollouts_and_updates_with_sane_metrics():
    agent = small_ppo(**{"ppo.value_clip": 0.2, "ppo.ent_coef": 0.01})
    before = [p.detach().clone() for p in agent.params]
    metrics = agent.train(300)  # 2 full rollouts of 128 env steps and part of a third
    assert agent.env_steps == 300 and agent.updates == 2 and agent.t == 22
    assert all(not torch.equal(a, b) for a, b in zip(before, agent.params))
    assert 0 <= metrics["train/clip_frac"] <= 1 and metrics["train/approx_kl"] >= 0
    assert metrics["train/entropy"] > 1.0 and np.isfinite(metrics["loss/value"])
    assert set(metrics) >= {
        "loss/policy",
        "loss/value",
        "train/explained_variance",
        "train/std",
        "train/updates",
    }


def test_target_kl_stops_the_epochs_early():
    agent = small_ppo(**{"ppo.target_kl": 1e-9, "ppo.epochs": 10, "ppo.lr": 1e-2})
    steps = []
    step = agent.minibatch_step
    agent.minibatch_step = lambda *a: steps.append(1) or step(*a)
    agent.train(128)
    assert len(steps) == 128 // 32  # one epoch of 4 minibatches, not 10


def roundtrip(state: dict) -> dict:
    """Through torch.save and back, as a checkpoint file goes (state dicts share storage)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("env", ["Pendulum-v1", "Walker2d-v5"])
def test_checkpoint_mid_rollout_continues_exactly(env):
    """Vector-env snapshots (physics, time limits, env RNGs), normalisers and the half-filled
    rollout: a fresh agent loaded from a state dict steps on exactly like the original."""
    agent = small_ppo(env)
    agent.train(90)
    state = roundtrip(agent.state_dict())
    rng = torch.get_rng_state()
    agent.train(300)
    clone = small_ppo(env)
    clone.load_state_dict(state)
    torch.set_rng_state(rng)
    clone.env_steps = 90
    clone.train(300)
    assert torch.equal(clone.obs, agent.obs) and clone.t == agent.t
    for key, value in agent.rollout.items():
        assert torch.equal(clone.rollout[key], value), key
    assert clone.completed_returns == agent.completed_returns
    for a, b in zip(agent.params, clone.params):
        assert torch.equal(a, b)
    if env == "Walker2d-v5":  # random Walker2d falls: terminations and resets were crossed
        assert agent.rollout["terminated"].sum() > 0


@pytest.mark.slow
def test_ppo_learns_pendulum(tmp_path):
    """Random play scores about -1200; PPO with the Pendulum settings passes -500 by 60k."""
    cfg = build_config(
        {
            "agent": "ppo",
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": 60_000,
            "eval_every": 20_000,
            "eval_episodes": 5,
            **PENDULUM,
        }
    )
    rows = run_trial(cfg, tmp_path)
    assert rows[0]["eval/return"] < -700
    assert rows[-1]["eval/return"] >= -500, [r["eval/return"] for r in rows]
