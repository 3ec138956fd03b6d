"""What a trial measures of a policy: deterministic evaluation on separate, seeded envs (all
episodes stepped together), and the init diagnostics (the initial policy's actions on states of
a random-policy rollout)."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.common.envs import EnvSpec, scale_action, set_obs, stack_obs, step_env
from init_schemes import action_diagnostics


def evaluate(agent, episodes: int, seed: int, envs: list | None = None) -> np.ndarray:
    """Run ``episodes`` deterministic episodes (episode i reset with ``seed + i``).

    Returns the per-episode returns, shape [episodes]. ``envs`` may be passed to reuse them.
    """
    envs = envs or [agent.env_spec.make() for _ in range(episodes)]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    obs = stack_obs([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    state = agent.eval_state(episodes)
    while alive.any():
        action, state = agent.act(obs, state)
        for i in np.flatnonzero(alive):
            o, r, term, trunc, _ = step_env(
                envs[i], action[i], low, high, f"eval env '{agent.env_spec.id}'"
            )
            set_obs(obs, i, o)
            returns[i] += r
            if term or trunc:
                alive[i] = False
    return returns


def init_diagnostics(agent, n_states: int, seed: int) -> dict[str, Any]:
    """States from a random-policy rollout of the real env -> the initial policy's action stats."""
    return probe_summary(agent.init_probe(probe_states(agent.env_spec, n_states, seed)))


def probe_states(env_spec: EnvSpec, n_states: int, seed: int) -> np.ndarray:
    """[n_states, *obs_shape] (a dict of them for pixels+state) from a uniform-random-action
    rollout seeded by ``seed``."""
    env = env_spec.make()
    obs, _ = env.reset(seed=seed + 7919)
    rng = np.random.default_rng(seed + 7919)
    low, high = env.action_space.low, env.action_space.high
    states = []
    while len(states) < n_states:
        states.append(obs)
        a = rng.uniform(-1.0, 1.0, size=low.shape)
        obs, _, term, trunc, _ = env.step(scale_action(a, low, high))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return stack_obs(states)


def probe_summary(probe: dict[str, Any]) -> dict[str, Any]:
    """An ``init_probe`` result -> the action statistics init_diagnostics.json stores."""
    diag = action_diagnostics(probe["actions"])
    for key in ("entropy", "mean_abs_mean", "std", "critic_scale"):
        diag[key] = probe.get(key)
    return diag
