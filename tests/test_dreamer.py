"""Dreamer: the actor-critic maths by hand, gradients through the model, config errors,
the metrics run_trial logs, and a learning check (exact resume: test_agent_contract.py)."""

import math

import pytest
import torch

from agent import build_config, run_trial
from agent.base import seed_everything
from agent.config import ConfigError
from agent.dreamer import (
    PENDULUM,
    Dreamer,
    actor_loss,
    critic_loss,
    ema_range,
    percentile_range,
    return_scale,
)
from agent.losses import polyak_

# --- pure maths ------------------------------------------------------------------------------


def test_percentile_range_by_hand():
    x = torch.arange(101.0).reshape(1, 101)  # quantile q of 0..100 is 100 q
    lo, hi = percentile_range(x)
    assert lo.item() == pytest.approx(5.0) and hi.item() == pytest.approx(95.0)
    lo, hi = percentile_range(x.reshape(101, 1) * 2, 0.1, 0.5)
    assert lo.item() == pytest.approx(20.0) and hi.item() == pytest.approx(100.0)


def test_ema_range_starts_at_the_batch_then_decays():
    x = torch.arange(101.0)
    state = ema_range(None, x, decay=0.9)
    assert torch.allclose(state, torch.tensor([5.0, 95.0]))
    state = ema_range(state, x + 100.0, decay=0.9)  # percentiles 105 and 195
    assert torch.allclose(state, torch.tensor([0.9 * 5 + 0.1 * 105, 0.9 * 95 + 0.1 * 195]))
    assert return_scale(state).item() == pytest.approx(90.0)
    # outliers beyond the percentiles do not move the range
    spiky = x.clone()
    spiky[0], spiky[-1] = -1e6, 1e6
    assert torch.allclose(ema_range(None, spiky, 0.9), torch.tensor([5.0, 95.0]))


def test_return_scale_never_enlarges_small_returns():
    assert return_scale(torch.tensor([0.2, 0.5])).item() == 1.0
    assert return_scale(torch.tensor([0.2, 0.5]), limit=0.1).item() == pytest.approx(0.3)
    assert return_scale(torch.tensor([-300.0, -20.0])).item() == 280.0


def test_polyak_moves_target_by_tau_and_tau_one_copies():
    target, online = [torch.zeros(3), torch.ones(2)], [torch.ones(3), torch.full((2,), 3.0)]
    polyak_(target, online, 0.25)
    assert torch.allclose(target[0], torch.full((3,), 0.25))
    assert torch.allclose(target[1], torch.full((2,), 1.5))
    polyak_(target, online, 1.0)
    assert all(torch.equal(t, o) for t, o in zip(target, online))


def test_actor_loss_values_by_hand():
    G = torch.tensor([[3.0], [1.0]])
    V = torch.tensor([[1.0], [2.0]])
    logp = torch.tensor([[-1.0], [0.5]])
    w = torch.tensor([[1.0], [0.5]])
    S = torch.tensor(2.0)
    # A = [1, -0.5]; dynamics: -mean(w (A - eta logp)) with eta = 0.1
    dyn = actor_loss(G, V, logp, w, S, "dynamics", 0.1)
    assert dyn.item() == pytest.approx(-((1.0 + 0.1) + 0.5 * (-0.5 - 0.05)) / 2)
    rf = actor_loss(G, V, logp, w, S, "reinforce", 0.1)
    assert rf.item() == pytest.approx(-((-1.0 + 0.1) + 0.5 * (-0.25 - 0.05)) / 2)
    with pytest.raises(ValueError, match="actor_grad"):
        actor_loss(G, V, logp, w, S, "straight", 0.1)


def test_actor_loss_gradients_flow_where_each_estimator_says():
    G = torch.tensor([[3.0], [1.0]], requires_grad=True)
    V = torch.tensor([[1.0], [2.0]], requires_grad=True)
    logp = torch.tensor([[-1.0], [0.5]], requires_grad=True)
    w = torch.tensor([[1.0], [0.5]], requires_grad=True)
    S = torch.tensor(2.0, requires_grad=True)
    dyn = actor_loss(G, V, logp, w, S, "dynamics", 0.0)
    gG, gV, glogp, gw, gS = torch.autograd.grad(dyn, [G, V, logp, w, S], allow_unused=True)
    assert torch.allclose(gG, -w.detach() / (2 * 2.0))  # d/dG of -mean(w (G - V) / S)
    assert gV is None and gw is None and gS is None  # baseline, weights and scale are constants
    assert torch.all(glogp == 0)  # eta = 0: no score-function term
    rf = actor_loss(G, V, logp, w, S, "reinforce", 0.0)
    gG, glogp = torch.autograd.grad(rf, [G, logp], allow_unused=True)
    assert gG is None  # REINFORCE does not differentiate the return
    assert torch.allclose(glogp, -w.detach() * torch.tensor([[1.0], [-0.5]]) / 2)


def test_critic_loss_by_hand_and_targets_are_constants():
    V = torch.tensor([[1.0], [2.0]], requires_grad=True)
    G = torch.tensor([[3.0], [2.0]], requires_grad=True)
    w = torch.tensor([[0.5], [1.0]])
    loss = critic_loss(V, G, w)
    assert loss.item() == pytest.approx(0.5 * (0.5 * 4.0 + 0.0) / 2)
    gV, gG = torch.autograd.grad(loss, [V, G], allow_unused=True)
    assert gG is None and torch.allclose(gV, torch.tensor([[-0.5], [0.0]]))  # w (V - G) / N


# --- the agent -------------------------------------------------------------------------------

TINY = {
    "world_model.deter": 16,
    "world_model.stoch": 4,
    "world_model.hidden": 16,
    "world_model.seq_len": 16,
    "world_model.batch_size": 4,
    "world_model.eval_horizons": [1, 3],
    "dreamer.hidden": [16, 16],
    "dreamer.prefill": 100,
    "dreamer.explore_steps": 50,
    "dreamer.model_updates": 2,
    "dreamer.behaviour_updates": 2,
    "dreamer.start_sequences": 4,
    "dreamer.start_length": 8,
    "dreamer.imagine_batch": 16,
    "dreamer.imagine_horizon": 5,
}


def make_agent(steps: int = 100, **overrides) -> Dreamer:
    cfg = build_config(
        {
            "agent": "dreamer",
            "total_steps": 1000,
            **TINY,
            **{f"dreamer.{k}": v for k, v in overrides.items()},
        }
    )
    seed_everything(0)
    agent = Dreamer(cfg)
    agent.initialise()
    agent.train(steps)  # prefill, then one round of model updates and behaviour learning
    return agent


def action_inputs(agent: Dreamer, start):
    """(L_pi, the inputs [state, action] the dynamics were fed at each imagined step)."""
    fed = []
    hook = agent.model.rssm.img_in.register_forward_hook(lambda m, i, o: fed.append(i[0]))
    try:
        loss_pi, _, _, _ = agent.losses(start)
    finally:
        hook.remove()
    return loss_pi, fed


def test_dynamics_backprop_reaches_the_actor_through_the_imagined_states():
    agent = make_agent(entropy_coef=0.0)  # no entropy term: the only path is through the model
    loss_pi, fed = action_inputs(agent, agent.start_states(4, 8))
    assert len(fed) == agent.c.imagine_horizon
    grads = torch.autograd.grad(loss_pi, fed, retain_graph=True)
    act_dim = agent.act_dim
    # every action fed to the dynamics (last columns of the input) gets a gradient from L_pi
    assert all(g[:, -act_dim:].abs().sum() > 0 for g in grads)
    actor = list(agent.actor.parameters())
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(loss_pi, actor, retain_graph=True))
    model_params = list(agent.model.parameters())  # frozen during the rollout
    assert all(p.requires_grad for p in model_params)  # unfrozen afterwards
    before = [None if p.grad is None else p.grad.clone() for p in model_params]
    loss_pi.backward()  # leaves the model's gradients (of its last update) as they were
    for old, p in zip(before, model_params):
        assert (old is None and p.grad is None) or torch.equal(old, p.grad)


def test_reinforce_does_not_backprop_through_the_model():
    agent = make_agent(actor_grad="reinforce", entropy_coef=0.0)
    loss_pi, fed = action_inputs(agent, agent.start_states(4, 8))
    assert len(fed) == agent.c.imagine_horizon
    assert not any(x.requires_grad for x in fed)  # the imagined trajectory is data
    actor = list(agent.actor.parameters())
    grads = torch.autograd.grad(loss_pi, actor + list(agent.model.parameters()), allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads[: len(actor)])  # score function
    assert all(g is None for g in grads[len(actor) :])


def test_behaviour_phase_moves_actor_critic_and_slow_target_but_not_the_model():
    agent = make_agent(behaviour_updates=1, target_tau=0.25)
    model = [p.detach().clone() for p in agent.model.parameters()]
    actor = [p.detach().clone() for p in agent.actor.parameters()]
    target = [p.detach().clone() for p in agent.critic_target.parameters()]
    updates = agent.updates
    metrics = agent.behaviour_phase()
    assert agent.updates == updates + 1
    assert all(torch.equal(a, b) for a, b in zip(model, agent.model.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(actor, agent.actor.parameters()))
    for old, new, online in zip(
        target, agent.critic_target.parameters(), agent.critic.parameters()
    ):
        assert torch.allclose(new, old + 0.25 * (online - old), atol=1e-6)
    assert {
        "loss/actor",
        "loss/critic",
        "train/entropy",
        "imagine/return",
        "imagine/value_error",
        "imagine/return_scale",
    } <= set(metrics)
    assert all(math.isfinite(float(v)) for v in metrics.values())


@pytest.mark.parametrize("estimator", ["lambda_return", "gae", "td0", "monte_carlo"])
def test_every_return_estimator_trains(estimator):
    agent = make_agent(return_estimator=estimator, return_norm=False)
    _, loss_v, metrics, imag = agent.losses(agent.start_states(4, 8))
    assert math.isfinite(loss_v.item()) and metrics["imagine/return_scale"] == 1.0
    with torch.no_grad():  # the critic's targets follow the estimator
        targets, _ = agent.returns(imag, agent.critic_target(imag.feat).squeeze(-1))
    assert metrics["imagine/target"] == pytest.approx(targets.mean().item(), rel=1e-5)


def test_return_normaliser_tracks_the_imagined_returns():
    agent = make_agent(norm_decay=0.0)  # the EMA is the last batch's range
    _, _, metrics, imag = agent.losses(agent.start_states(4, 8))
    with torch.no_grad():
        targets, _ = agent.returns(imag, agent.critic_target(imag.feat).squeeze(-1))
    lo, hi = percentile_range(targets)
    assert torch.allclose(agent.norm_state, torch.stack([lo, hi]))
    assert metrics["imagine/return_scale"] == pytest.approx(max(1.0, (hi - lo).item()))


def test_every_layer_has_a_role_the_init_spec_reaches():
    cfg = build_config(
        {"agent": "dreamer", **TINY, "init.scheme": "orthogonal", "init.scenario": "small_outputs"}
    )
    agent = Dreamer(cfg)
    records = agent.initialise()
    roles = {r["role"] for r in records if not r["layer"].startswith("world_model.")}
    assert roles == {"hidden", "policy_mean", "policy_std", "value"}
    assert agent.critic[-1].weight.abs().max() <= 3e-3  # small critic output
    assert agent.actor.mean.weight.abs().max() <= 3e-3
    assert all(
        torch.equal(a, b)
        for a, b in zip(agent.critic.parameters(), agent.critic_target.parameters())
    )


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"dreamer\.actor_grad"):
        build_config({"agent": "dreamer", "dreamer.actor_grad": "straight_through"})
    with pytest.raises(ConfigError, match=r"dreamer\.return_estimator"):
        build_config({"agent": "dreamer", "dreamer.return_estimator": "nstep"})
    with pytest.raises(ConfigError, match=r"dreamer\.norm_high.*must exceed"):
        build_config({"agent": "dreamer", "dreamer.norm_low": 0.5, "dreamer.norm_high": 0.5})
    with pytest.raises(ConfigError, match=r"dreamer\.horizon.*unknown key"):
        build_config({"agent": "dreamer", "dreamer.horizon": 5})


def test_run_trial_logs_the_behaviour_and_model_metrics(tmp_path):
    """(Exact resume of every registered agent: tests/test_agent_contract.py.)"""

    def config(total_steps):
        return build_config(
            {
                "agent": "dreamer",
                "total_steps": total_steps,
                "eval_every": 100,
                "eval_episodes": 1,
                "diag_states": 50,
                **TINY,
            }
        )

    rows = run_trial(config(300), tmp_path / "full")
    assert rows[-1]["env_step"] == 300
    for key in (
        "loss/actor",
        "loss/critic",
        "train/entropy",
        "imagine/return",
        "imagine/value_error",
        "model/kl",
        "loss/model",
        "init/critic_scale",
    ):
        assert any(key in r for r in rows), key


@pytest.mark.slow
def test_dreamer_learns_pendulum(tmp_path):
    """The initial policy scores about -1000 (random play -1200); Dreamer with the PENDULUM
    settings passes -400 by 5k env steps (about -100 from 4k on for seed 0)."""
    cfg = build_config(
        {
            "agent": "dreamer",
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": 5000,
            "eval_every": 1000,
            "eval_episodes": 5,
            **PENDULUM,
        }
    )
    rows = run_trial(cfg, tmp_path)
    assert rows[0]["eval/return"] < -900
    assert rows[-1]["eval/return"] >= -400, [r["eval/return"] for r in rows]
