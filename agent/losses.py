"""Loss maths shared by several agents, as pure functions (tensors in, tensors out).

Each agent file keeps its own objective's assembly (which terms, which weights, which networks)
so it reads like the algorithm; the pieces written once here are the ones several of them use:

- :func:`polyak_`: target networks, ``theta' <- (1 - tau) theta' + tau theta`` (SAC, TD3, mb_sac,
  Dreamer's slow critic);
- :func:`clipped_surrogate` and :func:`ratio_stats`: PPO's clipped policy objective and its
  diagnostics (ppo on real rollouts, mb_ppo on imagined ones).

Dreamer's lambda-return losses live in agent/dreamer.py, the returns in agent/common/returns.py.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def polyak_(target: list[Tensor], online: list[Tensor], tau: float) -> None:
    """In place: target <- (1 - tau) target + tau online (tau = 1 copies)."""
    torch._foreach_lerp_(target, online, tau)


def clipped_surrogate(adv: Tensor, ratio: Tensor, clip: float) -> Tensor:
    """PPO's per-sample clipped policy loss (Schulman et al. 2017, eq. 7, negated to minimise):

        max(-A r, -A clip(r, 1 - eps, 1 + eps))

    with r = pi(a|s) / pi_old(a|s). Unreduced: the caller weights and averages."""
    return torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - clip, 1.0 + clip))


@torch.no_grad()
def ratio_stats(ratio: Tensor, log_ratio: Tensor, clip: float) -> tuple[Tensor, Tensor]:
    """(approx KL, clip fraction) of a PPO step: KL(pi_old || pi) by Schulman's unbiased k3
    estimator mean((r - 1) - log r), and the share of samples with |r - 1| > eps."""
    approx_kl = ((ratio - 1.0) - log_ratio).mean()
    clip_frac = ((ratio - 1.0).abs() > clip).float().mean()
    return approx_kl, clip_frac
