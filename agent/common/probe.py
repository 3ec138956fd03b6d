"""Body-state probe: how well a world model's latent features encode the robot's true body state.

A linear (ridge) probe maps features f [N, F] to a body quantity y [N, D] (qpos, qvel, end-effector
positions and velocities: the env entry's proprio functions, read from the simulator). It is
fitted in closed form on one set of held-out sequences and scored on another:

    standardise f with the fit set's mean and std (a constant feature gets std 1)
    W = (X^T X + alpha I)^-1 X^T (Y - mean Y),   X the standardised fit features
    alpha: given, or ("cv", world_model.probe_alpha: cv) the one of CV_ALPHAS with
           the lowest 5-fold validation error within the fit set (folds of whole sequences)
    R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean_score y)^2   pooled over the D dims

so R^2 = 1 is a perfect linear read-out, 0 the scoring set's own mean (a constant predictor),
below 0 worse than that. The latents probed (:func:`probe_scores`):

    post        the filtered posterior (mode) at each step t >= ``burn_in`` of a sequence
    prior_h<h>  the prior rolled h steps open loop (real actions, no observations) from the
                posterior at t, probed against the body state at t + h (no episode start
                in between)

Every world model is probed the same way whether or not it has proprio heads: the probe never
reads the heads, only the features [h, z].
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor


def ridge_fit(x: Tensor, y: Tensor, alpha: float = 1.0) -> dict[str, Tensor]:
    """Closed-form ridge regression of y [N, D] on x [N, F] (standardised; intercept not
    penalised). Returns the fit {mean, std, weight [F, D], bias [D]} in float64."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"ridge_fit needs x [N, F] and y [N, D], got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"ridge_fit needs at least 2 samples, got {x.shape[0]}")
    x, y = x.double(), y.double()
    mean, std = x.mean(0), x.std(0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    xs = (x - mean) / std
    y_mean = y.mean(0)
    gram = xs.T @ xs + alpha * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    weight = torch.linalg.solve(gram, xs.T @ (y - y_mean))
    return {"mean": mean, "std": std, "weight": weight, "bias": y_mean}


def ridge_predict(fit: dict[str, Tensor], x: Tensor) -> Tensor:
    """Predictions [N, D] of a :func:`ridge_fit` on x [N, F] (float64)."""
    return ((x.double() - fit["mean"]) / fit["std"]) @ fit["weight"] + fit["bias"]


def r2_score(y: Tensor, pred: Tensor) -> float:
    """R^2 pooled over dims: 1 - sum (y - pred)^2 / sum (y - mean y)^2 for y, pred [N, D]
    (NaN if y is constant)."""
    y, pred = y.double(), pred.double()
    sst = (y - y.mean(0)).pow(2).sum()
    if sst <= 0:
        return float("nan")
    return float(1.0 - (y - pred).pow(2).sum() / sst)


#: the penalties ``alpha: "cv"`` chooses from (standardised features, so comparable across
#: models): from nearly least squares to nearly the constant predictor
CV_ALPHAS = (1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5)


def cv_alpha(x: Tensor, y: Tensor, alphas: tuple[float, ...] = CV_ALPHAS, folds: int = 5) -> float:
    """The ridge penalty with the lowest K-fold validation error on (x, y).

    The folds are contiguous blocks of rows: rows come sequence by sequence, so a fold holds
    whole sequences and a neighbouring step of the same sequence never validates a fit on its
    twin. Ties go to the larger penalty."""
    n = x.shape[0]
    folds = min(folds, n // 2)
    if folds < 2:
        return max(alphas)
    edges = torch.linspace(0, n, folds + 1).long().tolist()
    errors = torch.zeros(len(alphas), dtype=torch.float64)
    for lo, hi in itertools.pairwise(edges):
        keep = torch.ones(n, dtype=torch.bool, device=x.device)
        keep[lo:hi] = False
        for i, alpha in enumerate(alphas):
            fit = ridge_fit(x[keep], y[keep], alpha)
            errors[i] += (ridge_predict(fit, x[lo:hi]) - y[lo:hi].double()).pow(2).sum().cpu()
    best = errors.min()
    return max(a for a, e in zip(alphas, errors.tolist()) if e <= best * (1 + 1e-9))


def probe_r2(
    x_fit: Tensor, y_fit: Tensor, x_score: Tensor, y_score: Tensor, alpha: float | str = 1.0
) -> float:
    """R^2 on (x_score, y_score) of a ridge probe fitted on (x_fit, y_fit); ``alpha: "cv"``
    chooses the penalty by cross-validation on the fit set alone (:func:`cv_alpha`)."""
    if alpha == "cv":
        alpha = cv_alpha(x_fit, y_fit)
    return r2_score(y_score, ridge_predict(ridge_fit(x_fit, y_fit, float(alpha)), x_score))


@torch.no_grad()
def latent_features(
    model: Any, batch: dict[str, Any], horizons: list[int] | tuple[int, ...], burn_in: int = 5
) -> dict[str, tuple[Tensor, dict[str, Tensor]]]:
    """Features and true body state per latent kind, from real sequences.

    ``model``: a ``WorldModel``; ``batch``: a replay batch with ``proprio`` {q: [B, T, D]}.
    Returns {"post": (feat [N, F], {q: [N, D]}), "prior_h<h>": ...} (see the module docstring).
    """
    action, is_first = batch["action"], batch["is_first"]
    B, T = is_first.shape
    if burn_in >= T:
        raise ValueError(f"burn_in {burn_in} leaves nothing of sequences of length {T}")
    posts, _ = model.observe(model.batch_obs(batch), action, is_first, sample=False)
    body = batch["proprio"]
    out = {
        "post": (
            model.features(posts)[:, burn_in:].reshape(-1, model.rssm.feat_dim),
            {k: v[:, burn_in:].reshape(B * (T - burn_in), -1) for k, v in body.items()},
        )
    }
    H = max(horizons)
    starts = posts[:, burn_in : T - 1]  # start states t in [burn_in, T - 1)
    n = T - 1 - burn_in
    if n <= 0:
        return out
    state = starts.flatten()
    idx = torch.arange(burn_in, T - 1, device=is_first.device)  # [n]
    new_episode = torch.zeros(B, n, dtype=torch.bool, device=is_first.device)
    for h in range(1, H + 1):
        tgt = idx + h  # [n]
        ok = tgt < T
        tgt_c = tgt.clamp_max(T - 1)
        new_episode = new_episode | is_first[:, tgt_c]
        state = model.rssm.img_step(state, action[:, tgt_c].reshape(B * n, -1), sample=False)
        if h not in horizons:
            continue
        valid = (ok[None, :] & ~new_episode).reshape(-1)
        if not valid.any():
            continue
        feat = model.features(state)[valid]
        out[f"prior_h{h}"] = (
            feat,
            {k: v[:, tgt_c].reshape(B * n, -1)[valid] for k, v in body.items()},
        )
    return out


def probe_scores(
    model: Any,
    fit_batch: dict[str, Any],
    score_batch: dict[str, Any],
    horizons: list[int] | tuple[int, ...] = (1, 5, 15),
    alpha: float | str = 1.0,
    burn_in: int = 5,
) -> dict[str, float]:
    """``model/probe/<latent>/<quantity>``: R^2 of a probe fitted on ``fit_batch``'s features and
    scored on ``score_batch``'s (two disjoint sets of real sequences), for the posterior and the
    priors at each horizon, per body quantity in the batches' ``proprio``."""
    fit = latent_features(model, fit_batch, horizons, burn_in)
    score = latent_features(model, score_batch, horizons, burn_in)
    out: dict[str, float] = {}
    for kind, (x_score, y_score) in score.items():
        if kind not in fit:
            continue
        x_fit, y_fit = fit[kind]
        if x_fit.shape[0] < 2:
            continue
        for q in y_score:
            out[f"model/probe/{kind}/{q}"] = probe_r2(x_fit, y_fit[q], x_score, y_score[q], alpha)
    return out
