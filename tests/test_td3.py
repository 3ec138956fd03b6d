"""TD3: the pure losses on hand-computed values, the config's errors, the update's schedule (delayed
actor, Polyak targets), warm-up and exploration, init roles and diagnostics, and learning Pendulum.
Determinism and exact resume: tests/test_agent_contract.py (every registered agent)."""

import numpy as np
import pytest
import torch

from agent import build_config, run_trial
from agent.base import seed_everything
from agent.config import ConfigError
from agent.td3 import (
    STATS,
    TD3,
    actor_loss,
    critic_loss,
    exploration_action,
    smoothed_target_action,
    td_target,
)

SMALL = {"td3.hidden": [32, 32], "td3.batch_size": 32, "td3.learning_starts": 100}


def config(**extra):
    return build_config(
        {
            "agent": "td3",
            "env": "Pendulum-v1",
            "seed": 3,
            "total_steps": 600,
            "eval_every": 100,
            "eval_episodes": 2,
            "diag_states": 50,
            **SMALL,
            **extra,
        }
    )


def small_td3(**extra) -> TD3:
    seed_everything(0)
    agent = TD3(config(**extra))
    agent.initialise()
    agent.train(90)  # fills the buffer with warm-up actions, no updates yet
    return agent


# --- the pure functions ---------------------------------------------------------------------------


def test_smoothed_target_action_clips_the_noise_then_the_action():
    mu = torch.tensor([[0.0, 0.9], [-0.5, -0.95]])
    eps = torch.tensor([[1.0, 1.0], [-10.0, 0.5]])
    got = smoothed_target_action(mu, eps, noise=0.2, noise_clip=0.5)
    # 0 + 0.2; 0.9 + 0.2 -> 1 (box); -0.5 + clip(-2, -0.5) = -1; -0.95 + 0.1 = -0.85
    assert torch.allclose(got, torch.tensor([[0.2, 1.0], [-1.0, -0.85]]))
    assert torch.equal(smoothed_target_action(mu, eps, 0.0, 0.5), mu)


def test_td_target_takes_the_smaller_head_and_stops_at_termination():
    q_next = torch.tensor([[1.0, 5.0, -2.0], [3.0, 4.0, -1.0]])  # [2, B]
    got = td_target(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 1.0]), q_next, 0.5)
    assert torch.allclose(got, torch.tensor([1.5, 2.0, 2.0]))


def test_critic_loss_sums_the_heads_mean_squared_errors_and_actor_loss_is_minus_q():
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0]], requires_grad=True)
    target = torch.tensor([0.0, 2.0], requires_grad=True)
    loss = critic_loss(q, target)
    assert loss.item() == pytest.approx((1 + 0) / 2 + (0 + 4) / 2)
    loss.backward()
    assert target.grad is None  # the target is a constant
    assert torch.allclose(q.grad, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert actor_loss(torch.tensor([1.0, 3.0])).item() == -2.0


def test_exploration_action_adds_scaled_noise_inside_the_box():
    mu, eps = np.array([[0.5, -0.95, 0.0]]), np.array([[1.0, -1.0, 0.25]])
    got = exploration_action(mu, eps, 0.1)
    assert got.dtype == np.float32
    assert np.allclose(got, [[0.6, -1.0, 0.025]])


# --- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("td3.policy_delay", 0, "greater than or equal to 1"),
        ("td3.tau", 1.5, "less than or equal to 1"),
        ("td3.exploration_noise", -0.1, "greater than or equal to 0"),
        ("td3.activation", "rellu", "relu"),
        ("td3.warmup", "random", "'uniform' or 'policy'"),
        ("td3.target_noise_clip", 0.0, "target_noise: 0"),
        ("td3.policy_dealy", 2, "policy_delay"),
    ],
)
def test_bad_config_values_name_the_key(key, value, needle):
    with pytest.raises(ConfigError) as err:
        build_config({"agent": "td3", key: value})
    assert any(k == key and needle in m for k, m in err.value.problems), err.value.problems


# --- networks and init ----------------------------------------------------------------------------


def test_roles_and_scenarios_on_a_deterministic_policy():
    def init(scenario):
        seed_everything(0)
        agent = TD3(config(**{"init.scheme": "orthogonal", "init.scenario": scenario}))
        records = {r["layer"]: r for r in agent.initialise()}
        return agent, records

    agent, rec = init("small_outputs")
    assert rec["actor.net.4"]["role"] == "policy_mean" and rec["critic.4"]["role"] == "q"
    assert {r["role"] for r in rec.values()} == {"hidden", "policy_mean", "q"}
    assert agent.actor.net[-1].weight.abs().max() <= 3e-3  # the small init
    assert agent.critic[-1].weight.abs().max() <= 3e-3
    # targets start as copies of the initialised networks
    for t, o in zip(agent.actor_target.parameters(), agent.actor.parameters()):
        assert torch.equal(t, o)
    _, critic_only = init("small_critic_std")
    assert critic_only["actor.net.4"]["scheme"] == "orthogonal"
    assert critic_only["critic.4"]["scheme"] == "small_uniform"
    # without a policy_std layer two pairs of scenarios give the very same networks
    for a, b in (("small_std", "no_small"), ("small_mean_critic", "small_outputs")):
        (x, _), (y, _) = init(a), init(b)
        for p, q in zip(
            [*x.actor.parameters(), *x.critic.parameters()],
            [*y.actor.parameters(), *y.critic.parameters()],
        ):
            assert torch.equal(p, q)


def test_init_probe_samples_the_actor_plus_exploration_noise():
    agent = small_td3(**{"td3.exploration_noise": 0.0})
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    probe = agent.init_probe(obs)
    assert np.allclose(probe["actions"], agent.act(obs, None)[0])  # no noise: the actor itself
    agent.c.exploration_noise = 0.5
    noisy = agent.init_probe(obs)
    spread = noisy["actions"] - probe["actions"]
    assert 0.3 < spread.std() < 0.6 and noisy["std"] == 0.5 and noisy["entropy"] is None
    assert noisy["mean_abs_mean"] == pytest.approx(np.abs(probe["actions"]).mean(), rel=1e-5)
    assert noisy["critic_scale"] > 0


def test_init_diagnostics_show_a_saturated_actor(tmp_path):
    """A large-gain actor output pins tanh at the bounds: the clip fraction says so."""

    def diag(**extra):
        cfg = config(total_steps=100, **{"init.scenario": "no_small", **extra})
        rows = run_trial(cfg, tmp_path / str(len(list(tmp_path.iterdir()))))
        return rows[0]

    calm = diag()
    wild = diag(**{"init.gains.policy_mean": 50.0, "init.scheme": "orthogonal"})
    assert calm["init/action_clip_frac"] < 0.05 and calm["init/std"] == 0.1
    assert wild["init/action_clip_frac"] > 0.5 and wild["init/mean_abs_mean"] > 0.9
    assert (
        wild["init/action_coverage"] < calm["init/action_coverage"]
        or wild["init/action_clip_frac"] > calm["init/action_clip_frac"]
    )
    assert "init/entropy" not in calm


# --- acting and the update ------------------------------------------------------------------------


def test_warmup_is_uniform_and_independent_of_the_policy():
    a, b = small_td3(), small_td3(**{"init.scheme": "orthogonal", "init.scenario": "no_small"})
    warm = a.buffer.action[:90]
    assert np.array_equal(warm, b.buffer.action[:90])  # the init does not act yet
    assert warm.min() < -0.8 and warm.max() > 0.8 and abs(warm.mean()) < 0.2
    # with warmup: policy the initial actor acts from step 0 (plus its noise)
    c = small_td3(**{"td3.warmup": "policy", "td3.exploration_noise": 0.0})
    assert np.allclose(c.buffer.action[:90], c.act(c.buffer.obs[:90], None)[0], atol=1e-6)


def test_update_delays_the_actor_and_the_targets():
    agent = small_td3(**{"td3.policy_delay": 3})
    params = lambda m: [p.detach().clone() for p in m.parameters()]  # noqa: E731
    for step in range(1, 7):
        actor, critic = params(agent.actor), params(agent.critic)
        t_actor, t_critic = params(agent.actor_target), params(agent.critic_target)
        stats = agent.update()
        assert stats.shape == (len(STATS),) and agent.updates == step
        assert all(not torch.equal(a, b) for a, b in zip(critic, agent.critic.parameters()))
        delayed = step % 3 == 0
        assert delayed == (not torch.isnan(stats[2]))
        moved = [not torch.equal(a, b) for a, b in zip(actor, agent.actor.parameters())]
        assert all(moved) if delayed else not any(moved)
        for old, new, online in zip(
            t_actor + t_critic,
            [*agent.actor_target.parameters(), *agent.critic_target.parameters()],
            [*agent.actor.parameters(), *agent.critic.parameters()],
        ):
            want = old + agent.c.tau * (online - old) if delayed else old
            assert torch.allclose(new, want, atol=1e-7)


def test_actor_step_follows_q1_and_leaves_the_critic_alone():
    agent = small_td3(**{"init.scenario": "no_small"})  # gradients well above Adam's eps
    obs = agent.buffer.sample(32)[0]
    critic = [p.detach().clone() for p in agent.critic.parameters()]
    actor0 = [p.detach().clone() for p in agent.actor.parameters()]
    lr = agent.c.actor_lr
    # the gradient of -mean Q_1(s, mu(s)) wrt the actor, recomputed by hand
    loss = -agent._q(agent.critic, obs, agent.actor(obs))[0].mean()
    want = torch.autograd.grad(loss, list(agent.actor.parameters()))
    agent.actor_step(obs)
    for p, g in zip(agent.actor.parameters(), want):
        assert torch.allclose(p.grad, g, atol=1e-6)
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(torch.equal(a, b) for a, b in zip(critic, agent.critic.parameters()))
    # Adam's first step moves each weight by ~lr against its gradient's sign
    checked = 0
    for old, new, g in zip(actor0, agent.actor.parameters(), want):
        mask = g.abs() > 1e-6
        step = (new - old)[mask]
        assert torch.all(step * g[mask] < 0) and torch.all(step.abs() <= lr * 1.01)
        checked += int(mask.sum())
    assert checked > 500  # most of the 1249 weights (dead ReLUs give none)


def test_train_reports_means_over_updates_and_actor_steps():
    agent = small_td3()
    seen, update = [], agent.update
    agent.update = lambda: seen.append(update()) or seen[-1]
    metrics = agent.train(150)
    stats = torch.stack(seen)
    assert agent.updates == 51 and len(seen) == 51  # one per step from step 100 on
    assert metrics["loss/critic"] == pytest.approx(stats[:, 0].mean().item(), rel=1e-5)
    assert metrics["loss/actor"] == pytest.approx(stats[1::2, 2].mean().item(), rel=1e-5)
    assert metrics["train/updates"] == 51.0


# --- learning -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_td3_learns_pendulum(tmp_path):
    """Random play scores about -1200; TD3 with its default (tuned) settings passes -400 within
    6k steps (the full bar, >= -250 at 10k for 4 of 5 seeds, is bench/learning.py --agents td3;
    this seed's run there is at -133 at 6k on these 5 eval episodes, -161 on its 10)."""
    cfg = build_config(
        {
            "agent": "td3",
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": 6000,
            "eval_every": 3000,
            "eval_episodes": 5,
            "checkpoint_every": 0,
        }
    )
    rows = run_trial(cfg, tmp_path)
    assert rows[0]["eval/return"] < -700
    assert rows[-1]["eval/return"] >= -400, [r["eval/return"] for r in rows]
