"""The seeds of one trial, as ``agent.trial.run_trial`` sees them.

Every trial trains ``K >= 1`` seeds of one config through one interface, :class:`Seeds`:

- a plain trial is ``K = 1``: :class:`OneSeed` wraps the registered agent;
- a seed-batched trial (``seeds_per_trial > 1`` or a ``seeds`` list) is :class:`BatchedSeeds`
  around the agent's registered batched class (agent/common/seed_batch.py), which trains its
  K seeds as one model with a leading seed axis.

Either way ``train`` returns one metrics dict per seed, ``evaluate`` one array of episode returns
per seed (seed s's episode i starts from ``reset(seed=10_000 + 1000 * s + i)``, so every arm of
a sweep is scored on the same start states) and ``probe`` one init-diagnostics summary per seed;
``state_dict`` is what a checkpoint stores (a plain trial's is its agent's, unchanged). So the
trial loop has a single path and never asks which kind it holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.base import Agent, seed_everything
from agent.common.envs import EnvSpec
from agent.common.evaluation import evaluate, init_diagnostics, probe_states, probe_summary
from agent.common.seed_batch import evaluate_seeds, get_batched
from agent.config import TrialConfig
from agent.registry import agents


def eval_seed(seed: int) -> int:
    """The reset seed of a run's first eval episode (episode i adds i)."""
    return 10_000 + 1000 * seed


class Seeds:
    """K seeds of one trial config. ``agent`` is the trained model: the plain agent, or the
    seed-batched one (its networks stack the K seeds)."""

    agent: Any
    seeds: list[int]

    @property
    def env_spec(self) -> EnvSpec:
        return self.agent.env_spec

    @property
    def env_steps(self) -> int:
        """Env steps taken per seed (every seed takes the same number)."""
        return self.agent.env_steps

    @env_steps.setter
    def env_steps(self, value: int) -> None:
        self.agent.env_steps = value

    def initialise(self) -> list[dict]:
        """Seed, then apply the init spec; the per-layer record."""
        raise NotImplementedError

    def train(self, until: int) -> list[dict[str, float]]:
        """Train every seed until ``env_steps == until``; one metrics dict per seed."""
        raise NotImplementedError

    def evaluate(self, episodes: int) -> list[np.ndarray]:
        """Deterministic episode returns, one array [episodes] per seed."""
        raise NotImplementedError

    def probe(self, n_states: int) -> dict[str, dict[str, Any]]:
        """The initial policy's action statistics on ``n_states`` real states, per seed:
        ``{str(seed): summary}`` (init_diagnostics.json)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return self.agent.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state)


class OneSeed(Seeds):
    """A plain trial: one registered agent, one seed (``K = 1``)."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.seeds = [agent.cfg.seed]

    def initialise(self) -> list[dict]:
        seed_everything(self.seeds[0])
        return self.agent.initialise()

    def train(self, until: int) -> list[dict[str, float]]:
        return [self.agent.train(until)]

    def evaluate(self, episodes: int) -> list[np.ndarray]:
        return [evaluate(self.agent, episodes, seed=eval_seed(self.seeds[0]))]

    def probe(self, n_states: int) -> dict[str, dict[str, Any]]:
        seed = self.seeds[0]
        return {str(seed): init_diagnostics(self.agent, n_states, seed)}


class BatchedSeeds(Seeds):
    """A seed-batched trial: the agent's batched class trains its K seeds as one model.

    The batched model seeds each of its seeds itself in ``initialise`` (exactly as K plain runs
    would), acts on observations with a leading seed axis ([K, n, O] -> [K, n, A]) and probes
    the states of each seed ([K, N, O] -> one summary per seed)."""

    def __init__(self, model: Any):
        self.agent = model
        self.seeds = list(model.seeds)

    def initialise(self) -> list[dict]:
        return self.agent.initialise()

    def train(self, until: int) -> list[dict[str, float]]:
        return self.agent.train(until)

    def evaluate(self, episodes: int) -> list[np.ndarray]:
        return list(evaluate_seeds(self.agent, episodes, [eval_seed(s) for s in self.seeds]))

    def probe(self, n_states: int) -> dict[str, dict[str, Any]]:
        states = np.stack([probe_states(self.env_spec, n_states, s) for s in self.seeds])
        probes = self.agent.init_probe(states)
        return {str(s): probe_summary(p) for s, p in zip(self.seeds, probes, strict=True)}


def make_seeds(cfg: TrialConfig) -> Seeds:
    """The trial's seeds: its agent's batched class if it trains several seeds together."""
    if cfg.seed_batched:
        agents.get(cfg.agent)  # imports the agent's module, which registers its batched class
        return BatchedSeeds(get_batched(cfg.agent)(cfg))
    return OneSeed(agents.get(cfg.agent)(cfg))
