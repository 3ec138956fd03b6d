"""Model-based PPO and its base class: imagination, on-policy updates, schedule, acting, config,
init, checkpoints and learning on Pendulum."""

import math

import numpy as np
import pytest
import torch

from agent import build_config, run_trial
from agent.base import seed_everything
from agent.config import ConfigError
from agent.mb_ppo import MBPPO, PENDULUM, PPOBatch
from agent.model_based import ModelBasedAgent

TINY = {
    "world_model.deter": 32,
    "world_model.stoch": 4,
    "world_model.hidden": 32,
    "world_model.seq_len": 16,
    "world_model.batch_size": 8,
    "world_model.eval_horizons": [1, 3],
    "world_model.eval_batch": 4,
    "mb_ppo.hidden": [32, 32],
    "mb_ppo.prefill": 100,
    "mb_ppo.explore_steps": 50,
    "mb_ppo.model_updates": 2,
    "mb_ppo.num_sequences": 4,
    "mb_ppo.sequence_length": 8,
    "mb_ppo.minibatch_size": 16,
    "mb_ppo.updates_per_iteration": 2,
    "mb_ppo.imagine_horizon": 5,
}


def tiny(total_steps: int = 1000, **extra) -> MBPPO:
    cfg = build_config(
        {
            "agent": "mb_ppo",
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": total_steps,
            **TINY,
            **extra,
        }
    )
    seed_everything(0)
    agent = MBPPO(cfg)
    agent.initialise()
    return agent


@pytest.fixture(scope="module")
def trained() -> MBPPO:
    """A tiny agent after its first two rounds (at env steps 100 and 150)."""
    agent = tiny()
    agent.train(150)
    assert agent.updates == 4 and agent.model_updates_done == 4
    return agent


# --- imagination ---------------------------------------------------------------------------------


def test_start_states_and_imagination_shapes(trained):
    agent = trained
    starts = agent.start_states(4, 8)
    assert starts.shape == (32,) and not starts.deter.requires_grad
    imag = agent.imagine(starts[:10], 5)
    F, A = agent.feat_dim, agent.act_dim
    assert imag.states.shape == (6, 10) and imag.feat.shape == (6, 10, F)
    assert imag.action.shape == imag.raw.shape == (5, 10, A)
    assert imag.logp.shape == imag.reward.shape == imag.cont.shape == imag.weight.shape == (5, 10)
    assert torch.equal(imag.states.deter[0], starts.deter[:10])
    assert torch.equal(imag.action, torch.tanh(imag.raw)) and imag.action.abs().max() < 1
    assert torch.allclose(imag.reward, agent.model.reward(imag.feat[1:]))
    assert torch.all((imag.cont > 0) & (imag.cont < 1))
    assert torch.allclose(imag.weight[0], torch.ones(10))
    assert torch.allclose(imag.weight[3], imag.cont[:3].prod(0))
    # the log-probs are the acting policy's, of the squashed actions
    logp, _ = agent.log_prob(imag.feat[:-1].flatten(0, 1), imag.raw.flatten(0, 1))
    assert torch.allclose(logp, imag.logp.flatten(), atol=1e-5)
    assert not any(t.requires_grad for t in (imag.feat, imag.raw, imag.logp, imag.reward))
    # the next step follows the prior from the previous one with the action taken
    with torch.no_grad():
        nxt = agent.model.imagine_step(imag.states[0], imag.action[0], sample=False)
    assert torch.allclose(nxt.deter, imag.states.deter[1], atol=1e-6)


def test_imagination_with_grad_reaches_behaviour_nets_not_the_model(trained):
    agent = trained
    starts = agent.start_states(2, 8)
    imag = agent.imagine(starts, 4, grad=True)
    assert imag.feat.requires_grad and imag.reward.requires_grad
    agent.model.zero_grad(set_to_none=True)
    agent.actor.zero_grad(set_to_none=True)
    imag.reward.sum().backward()
    assert all(p.grad is None for p in agent.model.parameters())
    assert all(p.requires_grad for p in agent.model.parameters())  # unfrozen afterwards
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())
    agent.actor.zero_grad(set_to_none=True)


def test_policy_gradient_reaches_the_actor_only_through_log_probs(trained):
    agent = trained
    batch, metrics = agent.imagine_batch(agent.start_states(4, 8)[:16])
    assert batch.feat.shape == (5 * 16, agent.feat_dim) and batch.adv.shape == (80,)
    assert not any(t.requires_grad for t in vars(batch).values())
    assert {"imagine/return", "imagine/value_error", "imagine/reward"} <= set(metrics)
    out = agent.ppo_losses(batch)
    actor = list(agent.actor.parameters())
    model = list(agent.model.parameters())
    g = torch.autograd.grad(out["policy_loss"], actor + model, allow_unused=True, retain_graph=True)
    g_actor, g_model = g[: len(actor)], g[len(actor) :]
    assert all(x is None for x in g_model)
    assert all(
        x is None
        for x in torch.autograd.grad(
            out["policy_loss"], list(agent.critic.parameters()), allow_unused=True
        )
    )
    # at ratio 1 (no clipping) the surrogate's gradient is -mean(w A_norm grad log pi(a|f))
    assert torch.allclose(out["ratio"], torch.ones(80), atol=1e-5)
    adv = (batch.adv - batch.adv.mean()) / (batch.adv.std() + 1e-8)
    w = batch.weight / batch.weight.mean()
    logp, _ = agent.log_prob(batch.feat, batch.raw)
    ref = torch.autograd.grad(-(w * adv * logp).mean(), actor)
    for a, b in zip(g_actor, ref):
        assert torch.allclose(a, b, atol=1e-6)
    assert sum(float(x.abs().sum()) for x in g_actor) > 0
    # the value loss moves the critic only
    g = torch.autograd.grad(
        out["value_loss"], actor + list(agent.critic.parameters()), allow_unused=True
    )
    assert all(x is None for x in g[: len(actor)]) and all(x is not None for x in g[len(actor) :])


def test_every_update_imagines_on_policy(trained):
    """Epoch 1 of every update sees ratio 1 (fresh imagination with the current policy); the
    second epoch on the same batch sees the policy the first epoch moved."""
    agent = tiny(**{"mb_ppo.epochs": 2, "mb_ppo.updates_per_iteration": 3, "mb_ppo.actor_lr": 1e-2})
    agent.load_state_dict(trained.state_dict())
    ratios: list[torch.Tensor] = []
    losses = agent.ppo_losses

    def recording(b: PPOBatch):
        out = losses(b)
        ratios.append(out["ratio"].detach())
        return out

    agent.ppo_losses = recording
    before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.behaviour_phase()
    assert len(ratios) == 6 and agent.updates == trained.updates + 6
    for i in (0, 2, 4):
        assert torch.allclose(ratios[i], torch.ones_like(ratios[i]), atol=1e-5), i
        assert not torch.allclose(ratios[i + 1], torch.ones_like(ratios[i + 1]), atol=1e-3), i
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters()))
    assert metrics["train/start_states"] == 32 and math.isfinite(float(metrics["loss/policy"]))


# --- the loop, acting, config --------------------------------------------------------------------


def test_schedule_runs_rounds_at_prefill_and_every_explore_steps():
    agent = tiny()
    agent.train(99)
    assert agent.model_updates_done == 0 and agent.updates == 0
    metrics = agent.train(260)  # rounds after steps 100, 150, 200, 250
    assert agent.model_updates_done == 4 * 2 and agent.updates == 4 * 2
    assert agent.replay.size == 260 + 2  # + the first step of each of the two episodes begun
    assert agent.replay.episodes == 2 and agent.completed_returns
    assert {
        "loss/model",
        "model/kl",
        "loss/policy",
        "loss/value",
        "imagine/return",
        "model/open_loop/obs_h3",
        "perf/model_updates_per_s",
        "perf/updates_per_s",
        "train/return",
    } <= set(metrics)
    assert metrics["train/updates"] == 8 and all(math.isfinite(v) for v in metrics.values())


def test_act_filters_the_posterior_mode_and_is_deterministic(trained):
    agent = trained
    rng = np.random.default_rng(0)
    obs = [rng.normal(size=(3, 3)).astype(np.float32) for _ in range(4)]
    runs = []
    for _ in range(2):
        state, actions = agent.eval_state(3), []
        for o in obs:
            a, state = agent.act(o, state)
            actions.append(torch.as_tensor(a))
        runs.append((torch.stack(actions, 1), state))
    (acts, state), (acts2, _) = runs
    assert torch.equal(acts, acts2) and acts.shape == (3, 4, 1) and acts.abs().max() < 1
    # the same filter run over the whole sequence at once, with the actions taken
    prev = torch.cat([torch.zeros(3, 1, 1), acts[:, :-1]], 1)
    first = torch.zeros(3, 4, dtype=torch.bool)
    first[:, 0] = True
    with torch.no_grad():
        posts, _ = agent.model.observe(
            torch.from_numpy(np.stack(obs, 1)), prev, first, sample=False
        )
        want = agent.mode_action(agent.model.features(posts[:, -1]))
    assert torch.allclose(posts.deter[:, -1], state["latent"].deter, atol=1e-5)
    assert torch.allclose(acts[:, -1], want, atol=1e-5)


def test_knobs_are_validated_with_their_keys():
    with pytest.raises(ConfigError, match=r"mb_ppo\.minibatch_size.*exceeds the start states"):
        build_config(
            {
                "agent": "mb_ppo",
                "mb_ppo.num_sequences": 4,
                "mb_ppo.sequence_length": 8,
                "mb_ppo.minibatch_size": 33,
            }
        )
    with pytest.raises(ConfigError, match=r"mb_ppo\.return_estimator"):
        build_config({"agent": "mb_ppo", "mb_ppo.return_estimator": "gea"})
    with pytest.raises(ConfigError, match=r"mb_ppo\.updates_per_iter.*did you mean"):
        build_config({"agent": "mb_ppo", "mb_ppo.updates_per_iter": 3})
    with pytest.raises(ConfigError, match=r"mb_ppo\.activation.*did you mean 'elu'"):
        build_config({"agent": "mb_ppo", "mb_ppo.activation": "eluu"})
    for key, bad in (
        ("epochs", 0),
        ("imagine_horizon", 0),
        ("explore_steps", 0),
        ("clip", 0.0),
        ("lam", 1.5),
        ("gamma", 0.0),
    ):
        with pytest.raises(ConfigError, match=rf"mb_ppo\.{key}"):
            build_config({"agent": "mb_ppo", f"mb_ppo.{key}": bad})
    with pytest.raises(ConfigError, match=r"world_model\.proprio.*has no proprio target"):
        tiny(env="MountainCarContinuous-v0", **{"world_model.proprio": ["joint_pos"]})
    cfg = build_config({"agent": "mb_ppo"})
    assert cfg.mb_ppo.return_estimator == "gae" and cfg.world_model.deter > 0
    assert issubclass(MBPPO, ModelBasedAgent) and MBPPO.sections == ("mb_ppo", "world_model")


@pytest.mark.parametrize("name", ["lambda_return", "gae", "td0", "monte_carlo"])
def test_every_return_estimator_trains(name):
    agent = tiny(**{"mb_ppo.return_estimator": name})
    metrics = agent.train(150)
    assert agent.updates == 4 and math.isfinite(metrics["loss/value"])


def test_init_spec_reaches_every_layer_and_small_outputs_stay_small():
    agent = tiny(**{"init.scheme": "orthogonal", "init.scenario": "small_outputs"})
    records = agent.initialise()
    roles = {r["role"] for r in records}
    assert {
        "policy_mean",
        "policy_std",
        "value",
        "hidden",
        "encoder",
        "dynamics",
        "reward_head",
    } <= roles
    assert {r["layer"].split(".")[0] for r in records} == {"world_model", "actor", "critic"}
    for layer in (agent.actor.mean, agent.actor.log_std, agent.critic[-1]):
        assert layer.weight.abs().max() <= 3e-3
    trunk = agent.actor.trunk[0].weight  # [32, feat]: orthogonal rows scaled by ELU's sqrt 2
    assert torch.allclose(trunk @ trunk.T, 2 * torch.eye(32), atol=1e-4)


def test_run_trial_logs_the_imagination_and_counts_the_updates(tmp_path):
    """(Exact resume of every registered agent: tests/test_agent_contract.py.)"""

    def config(total_steps):
        return build_config(
            {
                "agent": "mb_ppo",
                "total_steps": total_steps,
                "eval_every": 100,
                "eval_episodes": 2,
                "diag_states": 50,
                **TINY,
                "world_model.proprio": ["ee_pos"],
            }
        )

    rows = run_trial(config(300), tmp_path / "full")
    assert rows[-1]["env_step"] == 300 and "init/action_coverage" in rows[0]
    assert math.isfinite(rows[-1]["imagine/return"]) and rows[-1]["train/updates"] == 10  # 5 rounds


# --- learning -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_mb_ppo_learns_pendulum(tmp_path):
    """Random and initial policies score about -1200 to -1500 on Pendulum; the shipped defaults
    pass -600 within 3000 env steps (a swing-up found in imagination)."""
    cfg = build_config(
        {
            "agent": "mb_ppo",
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": 3000,
            "eval_every": 1500,
            "eval_episodes": 5,
            "checkpoint_every": 0,
            "diag_states": 0,
            **PENDULUM,
        }
    )
    rows = run_trial(cfg, tmp_path)
    assert rows[0]["eval/return"] < -900
    assert rows[-1]["eval/return"] >= -600, [r["eval/return"] for r in rows]
