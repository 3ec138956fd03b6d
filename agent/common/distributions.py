"""Policy distributions as pure functions (no torch.distributions overhead in the hot loop)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def normal_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density summed over the last dim: [..., A] -> [...]."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def normal_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian: [..., A] -> [...]."""
    return (log_std + 0.5 * (1.0 + LOG_2PI)).sum(-1)


def tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    """log |d tanh(u)/du| summed over the last dim, stable form 2(log2 - u - softplus(-2u))."""
    return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


def squashed_sample(mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised tanh-Gaussian sample in (-1, 1) and its log-prob: ([..., A], [...])."""
    u = mean + torch.randn_like(mean) * log_std.exp()
    logp = normal_log_prob(u, mean, log_std) - tanh_log_det(u)
    return torch.tanh(u), logp
