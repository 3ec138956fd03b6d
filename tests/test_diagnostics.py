"""Init exploration diagnostics: pure functions and the step-0 probe of a real agent."""

import numpy as np
import pytest
import torch

from agent import build_config
from agent.base import seed_everything
from agent.sac import SAC
from agent.trial import init_diagnostics
from init_schemes import action_diagnostics, action_histogram, clip_fraction, coverage


def test_histogram_coverage_and_clip_on_hand_built_actions():
    # 10 actions in dim 0: 5 at the upper bound, 5 spread over 5 distinct bins
    a = np.array([[1.0]] * 5 + [[-0.95], [-0.55], [-0.05], [0.25], [0.65]])
    edges, mass = action_histogram(a)
    assert edges.shape == (21,) and mass.shape == (1, 20)
    assert mass.sum() == pytest.approx(1.0)
    assert mass[0, 19] == pytest.approx(0.5)  # the bound lands in the last bin
    assert mass[0, 0] == pytest.approx(0.1)  # -0.95 in [-1, -0.9)
    assert coverage(mass)[0] == pytest.approx(6 / 20)
    assert clip_fraction(a)[0] == pytest.approx(0.5)
    # within 1% of the range (0.02) counts as clipped, 0.97 does not
    assert clip_fraction(np.array([[0.985], [-0.99], [0.97]]))[0] == pytest.approx(2 / 3)


def test_uniform_actions_cover_everything_and_rarely_clip():
    a = np.random.default_rng(0).uniform(-1, 1, size=(20000, 2))
    d = action_diagnostics(a)
    assert np.allclose(d["coverage"], 1.0)
    assert np.allclose(d["clip_frac"], 0.02, atol=0.004)  # 1% of the range at each end


def _agent(scheme="fanin", scenario="small_outputs"):
    cfg = build_config(
        {
            "agent": "sac",
            "env": "Pendulum-v1",
            "init.scheme": scheme,
            "init.scenario": scenario,
            "total_steps": 100,
            "seed": 0,
        }
    )
    seed_everything(0)
    agent = SAC(cfg)
    agent.initialise()
    return agent


def test_scaled_up_output_layer_clips_and_covers_less():
    small = init_diagnostics(_agent(), 500, seed=0)
    big = _agent(scenario="no_small")
    with torch.no_grad():
        big.actor.mean.weight.mul_(100.0)
        big.actor.mean.bias.mul_(100.0)
    big_d = init_diagnostics(big, 500, seed=0)
    assert np.mean(big_d["clip_frac"]) > 0.8
    assert np.mean(small["clip_frac"]) < 0.1
    assert np.mean(big_d["coverage"]) < np.mean(small["coverage"])
    assert big_d["mean_abs_mean"] > 0.9 > small["mean_abs_mean"]


def test_probe_numbers_match_a_direct_computation():
    agent = _agent(scheme="orthogonal", scenario="no_small")
    obs = np.random.default_rng(1).normal(size=(300, 3)).astype(np.float32)
    torch.manual_seed(5)
    probe = agent.init_probe(obs)
    torch.manual_seed(5)
    with torch.no_grad():
        h = agent.actor.trunk(torch.from_numpy(obs))
        mean = agent.actor.mean(h)
        log_std = agent.actor.log_std(h).clamp(-20, 2)
        u = mean + torch.randn_like(mean) * log_std.exp()
        actions = torch.tanh(u)
    assert np.allclose(probe["actions"], actions.numpy(), atol=1e-6)
    assert probe["std"] == pytest.approx(log_std.exp().mean().item(), rel=1e-5)
    assert probe["mean_abs_mean"] == pytest.approx(torch.tanh(mean).abs().mean().item(), rel=1e-5)
    d = action_diagnostics(probe["actions"])
    expected_clip = (actions.abs() >= 0.98).float().mean().item()
    assert d["clip_frac"][0] == pytest.approx(expected_clip)
