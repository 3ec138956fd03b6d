"""Sequence replay of real episodes for world models (checkpointable).

The buffer is one stream of steps in a ring. Step ``t`` holds what the agent saw on arriving at
``t`` (the convention of Dreamer's replay):

    obs[t]          the observation at t: a float vector, or a uint8 image [3, H, W] (pixels)
    state[t]        with pixels+state: the env's state vector at t (``state_dim > 0``)
    action[t]       the action that led to t (zeros on an episode's first step)
    reward[t]       the reward received on arriving at t (0 on the first step)
    is_first[t]     t is an episode's first step (after a reset)
    is_terminal[t]  t is a terminal state (the env terminated; a time-limit truncation is not)
    proprio[k][t]   proprio target ``k`` (joint_pos, ...) read from the simulator at t

Episodes follow each other in the stream, so a sampled sequence may span several (short)
episodes; ``is_first`` tells the model where to reset its state. The first step of every sampled
sequence is marked ``is_first`` too, since the model starts it from a fresh state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

Batch = dict[str, Any]  # obs, action, reward, is_first, is_terminal (, state): tensors; proprio


def batch_to(batch: Batch, device: torch.device | str) -> Batch:
    """Every tensor of ``batch`` (proprio too) on ``device`` (images stay uint8: 4x less
    to copy; the model converts them)."""
    return {
        k: ({n: t.to(device) for n, t in v.items()} if isinstance(v, dict) else v.to(device))
        for k, v in batch.items()
    }


class SequenceReplay:
    """A ring buffer of steps; ``sample`` returns batches of fixed-length sequences."""

    def __init__(
        self,
        capacity: int,
        obs_dim: int | tuple[int, ...],
        act_dim: int,
        proprio_dims: dict[str, int] | None = None,
        seed: int = 0,
        state_dim: int = 0,
    ):
        """``obs_dim``: a vector's size (float32), or an image's shape [3, H, W] (stored uint8);
        ``state_dim`` > 0 also stores a state vector per step (pixels+state)."""
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        image = isinstance(obs_dim, tuple | list)
        shape = tuple(obs_dim) if image else (obs_dim,)
        self.obs = np.zeros((capacity, *shape), np.uint8 if image else np.float32)
        self.state = np.zeros((capacity, state_dim), np.float32) if state_dim else None
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.is_first = np.zeros(capacity, bool)
        self.is_terminal = np.zeros(capacity, bool)
        self.proprio = {
            k: np.zeros((capacity, d), np.float32) for k, d in (proprio_dims or {}).items()
        }
        self.size = 0
        self.pos = 0
        self.episodes = 0  # episodes begun (is_first steps added), including overwritten ones
        self.rng = np.random.default_rng(seed)

    def add(
        self,
        obs: np.ndarray | dict,
        action: np.ndarray,
        reward: float,
        is_first: bool,
        is_terminal: bool,
        proprio: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Append one step (see the module docstring for what each field means); ``obs`` is
        ``{"pixels", "state"}`` for a buffer with a state."""
        i = self.pos
        if self.state is not None:
            obs, self.state[i] = obs["pixels"], obs["state"]
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.is_first[i], self.is_terminal[i] = is_first, is_terminal
        proprio = proprio or {}
        if set(proprio) != set(self.proprio):
            raise KeyError(f"proprio targets {sorted(proprio)} != buffer's {sorted(self.proprio)}")
        for k, v in proprio.items():
            self.proprio[k][i] = v
        self.episodes += int(is_first)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def can_sample(self, length: int) -> bool:
        return self.size >= length

    def sample(
        self,
        batch: int,
        length: int,
        rng: np.random.Generator | None = None,
        window: tuple[float, float] = (0.0, 1.0),
        tiled: bool = False,
    ) -> Batch:
        """``batch`` sequences of ``length`` consecutive steps, uniformly over start positions.

        ``window`` (lo, hi): only sequences lying inside that fraction of the stored steps,
        oldest first (e.g. (0, 0.5) and (0.5, 1) give two disjoint sets of sequences).
        ``tiled``: instead, the sequences that tile the window end to end, oldest first (no
        step twice; evenly thinned to ``batch`` if there are more; ``rng`` unused).

        Returns obs [B, T, O], action [B, T, A], reward [B, T], is_first [B, T] (bool),
        is_terminal [B, T] (bool) and proprio {name: [B, T, D]} as torch tensors. ``rng``
        (e.g. a fixed-seed generator for evaluation) leaves the buffer's own generator untouched.
        """
        if not self.can_sample(length):
            raise ValueError(f"buffer holds {self.size} steps, fewer than length {length}")
        rng = self.rng if rng is None else rng
        oldest = self.pos if self.size == self.capacity else 0
        lo, hi = int(window[0] * self.size), int(window[1] * self.size)
        if hi - lo < length:
            raise ValueError(
                f"window {window} of {self.size} steps holds no sequence of length {length}"
            )
        if tiled:
            starts = np.arange(lo, hi - length + 1, length)
            if len(starts) > batch:
                starts = starts[np.linspace(0, len(starts) - 1, batch).round().astype(int)]
        else:
            starts = rng.integers(lo, hi - length + 1, batch)
        idx = (oldest + starts[:, None] + np.arange(length)) % self.capacity
        is_first = self.is_first[idx]
        is_first[:, 0] = True
        out = {
            "obs": torch.from_numpy(self.obs[idx]),
            "action": torch.from_numpy(self.action[idx]),
            "reward": torch.from_numpy(self.reward[idx]),
            "is_first": torch.from_numpy(is_first),
            "is_terminal": torch.from_numpy(self.is_terminal[idx]),
            "proprio": {k: torch.from_numpy(v[idx]) for k, v in self.proprio.items()},
        }
        if self.state is not None:
            out["state"] = torch.from_numpy(self.state[idx])
        return out

    # --- checkpoints -----------------------------------------------------------------------------
    _ARRAYS = ("obs", "action", "reward", "is_first", "is_terminal")

    def _logical(self) -> np.ndarray:
        """Physical indices of the stored steps, oldest first."""
        oldest = self.pos if self.size == self.capacity else 0
        return (oldest + np.arange(self.size)) % self.capacity

    def state_dict(self) -> dict[str, Any]:
        """The stored steps oldest first, so a buffer of another capacity can load them."""
        idx = self._logical()
        out = {
            **{k: getattr(self, k)[idx] for k in self._ARRAYS},
            "proprio": {k: v[idx] for k, v in self.proprio.items()},
            "episodes": self.episodes,
            "rng": self.rng.bit_generator.state,
        }
        if self.state is not None:
            out["state"] = self.state[idx]
        return out

    def load_state_dict(self, s: dict[str, Any]) -> None:
        """Load a checkpoint (of any capacity: a longer run may resume a shorter one; a smaller
        buffer keeps the newest steps)."""
        if set(s["proprio"]) != set(self.proprio):
            raise ValueError(
                f"checkpointed buffer has proprio targets {sorted(s['proprio'])}, "
                f"this one {sorted(self.proprio)}"
            )
        n = min(len(s["reward"]), self.capacity)
        if (self.state is None) != ("state" not in s):
            raise ValueError("checkpointed buffer and this one disagree on storing states")
        for k in self._ARRAYS + (("state",) if self.state is not None else ()):
            getattr(self, k)[:n] = s[k][-n:] if n else s[k][:0]
        for k, v in s["proprio"].items():
            self.proprio[k][:n] = v[-n:] if n else v[:0]
        self.size, self.pos, self.episodes = n, n % self.capacity, s["episodes"]
        self.rng.bit_generator.state = s["rng"]
