"""Deterministic evaluation on separate, seeded envs, all episodes stepped together."""

from __future__ import annotations

import numpy as np

from agent.common.envs import set_obs, stack_obs, step_env


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
            o, r, term, trunc, _ = step_env(envs[i], action[i], low, high,
                                            f"eval env '{agent.env_spec.id}'")
            set_obs(obs, i, o)
            returns[i] += r
            if term or trunc:
                alive[i] = False
    return returns
