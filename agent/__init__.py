"""Agents: one trial's env, networks, algorithm and metrics. Never imports Ray.

Importing the package imports no torch: the in-tree agents are declared by module name in
``agent/registry.py`` (``sweep list`` shows them, configs are validated against their
torch-free config sections in ``agent/sections.py``), and each agent's module is imported the
first time ``agents.get(name)`` asks for its class. The names below that need torch (``Agent``,
``run_trial``, ``TrialError``) are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from agent.config import ConfigError, TrialConfig, build_config
from agent.registry import agents, register

_LAZY = {"Agent": "agent.base", "TrialError": "agent.trial", "run_trial": "agent.trial"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent' has no attribute '{name}'")


__all__ = [
    "Agent",
    "ConfigError",
    "TrialConfig",
    "TrialError",
    "agents",
    "build_config",
    "register",
    "run_trial",
]
