"""Seed-batched trials: K seeds of one config trained as one model with a leading seed axis.

On CPU, small-MLP RL spends much of each step in Python and op dispatch, so K seeds whose weights
are stacked along a seed axis (one batched matmul per layer instead of K) cost little more than
one while that overhead dominates (small networks and batches); once the matmuls dominate
([256, 256] networks on batches of 256) the gain shrinks to what the saved overhead was (numbers:
bench/seed_batch.py). Nothing is shared across seeds except the batched computation:

- weights: every ``RoleLinear`` becomes an ``EnsembleLinear`` with K members and every
  ``EnsembleLinear`` of n members one of K*n (seed-major: member ``k*n + j`` is seed k's j-th),
  so the unchanged ``forward`` of the plain module runs on inputs with a leading seed axis
  (:func:`seed_stack`). Each seed's weights are initialised on a plain copy of the module,
  exactly as a plain run of that seed would be, and copied in (:func:`load_member`).
- randomness: one ``torch.Generator`` per seed (:class:`SeedRNG`), started from the state a
  plain run's global generator has at the same point, so every seed draws its own stream.
- Adam is per element, so one optimiser over stacked parameters keeps per-seed state; the
  per-seed losses are *summed*, which leaves every seed's gradient exactly its own.

Agents that can train seeds together register a batched class with :func:`register_batched`;
a trial with ``seeds_per_trial > 1`` (or a ``seeds`` list) trains it through
``agent.seeds.BatchedSeeds``, which gives it the per-seed contract every trial has.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agent.common.distributions import normal_log_prob, tanh_log_det
from agent.common.envs import step_env
from agent.common.networks import EnsembleLinear, RoleLinear
from init_schemes import RegistryError

# --- which agents can batch seeds ------------------------------------------------------------

batched_agents: dict[str, type] = {}


def register_batched(name: str):
    """Class decorator: ``cls`` trains seeds of agent ``name`` together."""

    def deco(cls: type) -> type:
        batched_agents[name] = cls
        return cls

    return deco


def get_batched(name: str) -> type:
    """The seed-batched class of agent ``name``, or a clear error naming the ones that have one."""
    if name not in batched_agents:
        known = ", ".join(sorted(batched_agents)) or "none"
        raise RegistryError(
            f"agent '{name}' cannot train seeds together (seeds_per_trial > 1); "
            f"agents that can: {known}. Use seeds_per_trial: 1 for '{name}'"
        )
    return batched_agents[name]


# --- stacked layers ----------------------------------------------------------------------------


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with one affine pair per seed, on seed-major inputs [K*m, B, h] (m members per
    seed, which share their seed's affine as the m heads of a plain ensemble share theirs)."""

    def __init__(self, n_seeds: int, shape: int, eps: float = 1e-5):
        super().__init__()
        self.n_seeds, self.shape, self.eps = n_seeds, shape, eps
        self.weight = nn.Parameter(torch.ones(n_seeds, shape))
        self.bias = nn.Parameter(torch.zeros(n_seeds, shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x, (self.shape,), eps=self.eps)
        y = y.reshape(self.n_seeds, -1, self.shape)
        return torch.addcmul(self.bias.unsqueeze(1), y, self.weight.unsqueeze(1)).view(x.shape)


def seed_stack(module: nn.Module, n_seeds: int) -> nn.Module:
    """A copy of ``module`` whose layers hold ``n_seeds`` independent members (seed-major).

    ``RoleLinear`` [B, in] -> ``EnsembleLinear(K)`` [K, B, in]; ``EnsembleLinear(n)`` ->
    ``EnsembleLinear(K*n)``; ``LayerNorm`` -> :class:`EnsembleLayerNorm`. The copy's forward
    takes the plain module's inputs with a leading seed axis (ensembles: [K*n, B, in]). Any other
    module owning parameters is refused: sharing it across seeds would couple them.
    """
    return _stacked(copy.deepcopy(module), n_seeds)


def _stacked(mod: nn.Module, k: int) -> nn.Module:
    """``mod`` as a K-member layer, or (for a container) ``mod`` with its children stacked."""
    if isinstance(mod, RoleLinear):
        return EnsembleLinear(k, mod.in_features, mod.out_features, mod.role, mod.activation)
    if isinstance(mod, EnsembleLinear):
        n, o, i = mod.weight.shape
        return EnsembleLinear(k * n, i, o, mod.role, mod.activation)
    if isinstance(mod, nn.LayerNorm):
        if len(mod.normalized_shape) != 1 or not mod.elementwise_affine:
            raise ValueError(f"seed batching supports 1-d affine LayerNorm only, got {mod}")
        return EnsembleLayerNorm(k, mod.normalized_shape[0], mod.eps)
    if any(True for _ in mod.parameters(recurse=False)):
        raise ValueError(
            f"seed batching cannot stack a {type(mod).__name__} layer (it owns "
            "parameters): only RoleLinear, EnsembleLinear and LayerNorm are supported"
        )
    for name, child in mod.named_children():
        setattr(mod, name, _stacked(child, k))
    return mod


@torch.no_grad()
def load_member(stacked: nn.Module, k: int, member: nn.Module) -> None:
    """Copy a plain module's parameters into seed ``k``'s slot of its ``seed_stack`` copy."""
    plain = dict(member.named_parameters())
    for name, p in stacked.named_parameters():
        p.view(-1, *plain[name].shape)[k].copy_(plain[name])


def member_state_dict(stacked: nn.Module, k: int, like: nn.Module) -> dict[str, torch.Tensor]:
    """Seed ``k``'s parameters shaped like the plain module ``like`` (inverse of load_member)."""
    plain = dict(like.named_parameters())
    return {
        name: p.detach().reshape(-1, *plain[name].shape)[k].clone()
        for name, p in stacked.named_parameters()
    }


# --- per-seed randomness -----------------------------------------------------------------------


class SeedRNG:
    """One torch generator per seed; draws for [K, ...] tensors come from seed k's generator."""

    def __init__(self, n_seeds: int):
        self.gens = [torch.Generator() for _ in range(n_seeds)]

    def capture(self, k: int) -> None:
        """Start seed k's stream from the global generator's current state (a plain run's)."""
        self.gens[k].set_state(torch.get_rng_state())

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``x`` [K, ...]: row k from seed k's generator."""
        shape = x.shape[1:]
        return torch.stack([torch.randn(shape, generator=g, dtype=x.dtype) for g in self.gens])

    def state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.gens]

    def set_state(self, states: list[torch.Tensor]) -> None:
        for g, s in zip(self.gens, states, strict=True):
            g.set_state(s)


def squashed_sample(
    mean: torch.Tensor, log_std: torch.Tensor, rng: SeedRNG
) -> tuple[torch.Tensor, torch.Tensor]:
    """``distributions.squashed_sample`` with per-seed noise: ([K, ..., A], [K, ...])."""
    u = mean + rng.randn_like(mean) * log_std.exp()
    logp = normal_log_prob(u, mean, log_std) - tanh_log_det(u)
    return torch.tanh(u), logp


# --- evaluation --------------------------------------------------------------------------------


def evaluate_seeds(agent: Any, episodes: int, starts: list[int]) -> np.ndarray:
    """Deterministic episodes of every seed's policy, all stepped together.

    Seed k's episode i runs on its own env reset with ``starts[k] + i`` (a plain run of that
    seed starts its evaluation at the same states). ``agent.act(obs [K, E, O], None)`` returns
    actions [K, E, A]. Returns the returns, shape [K, episodes].
    """
    k = len(starts)
    envs = [[agent.env_spec.make() for _ in range(episodes)] for _ in starts]
    low, high = envs[0][0].action_space.low, envs[0][0].action_space.high
    obs = np.stack(
        [
            np.stack([env.reset(seed=start + i)[0] for i, env in enumerate(row)])
            for start, row in zip(starts, envs)
        ]
    )
    returns = np.zeros((k, episodes))
    alive = np.ones((k, episodes), dtype=bool)
    while alive.any():
        action, _ = agent.act(obs, None)
        for s, i in zip(*np.nonzero(alive)):
            o, r, term, trunc, _ = step_env(
                envs[s][i], action[s, i], low, high, f"eval env '{agent.env_spec.id}'"
            )
            obs[s, i] = o
            returns[s, i] += r
            if term or trunc:
                alive[s, i] = False
    for row in envs:
        for env in row:
            env.close()
    return returns
