"""Agents: one trial's env, networks, algorithm and metrics. Never imports Ray.

Importing the package registers every in-tree agent, so ``sweep list`` shows them.
"""

import agent.dreamer  # registers "dreamer"
import agent.mb_sac  # noqa: F401  (registers "mb_sac")
from agent import mb_ppo, ppo, sac, td3, world_model  # noqa: F401  (register the in-tree agents)
from agent.base import Agent
from agent.config import ConfigError, TrialConfig, build_config
from agent.registry import agents, register
from agent.trial import TrialError, run_trial

__all__ = ["Agent", "ConfigError", "TrialConfig", "TrialError", "agents", "build_config",
           "register", "run_trial"]
