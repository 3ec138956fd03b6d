"""The body-state probe: closed-form ridge, R^2, and the latents it reads from a world model."""

import numpy as np
import pytest
import torch

from agent.common.probe import (
    cv_alpha,
    latent_features,
    probe_r2,
    probe_scores,
    r2_score,
    ridge_fit,
    ridge_predict,
)
from agent.world_model import WorldModel, WorldModelConfig


def test_r2_hand_computed():
    y = torch.tensor([[1.0], [2.0], [3.0]])
    assert r2_score(y, torch.tensor([[1.0], [2.0], [4.0]])) == pytest.approx(0.5)  # 1 - 1/2
    assert r2_score(y, y) == pytest.approx(1.0)
    assert r2_score(y, torch.full_like(y, 2.0)) == pytest.approx(0.0)  # the mean: R^2 0
    # pooled over dims: SSE 1 + 0, SST 2 + 8
    y2 = torch.tensor([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0]])
    p2 = torch.tensor([[1.0, 0.0], [2.0, 2.0], [4.0, 4.0]])
    assert r2_score(y2, p2) == pytest.approx(1 - 1 / 10)
    assert np.isnan(r2_score(torch.ones(4, 1), torch.zeros(4, 1)))


def test_probe_recovers_a_known_linear_map():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 3, generator=g)
    b = torch.tensor([1.0, -2.0, 0.5])
    x_fit, x_score = torch.randn(400, 12, generator=g) * 3 + 1, torch.randn(300, 12, generator=g)
    y_fit = x_fit @ w + b + 0.01 * torch.randn(400, 3, generator=g)
    y_score = x_score @ w + b
    assert probe_r2(x_fit, y_fit, x_score, y_score, alpha=1e-3) > 0.999
    fit = ridge_fit(x_fit, y_fit, alpha=1e-3)
    # back in raw units: weight / std is the map, and the prediction at x = 0 the offset
    assert torch.allclose((fit["weight"] / fit["std"][:, None]).float(), w, atol=1e-2)
    assert torch.allclose(ridge_predict(fit, torch.zeros(1, 12)).float()[0], b, atol=1e-2)


def test_probe_gives_zero_on_shuffled_targets():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 20, generator=g)
    y = x[:, :3] * 2.0 + 0.1 * torch.randn(4000, 3, generator=g)
    perm = torch.randperm(4000, generator=g)
    y_shuffled = y[perm]  # the pairing is broken: nothing linear is left to find
    r2 = probe_r2(x[:2000], y_shuffled[:2000], x[2000:], y_shuffled[2000:], alpha=1.0)
    assert abs(r2) < 0.03, r2
    assert probe_r2(x[:2000], y[:2000], x[2000:], y[2000:]) > 0.98  # the same data unshuffled


def test_cross_validated_penalty_keeps_an_overfit_probe_near_zero():
    # few samples, many features, no signal: a small fixed penalty overfits (R^2 far below 0 on
    # the scoring set); the penalty chosen by cross-validation within the fit set shrinks the
    # probe towards the constant predictor, so it scores about 0
    g = torch.Generator().manual_seed(2)
    x_fit, x_score = torch.randn(120, 100, generator=g), torch.randn(500, 100, generator=g)
    y_fit, y_score = torch.randn(120, 2, generator=g), torch.randn(500, 2, generator=g)
    assert probe_r2(x_fit, y_fit, x_score, y_score, alpha=1e-1) < -0.5
    assert cv_alpha(x_fit, y_fit) >= 1e3
    assert abs(probe_r2(x_fit, y_fit, x_score, y_score, alpha="cv")) < 0.05


def test_cross_validated_penalty_is_small_for_a_clean_linear_map():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(12, 3, generator=g)
    x_fit, x_score = torch.randn(400, 12, generator=g), torch.randn(300, 12, generator=g)
    y_fit = x_fit @ w + 0.01 * torch.randn(400, 3, generator=g)
    assert cv_alpha(x_fit, y_fit) <= 1.0
    assert probe_r2(x_fit, y_fit, x_score, x_score @ w, alpha="cv") > 0.999


def test_ridge_handles_constant_features_and_rejects_bad_shapes():
    x = torch.cat([torch.randn(50, 3), torch.ones(50, 1)], 1)  # a constant column
    y = x[:, :1] * 3
    assert probe_r2(x, y, x, y, alpha=1e-4) > 0.999
    with pytest.raises(ValueError, match=r"x \[N, F\] and y \[N, D\]"):
        ridge_fit(torch.randn(10, 3), torch.randn(9, 1))
    with pytest.raises(ValueError, match="at least 2 samples"):
        ridge_fit(torch.randn(1, 3), torch.randn(1, 1))


def _batch(B=3, T=12, obs_dim=4, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 7] = True  # an episode starts inside sequence 1
    return {
        "obs": torch.randn(B, T, obs_dim, generator=g),
        "action": torch.randn(B, T, act_dim, generator=g),
        "reward": torch.zeros(B, T),
        "is_first": is_first,
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
        "proprio": {"joint_pos": torch.randn(B, T, 3, generator=g)},
    }


def test_latent_features_windows_respect_episode_starts():
    B, T, burn = 3, 12, 2
    model = WorldModel(4, 2, WorldModelConfig(deter=16, stoch=4, hidden=16))
    feats = latent_features(model, _batch(B, T), horizons=(1, 5), burn_in=burn)
    x, y = feats["post"]
    assert x.shape == (B * (T - burn), model.rssm.feat_dim)
    assert y["joint_pos"].shape[0] == x.shape[0]
    for h in (1, 5):
        # starts t in [burn, T - 1) with t + h < T and no episode start in (t, t + h]
        expected = 0
        for b in range(B):
            for t in range(burn, T - 1):
                if t + h < T and not (b == 1 and t < 7 <= t + h):
                    expected += 1
        x, y = feats[f"prior_h{h}"]
        assert x.shape[0] == expected == y["joint_pos"].shape[0], (h, x.shape, expected)
    # the prior at h = 1 from the posterior at t is probed against the body state at t + 1
    batch = _batch(B, T)
    feats = latent_features(model, batch, horizons=(1,), burn_in=burn)
    first_target = feats["prior_h1"][1]["joint_pos"][0]
    assert torch.equal(first_target, batch["proprio"]["joint_pos"][0, burn + 1])


def test_probe_scores_keys_for_every_latent_and_quantity():
    model = WorldModel(4, 2, WorldModelConfig(deter=16, stoch=4, hidden=16))
    out = probe_scores(model, _batch(seed=1), _batch(seed=2), horizons=(1, 5), burn_in=2)
    kinds = ("post", "prior_h1", "prior_h5")
    assert set(out) == {f"model/probe/{k}/joint_pos" for k in kinds}
    assert all(np.isfinite(v) for v in out.values())


def test_tiled_sequences_cover_the_held_out_steps_once_each():
    from agent.common.sequence_replay import SequenceReplay

    replay = SequenceReplay(100, 1, 1, {}, seed=0)
    for t in range(70):
        replay.add(np.array([float(t)]), np.zeros(1), 0.0, t % 30 == 0, False, {})
    tiles = replay.sample(8, 10, tiled=True)  # 70 steps: 7 sequences end to end
    steps = tiles["obs"][..., 0]
    assert steps.shape == (7, 10)
    assert steps.flatten().tolist() == [float(t) for t in range(70)]  # every step once, in order
    thinned = replay.sample(3, 10, tiled=True)["obs"][..., 0]
    assert thinned[:, 0].tolist() == [0.0, 30.0, 60.0]  # evenly spread over the stored steps
