"""Transition replay buffer in preallocated numpy arrays (checkpointable)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class ReplayBuffer:
    """Ring buffer of (obs, action, reward, next_obs, terminated); actions in [-1, 1]."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, seed: int):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.size = 0
        self.pos = 0
        self.rng = np.random.default_rng(seed)

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.pos
        self.obs[i], self.action[i], self.next_obs[i] = obs, action, next_obs
        self.reward[i], self.terminated[i] = reward, terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int) -> tuple[torch.Tensor, ...]:
        """(obs [B, O], action [B, A], reward [B], next_obs [B, O], terminated [B]) tensors."""
        idx = self.rng.integers(0, self.size, batch)
        return tuple(
            torch.from_numpy(a[idx])
            for a in (self.obs, self.action, self.reward, self.next_obs, self.terminated)
        )

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "obs": self.obs[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "action": self.action[:n].copy(),
            "reward": self.reward[:n].copy(),
            "terminated": self.terminated[:n].copy(),
            "size": n,
            "pos": self.pos,
            "capacity": self.capacity,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        """Restore exactly; into a buffer of another capacity (a run extended to more steps),
        keep the newest transitions, oldest first."""
        keys = ("obs", "next_obs", "action", "reward", "terminated")
        n, pos = s["size"], s["pos"]
        if s.get("capacity", self.capacity) == self.capacity:
            for k in keys:
                getattr(self, k)[:n] = s[k]
            self.size, self.pos = n, pos
        else:
            order = np.roll(np.arange(n), -pos) if n == s["capacity"] else np.arange(n)
            order = order[-self.capacity :]
            for k in keys:
                getattr(self, k)[: len(order)] = s[k][order]
            self.size, self.pos = len(order), len(order) % self.capacity
        self.rng.bit_generator.state = s["rng"]


class SeedBatchedReplay:
    """One ring buffer per seed in stacked arrays [K, capacity, ...], each seed with its own
    sampling generator (seed k's is ``default_rng(seeds[k])``, a plain ReplayBuffer's). All seeds
    add in lockstep, so they share ``size`` and ``pos``; no transition crosses seeds."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, seeds: list[int]):
        k = len(seeds)
        self.capacity = capacity
        self.obs = np.zeros((k, capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((k, capacity, obs_dim), np.float32)
        self.action = np.zeros((k, capacity, act_dim), np.float32)
        self.reward = np.zeros((k, capacity), np.float32)
        self.terminated = np.zeros((k, capacity), np.float32)
        self.size = 0
        self.pos = 0
        self.rngs = [np.random.default_rng(s) for s in seeds]
        self._rows = np.arange(k)[:, None]

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """One transition per seed: obs [K, O], action [K, A], reward [K], ..."""
        i = self.pos
        self.obs[:, i], self.action[:, i], self.next_obs[:, i] = obs, action, next_obs
        self.reward[:, i], self.terminated[:, i] = reward, terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int) -> tuple[torch.Tensor, ...]:
        """(obs [K, B, O], action [K, B, A], reward [K, B], next_obs [K, B, O], terminated
        [K, B]); seed k's rows are its own transitions, drawn by its own generator."""
        idx = np.stack([rng.integers(0, self.size, batch) for rng in self.rngs])
        return tuple(
            torch.from_numpy(a[self._rows, idx])
            for a in (self.obs, self.action, self.reward, self.next_obs, self.terminated)
        )

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "obs": self.obs[:, :n].copy(),
            "next_obs": self.next_obs[:, :n].copy(),
            "action": self.action[:, :n].copy(),
            "reward": self.reward[:, :n].copy(),
            "terminated": self.terminated[:, :n].copy(),
            "size": n,
            "pos": self.pos,
            "capacity": self.capacity,
            "rngs": [r.bit_generator.state for r in self.rngs],
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        """Restore exactly (same capacity; a run extended to more steps keeps the newest
        transitions, oldest first, as ReplayBuffer does)."""
        keys = ("obs", "next_obs", "action", "reward", "terminated")
        n, pos = s["size"], s["pos"]
        if s["capacity"] == self.capacity:
            for k in keys:
                getattr(self, k)[:, :n] = s[k]
            self.size, self.pos = n, pos
        else:
            order = np.roll(np.arange(n), -pos) if n == s["capacity"] else np.arange(n)
            order = order[-self.capacity :]
            for k in keys:
                getattr(self, k)[:, : len(order)] = s[k][:, order]
            self.size, self.pos = len(order), len(order) % self.capacity
        for rng, state in zip(self.rngs, s["rngs"], strict=True):
            rng.bit_generator.state = state
