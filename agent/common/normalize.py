"""Running observation normalisation and reward scaling (checkpointable).

The statistics are gymnasium's :class:`~gymnasium.wrappers.utils.RunningMeanStd` (the parallel
mean/variance update its NormalizeObservation/NormalizeReward wrappers use). They are applied
inside the agent rather than as env wrappers because evaluation (``agent.common.evaluation``)
feeds raw observations to ``agent.act``, which must normalise them with the training statistics
without updating them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.wrappers.utils import RunningMeanStd


class ObsNormalizer:
    """(obs - mean) / sqrt(var + eps), clipped to +-``clip``; identity when ``enabled`` is False."""

    def __init__(self, dim: int, enabled: bool = True, clip: float = 10.0, eps: float = 1e-8):
        self.enabled, self.clip, self.eps = enabled, clip, eps
        self.rms = RunningMeanStd(shape=(dim,))

    def __call__(self, obs: np.ndarray, update: bool = False) -> torch.Tensor:
        """Raw obs [B, O] -> float32 tensor [B, O]; ``update`` first adds the batch to the stats."""
        obs = np.asarray(obs, dtype=np.float64)
        if not self.enabled:
            return torch.as_tensor(obs, dtype=torch.float32)
        if update:
            self.rms.update(obs)
        z = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return torch.as_tensor(np.clip(z, -self.clip, self.clip), dtype=torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.rms.mean.copy(), "var": self.rms.var.copy(), "count": self.rms.count}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.rms.mean, self.rms.var, self.rms.count = s["mean"].copy(), s["var"].copy(), s["count"]


class RewardScaler:
    """Divides rewards by the running std of each env's discounted return (no mean shift), as
    SB3's VecNormalize and gymnasium's NormalizeReward do; identity when ``enabled`` is False."""

    def __init__(
        self,
        num_envs: int,
        gamma: float,
        enabled: bool = True,
        clip: float = 10.0,
        eps: float = 1e-8,
    ):
        self.enabled, self.gamma, self.clip, self.eps = enabled, gamma, clip, eps
        self.rms = RunningMeanStd(shape=())
        self.returns = np.zeros(num_envs)

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """reward, done [N] -> scaled reward [N]; resets the discounted return where ``done``."""
        reward = np.asarray(reward, dtype=np.float64)
        if not self.enabled:
            return reward
        self.returns = self.returns * self.gamma + reward
        self.rms.update(self.returns)
        self.returns[np.asarray(done, dtype=bool)] = 0.0
        return np.clip(reward / np.sqrt(self.rms.var + self.eps), -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": self.rms.mean,
            "var": self.rms.var,
            "count": self.rms.count,
            "returns": self.returns.copy(),
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.rms.mean, self.rms.var, self.rms.count = s["mean"], s["var"], s["count"]
        self.returns = s["returns"].copy()
