"""Model-based SAC: real and imagined transitions by hand, the real/imagined mix, the soft return,
what each loss and phase updates, config errors, the logged metrics and a learning check (exact
resume: test_agent_contract.py)."""

import math

import numpy as np
import pytest
import torch

from agent import build_config, run_trial
from agent.base import seed_everything
from agent.config import ConfigError
from agent.mb_sac import (
    MBSAC,
    PENDULUM,
    STATS,
    imagined_transitions,
    mixed_batch,
    real_transitions,
    soft_return,
)

# --- pure functions --------------------------------------------------------------------------


def test_real_transitions_stay_inside_episodes_by_hand():
    T = 5
    feat = torch.arange(2 * T, dtype=torch.float32).reshape(2, T, 1)  # f = 5 b + t
    batch = {
        "action": -feat,
        "reward": feat[..., 0] * 10,
        "is_first": torch.tensor([[1, 0, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool),
        "is_terminal": torch.tensor([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool),
    }
    tr = real_transitions(feat, batch)
    # sequence 0: 0->1, (1->2 starts an episode), 2->3, 3->4 (terminal); sequence 1: 4 steps
    assert tr["feat"][:, 0].tolist() == [0, 2, 3, 5, 6, 7, 8]
    assert tr["next_feat"][:, 0].tolist() == [1, 3, 4, 6, 7, 8, 9]
    assert torch.equal(tr["action"], -tr["next_feat"])  # the action stored at t+1 led there
    assert torch.equal(tr["reward"], 10 * tr["next_feat"][:, 0])
    assert tr["done"].tolist() == [0, 0, 1, 0, 0, 0, 0]


def test_imagined_transitions_by_hand():
    H, N = 2, 3
    feat = torch.arange((H + 1) * N, dtype=torch.float32).reshape(H + 1, N, 1)
    action = torch.ones(H, N, 1)
    reward = torch.arange(H * N, dtype=torch.float32).reshape(H, N)
    cont = torch.full((H, N), 0.75)
    tr = imagined_transitions(feat, action, reward, cont)
    assert tr["feat"][:, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert tr["next_feat"][:, 0].tolist() == [3, 4, 5, 6, 7, 8]  # the same trajectory, t + 1
    assert tr["reward"].tolist() == [0, 1, 2, 3, 4, 5]
    assert torch.allclose(tr["done"], torch.full((6,), 0.25))


def pool(value: float, n: int) -> dict:
    return {
        "feat": torch.full((n, 2), value),
        "action": torch.full((n, 1), value),
        "reward": torch.full((n,), value),
        "next_feat": torch.full((n, 2), value),
        "done": torch.zeros(n),
    }


def test_mixed_batch_takes_the_real_share_and_falls_back_to_one_pool():
    rng = np.random.default_rng(0)
    b = mixed_batch(pool(1.0, 5), pool(0.0, 50), 8, 0.25, rng)
    assert b["reward"].tolist() == [1.0] * 2 + [0.0] * 6 and b["feat"].shape == (8, 2)
    assert mixed_batch(pool(1.0, 5), pool(0.0, 50), 10, 0.0, rng)["reward"].sum() == 0
    assert mixed_batch(pool(1.0, 5), pool(0.0, 0), 10, 0.25, rng)["reward"].sum() == 10
    assert mixed_batch(pool(1.0, 0), pool(0.0, 3), 10, 1.0, rng)["reward"].sum() == 0


def test_soft_return_by_hand():
    reward = torch.tensor([[1.0], [2.0]])  # H = 2
    logp = torch.tensor([[-5.0], [-1.0]])  # the first action's log-prob is not in G_0
    weight = torch.tensor([[1.0], [0.5], [0.5]])
    v_last = torch.tensor([10.0])
    g = soft_return(reward, logp, weight, v_last, gamma=0.5, alpha=0.2)
    # 1 + 0.5 * 0.5 * 2 - 0.2 * 0.5 * 0.5 * (-1) + 0.25 * 0.5 * 10
    assert g.item() == pytest.approx(1 + 0.5 + 0.05 + 1.25)


# --- the agent -------------------------------------------------------------------------------

TINY = {
    "world_model.deter": 16,
    "world_model.stoch": 4,
    "world_model.hidden": 16,
    "world_model.seq_len": 16,
    "world_model.batch_size": 4,
    "world_model.eval_horizons": [1, 3],
    "mb_sac.hidden": [16, 16],
    "mb_sac.prefill": 100,
    "mb_sac.explore_steps": 50,
    "mb_sac.model_updates": 2,
    "mb_sac.sac_updates": 3,
    "mb_sac.start_sequences": 4,
    "mb_sac.start_length": 8,
    "mb_sac.batch_size": 32,
    "mb_sac.imagine_horizon": 3,
}


def make_agent(steps: int = 100, **overrides) -> MBSAC:
    cfg = build_config(
        {
            "agent": "mb_sac",
            "total_steps": 1000,
            **TINY,
            **{f"mb_sac.{k}": v for k, v in overrides.items()},
        }
    )
    seed_everything(0)
    agent = MBSAC(cfg)
    agent.initialise()
    agent.train(steps)  # prefill, then one round of model updates and behaviour learning
    return agent


def a_batch(agent: MBSAC, real_ratio: float = 0.5) -> dict:
    batch, posts = agent.encode(4, 8)
    real = real_transitions(agent.model.features(posts), batch)
    imag = agent.imagine(posts.flatten(), 3)
    imagined = imagined_transitions(imag.feat, imag.action, imag.reward, imag.cont)
    return mixed_batch(real, imagined, 32, real_ratio, np.random.default_rng(0))


def grads(loss, params):
    out = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, out)]


def test_each_loss_reaches_only_its_own_parameters():
    agent = make_agent()
    critic_loss, actor_loss, alpha_loss, stats = agent.losses(a_batch(agent))
    total = critic_loss + actor_loss + alpha_loss
    critic, actor = list(agent.critic.parameters()), list(agent.actor.parameters())
    for got, want in zip(grads(total, critic), grads(critic_loss, critic)):
        assert torch.equal(got, want)
    for got, want in zip(grads(total, actor), grads(actor_loss, actor)):
        assert torch.allclose(got, want)
    assert all(g.abs().sum() > 0 for g in grads(actor_loss, actor))
    assert all(g.abs().sum() == 0 for g in grads(total, list(agent.model.parameters())))
    assert stats.shape == (len(STATS),) and not stats.requires_grad


def test_behaviour_phase_trains_sac_on_the_mix_and_leaves_the_model_alone():
    agent = make_agent(sac_updates=4, tau=0.5)
    model = [p.detach().clone() for p in agent.model.parameters()]
    critic = [p.detach().clone() for p in agent.critic.parameters()]
    seen, update = [], agent.update
    agent.update = lambda b: seen.append(b) or update(b)
    updates, log_alpha = agent.updates, agent.log_alpha.item()
    metrics = agent.behaviour_phase()
    assert agent.updates == updates + 4 and len(seen) == 4
    assert all(len(b["reward"]) == 32 for b in seen)
    # with real_ratio 0.1, 3 of 32 rows are real: their done flags are exactly 0 or 1
    done = seen[0]["done"]
    assert torch.all((done[:3] == 0) | (done[:3] == 1))
    assert all(torch.equal(a, b) for a, b in zip(model, agent.model.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(critic, agent.critic.parameters()))
    assert agent.log_alpha.item() != log_alpha
    assert {*STATS, "train/alpha", "imagine/return", "imagine/q", "imagine/value_error"} <= set(
        metrics
    )
    assert all(math.isfinite(float(v)) for v in metrics.values())


def test_fixed_temperature_is_not_learned():
    agent = make_agent(alpha=0.1)
    metrics = agent.behaviour_phase()
    assert agent.log_alpha.item() == 0.0 and metrics["train/alpha"] == pytest.approx(0.1)
    assert "loss/alpha" not in metrics


def test_every_layer_has_a_role_the_init_spec_reaches():
    cfg = build_config(
        {
            "agent": "mb_sac",
            **TINY,
            "init.scheme": "orthogonal",
            "init.scenario": "small_critic_std",
        }
    )
    agent = MBSAC(cfg)
    records = agent.initialise()
    roles = {r["role"] for r in records if not r["layer"].startswith("world_model.")}
    assert roles == {"hidden", "policy_mean", "policy_std", "q"}
    assert agent.critic[-1].weight.abs().max() <= 3e-3  # small Q outputs, both heads
    assert agent.actor.mean.weight.abs().max() > 3e-3  # the mean is orthogonal here
    assert all(
        torch.equal(a, b)
        for a, b in zip(agent.critic.parameters(), agent.critic_target.parameters())
    )


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"mb_sac\.real_ratio"):
        build_config({"agent": "mb_sac", "mb_sac.real_ratio": 1.5})
    with pytest.raises(ConfigError, match=r"mb_sac\.alpha"):
        build_config({"agent": "mb_sac", "mb_sac.alpha": "learned"})
    with pytest.raises(ConfigError, match=r"mb_sac\.activation.*did you mean 'relu'"):
        build_config({"agent": "mb_sac", "mb_sac.activation": "reluu"})
    with pytest.raises(ConfigError, match=r"mb_sac\.utd.*unknown key"):
        build_config({"agent": "mb_sac", "mb_sac.utd": 2})


def test_run_trial_logs_the_behaviour_and_model_metrics(tmp_path):
    """(Exact resume of every registered agent: tests/test_agent_contract.py.)"""

    def config(total_steps):
        return build_config(
            {
                "agent": "mb_sac",
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
        "init/critic_scale",
    ):
        assert any(key in r for r in rows), key


@pytest.mark.slow
def test_mb_sac_learns_pendulum(tmp_path):
    """The initial policy scores about -1000 (random play -1200); MB-SAC with the PENDULUM
    settings passes -400 by 6k env steps (about -130 from 5k on for seed 0)."""
    cfg = build_config(
        {
            "agent": "mb_sac",
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": 6000,
            "eval_every": 1000,
            "eval_episodes": 5,
            **PENDULUM,
        }
    )
    rows = run_trial(cfg, tmp_path)
    assert rows[0]["eval/return"] < -900
    assert rows[-1]["eval/return"] >= -400, [r["eval/return"] for r in rows]
