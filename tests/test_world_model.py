"""World model: sequence replay, RSSM maths, learning on Pendulum, proprio heads, init and
checkpoints."""

import dataclasses
import io
import math

import numpy as np
import pytest
import torch

from agent import build_config
from agent.common.envs import get_env
from agent.common.rssm import (
    Latent,
    entropy_categorical,
    entropy_gaussian,
    kl_categorical,
    kl_gaussian,
)
from agent.common.sequence_replay import SequenceReplay
from agent.config import ConfigError
from agent.registry import agents
from agent.trial import run_trial
from agent.world_model import WorldModel, WorldModelConfig

TARGETS = ["joint_pos", "joint_vel", "ee_pos", "ee_vel"]
SMALL = {
    "world_model.deter": 64,
    "world_model.stoch": 8,
    "world_model.hidden": 64,
    "world_model.seq_len": 32,
    "world_model.batch_size": 16,
}


def make_agent(env="Pendulum-v1", total_steps=2000, **overrides):
    cfg = build_config(
        {
            "agent": "world_model",
            "env": env,
            "total_steps": total_steps,
            **SMALL,
            **{f"world_model.{k}": v for k, v in overrides.items()},
        }
    )
    agent = agents.get("world_model")(cfg)
    agent.initialise()
    return agent


# --- sequence replay -----------------------------------------------------------------------------


def test_sequence_replay_wraps_and_samples_consecutive_steps():
    buf = SequenceReplay(10, obs_dim=1, act_dim=1, proprio_dims={"joint_pos": 2}, seed=0)
    for t in range(23):  # wraps twice; steps 13..22 remain, episodes start every 4 steps
        buf.add(
            np.array([t]),
            np.array([-t]),
            float(t),
            t % 4 == 0,
            t % 4 == 3,
            {"joint_pos": np.array([t, 2 * t])},
        )
    assert buf.size == 10 and buf.episodes == 6
    batch = buf.sample(64, 5)
    obs = batch["obs"][..., 0]
    assert batch["obs"].shape == (64, 5, 1) and batch["proprio"]["joint_pos"].shape == (64, 5, 2)
    assert torch.all(obs[:, 1:] - obs[:, :-1] == 1), "sequences cross the write pointer"
    assert obs.min() >= 13 and obs.max() <= 22
    assert batch["is_first"][:, 0].all()  # a sampled sequence starts from a fresh state
    assert torch.equal(batch["is_first"][:, 1:], (obs[:, 1:] % 4 == 0))
    assert torch.equal(batch["is_terminal"], obs % 4 == 3)
    assert torch.equal(batch["reward"], obs) and torch.equal(batch["action"][..., 0], -obs)
    with pytest.raises(ValueError, match="fewer than length"):
        buf.sample(1, 11)


def test_sequence_replay_checkpoint_restores_contents_and_sampling():
    buf = SequenceReplay(8, 2, 1, seed=3)
    for t in range(11):
        buf.add(np.full(2, t), np.zeros(1), 0.0, t == 0, False)
    state = io.BytesIO()
    torch.save(buf.state_dict(), state)
    state.seek(0)
    other = SequenceReplay(8, 2, 1, seed=99)
    other.load_state_dict(torch.load(state, weights_only=False))
    a, b = buf.sample(16, 4), other.sample(16, 4)
    assert all(torch.equal(a[k], b[k]) for k in ("obs", "action", "reward", "is_first"))
    bigger = SequenceReplay(20, 2, 1, seed=5)  # a longer run resuming a shorter one
    bigger.load_state_dict(buf.state_dict())
    assert bigger.size == 8 and torch.equal(
        bigger.sample(3, 8)["obs"][0, :, 0], torch.arange(3.0, 11.0)
    )
    with pytest.raises(ValueError, match="proprio targets"):
        SequenceReplay(8, 2, 1, {"ee_pos": 2}).load_state_dict(buf.state_dict())


# --- latent distributions ------------------------------------------------------------------------


def test_kl_and_entropy_match_torch_distributions():
    D = torch.distributions
    mp, mq, sp, sq = torch.randn(4, 5), torch.randn(4, 5), torch.rand(4, 5) + 0.1, torch.rand(4, 5)
    p, q = torch.cat([mp, sp], -1), torch.cat([mq, sq + 0.1], -1)
    ref = D.kl_divergence(D.Normal(mp, sp), D.Normal(mq, sq + 0.1)).sum(-1)
    assert torch.allclose(kl_gaussian(p, q), ref, atol=1e-5)
    assert torch.allclose(kl_gaussian(p, p), torch.zeros(4), atol=1e-6)
    assert torch.allclose(entropy_gaussian(p), D.Normal(mp, sp).entropy().sum(-1), atol=1e-5)
    lp, lq = torch.randn(4, 3, 6).log_softmax(-1), torch.randn(4, 3, 6).log_softmax(-1)
    ref = D.kl_divergence(D.Categorical(logits=lp), D.Categorical(logits=lq)).sum(-1)
    assert torch.allclose(kl_categorical(lp.flatten(-2), lq.flatten(-2), 6), ref, atol=1e-5)
    ent = entropy_categorical(torch.full((2, 12), -math.log(6)), 6)
    assert torch.allclose(ent, torch.full((2,), 2 * math.log(6)))


@pytest.mark.parametrize(("discrete", "symlog"), [(0, False), (4, True)])
def test_world_model_api_shapes_and_gradients(discrete, symlog):
    cfg = WorldModelConfig(
        deter=16,
        stoch=3,
        discrete=discrete,
        hidden=16,
        seq_len=8,
        eval_horizons=[1, 3],
        symlog=symlog,
    )
    model = WorldModel(obs_dim=5, act_dim=2, cfg=cfg, proprio_dims={"ee_pos": 4})
    B, T = 3, 8
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = is_first[1, 4] = True
    batch = {
        "obs": torch.randn(B, T, 5),
        "action": torch.rand(B, T, 2) * 2 - 1,
        "reward": torch.randn(B, T),
        "is_first": is_first,
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
        "proprio": {"ee_pos": torch.randn(B, T, 4)},
    }
    feat_dim = 16 + 3 * (discrete or 1)
    posts, priors = model.observe(batch["obs"], batch["action"], is_first)
    assert posts.shape == priors.shape == (B, T)
    assert model.features(posts).shape == (B, T, feat_dim)
    changed = {k: v.clone() for k, v in batch.items() if k in ("obs", "action")}
    changed["obs"][1, :4] += 1.0
    changed["action"][1, :4] *= -1.0
    a = model.observe(batch["obs"], batch["action"], is_first, sample=False)[0]
    b = model.observe(changed["obs"], changed["action"], is_first, sample=False)[0]
    assert torch.equal(a.deter[1, 4:], b.deter[1, 4:]), "is_first must reset the state"
    assert not torch.equal(a.deter[1, :4], b.deter[1, :4])
    loss, metrics, posts = model.loss(batch)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert {"model/loss_obs", "model/loss_proprio_ee_pos", "model/kl"} <= set(metrics)
    start = posts.flatten().detach()  # [B*T] start states
    states, actions = model.imagine(start, lambda s: torch.tanh(s.deter[:, :2]), horizon=4)
    assert states.shape == (B * T, 5) and actions.shape == (B * T, 4, 2)
    assert torch.equal(states[:, 0].deter, start.deter)
    feat = model.features(states)
    assert model.reward(feat).shape == (B * T, 5) and model.cont(feat).shape == (B * T, 5)
    fixed, _ = model.imagine(start, actions, sample=False)
    assert fixed.shape == (B * T, 5)
    stacked = Latent.stack([start, start], 1)
    assert stacked.shape == (B * T, 2)
    errs = model.open_loop_errors(batch, [1, 3])
    assert {"model/open_loop/obs_h3", "model/open_loop/ee_pos_h1", "model/const/reward"} <= set(
        errs
    )


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"world_model\.eval_horizons"):
        build_config({"agent": "world_model", "world_model.eval_horizons": [1, 50]})
    with pytest.raises(ConfigError, match=r"world_model\.activation.*did you mean 'elu'"):
        build_config({"agent": "world_model", "world_model.activation": "eluu"})
    with pytest.raises(ConfigError, match=r"world_model\.proprio.*has no proprio target"):
        make_agent(env="MountainCarContinuous-v0", proprio=["joint_pos"])


# --- learning on Pendulum ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pendulum():
    """A small model on 5 random-policy Pendulum episodes: episode 0 held out, 297 updates.

    Returns (agent, errors on the held-out episode before training, the same after).
    """
    torch.manual_seed(0)
    agent = make_agent(
        total_steps=1000,
        proprio=TARGETS,
        prefill=401,
        train_every=2,
        holdout_every=5,
        lr=1e-3,
        seq_len=20,
    )
    agent.train(400)  # ends before its first update
    before = agent.evaluate_model()
    after = agent.train(995)  # episode 5 (held out) would start at step 1000
    assert agent.holdout.size == 201 and agent.updates == 297
    return agent, before, after


def test_one_step_error_far_below_constant_predictor(pendulum):
    _, _, after = pendulum
    h1, const = after["model/open_loop/obs_h1"], after["model/const/obs"]
    assert h1 < 0.2 * const, (h1, const)  # 0.01 here; 0.01-0.07 over other torch seeds
    for h in (1, 5, 15):
        for q in ["obs", "reward", *TARGETS]:
            assert math.isfinite(after[f"model/open_loop/{q}_h{h}"])
    assert math.isfinite(after["model/open_loop/obs_h15"])
    assert {
        "model/loss_obs",
        "model/loss_reward",
        "model/loss_continue",
        "model/loss_kl",
        "model/kl",
        "loss/model",
        "perf/model_updates_per_s",
    } <= set(after)


def test_proprio_errors_drop_with_training(pendulum):
    _, before, after = pendulum
    for q in TARGETS:
        b, a = before[f"model/open_loop/{q}_h1"], after[f"model/open_loop/{q}_h1"]
        assert a < 0.5 * b, (q, b, a)  # 0.02-0.04 here


def test_proprio_off_reads_no_targets(monkeypatch):
    calls = {k: 0 for k in TARGETS}
    real = get_env("Pendulum-v1")

    def counting(name):
        def fn(u):
            calls[name] += 1
            return real.proprio[name](u)

        return fn

    spec = dataclasses.replace(real, proprio={k: counting(k) for k in TARGETS})
    monkeypatch.setattr("agent.base.get_env", lambda _: spec)
    agent = make_agent(total_steps=300, prefill=250, train_every=10)
    agent.train(300)
    assert agent.updates > 0 and sum(calls.values()) == 0
    assert not agent.replay.sample(2, 8)["proprio"] and not agent.model.proprio_heads
    agent = make_agent(total_steps=300, prefill=250, train_every=10, proprio=["ee_vel"])
    agent.train(300)  # one read for the head size, one per step and per first step
    assert calls["ee_vel"] == 1 + 2 + 300 and sum(calls.values()) == calls["ee_vel"]


def test_walker_proprio_targets_train():
    agent = make_agent(
        env="Walker2d-v5",
        total_steps=200,
        proprio=TARGETS,
        prefill=150,
        train_every=25,
        holdout_every=2,
        eval_horizons=[1, 3],
    )
    metrics = agent.train(200)
    assert {k: v.shape[1] for k, v in agent.replay.proprio.items()} == {
        "joint_pos": 9,
        "joint_vel": 9,
        "ee_pos": 6,
        "ee_vel": 6,
    }
    assert agent.replay.episodes > 1  # random Walker episodes are short: sequences span several
    assert agent.updates == 3 and all(math.isfinite(v) for v in metrics.values())
    assert "model/open_loop/ee_vel_h3" in metrics


# --- init, checkpoints, trial --------------------------------------------------------------------


def test_init_spec_reaches_every_model_layer():
    cfg = build_config(
        {
            "agent": "world_model",
            **SMALL,
            "world_model.proprio": ["joint_vel"],
            "init.scheme": "orthogonal",
            "init.roles": {"reward_head": "zeros"},
            "init.gains": {"continue_head": 0.5},
        }
    )
    agent = agents.get("world_model")(cfg)
    records = agent.initialise()
    assert {r["role"] for r in records} == {
        "encoder",
        "dynamics",
        "hidden",
        "decoder",
        "reward_head",
        "continue_head",
        "proprio_head",
    }
    m = agent.model
    assert torch.all(m.reward_head[-1].weight == 0)
    w = m.continue_head[-1].weight  # [1, hidden]: an orthogonal row of norm = gain
    assert torch.allclose(w.norm(), torch.tensor(0.5), atol=1e-5)
    out = m.proprio_heads["joint_vel"][-1].weight  # linear output: gain 1
    assert torch.allclose(out @ out.T, torch.eye(out.shape[0]), atol=1e-5)
    first = m.encoder[0].weight  # [hidden, obs]: orthogonal columns scaled by ELU's gain sqrt 2
    assert torch.allclose(first.T @ first, 2 * torch.eye(first.shape[1]), atol=1e-4)
    hh = m.rssm.gru.weight_hh  # the GRU cell, role dynamics
    assert torch.allclose(hh.T @ hh, torch.eye(hh.shape[1]), atol=1e-4)
    gru = next(r for r in records if r["layer"] == "world_model.rssm.gru")
    assert gru["role"] == "dynamics" and gru["scheme"] == "orthogonal"


def test_checkpoint_gives_identical_predictions_and_training():
    agent = make_agent(total_steps=400, prefill=250, train_every=5)
    agent.train(300)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    other = make_agent(total_steps=400, prefill=250, train_every=5)  # different fresh weights
    other.load_state_dict(torch.load(buf, weights_only=False))
    other.env_steps = agent.env_steps
    batch = agent.holdout.sample(4, 32, rng=np.random.default_rng(0))
    a = agent.model.observe(batch["obs"], batch["action"], batch["is_first"], sample=False)[0]
    b = other.model.observe(batch["obs"], batch["action"], batch["is_first"], sample=False)[0]
    assert torch.equal(a.deter, b.deter) and torch.equal(a.stoch, b.stoch)
    assert agent.evaluate_model() == other.evaluate_model()
    results = []
    for m in (agent, other):  # resuming continues exactly: same env, replay, optimiser, RNG
        torch.manual_seed(1)
        results.append(m.train(400))
    for k, v in results[0].items():
        assert k.startswith("perf/") or v == results[1][k], k


def test_run_trial_writes_model_metrics(tmp_path):
    """(Exact resume of every registered agent: tests/test_agent_contract.py.)"""

    def config(total_steps):
        return build_config(
            {
                "agent": "world_model",
                "total_steps": total_steps,
                "eval_every": 100,
                "eval_episodes": 1,
                "diag_states": 50,
                **SMALL,
                "world_model.prefill": 150,
                "world_model.train_every": 10,
                "world_model.proprio": ["ee_pos"],
            }
        )

    rows = run_trial(config(400), tmp_path / "full")
    assert rows[-1]["env_step"] == 400 and math.isfinite(rows[-1]["model/open_loop/ee_pos_h15"])
    header = (tmp_path / "full" / "metrics.csv").read_text().splitlines()[0]
    assert "model/open_loop/obs_h1" in header and "model/const/obs" in header
