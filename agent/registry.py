"""The agent registry: every in-tree agent declared by module name, user agents registered eagerly.

An agent class has a pydantic ``Config`` (its section of the trial config), a ``sections`` tuple
naming every config section it reads, and the methods of :class:`agent.base.Agent`.

**Lazy registration.** The in-tree agents are *declared* below (``IN_TREE``): name, module,
one-line description and an :class:`AgentInfo` (their config model from the torch-free
``agent.sections``, the sections they read, pixels, devices, seed batching). That is everything a
config is validated against, so ``build_config``, ``sweep validate``, ``sweep keys`` and ``sweep
list`` never import torch. ``agents.get(name)`` returns the class, importing its module on first
use; the module's ``@register(name, ...)`` then checks that the class says what was declared.

A user agent (``--import my_module`` or ``imports:`` in a sweep file) is registered eagerly by
``@register("my_agent", "one line")`` on its class; its info is read from the class.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agent.sections import (
    DreamerConfig,
    MBPPOConfig,
    MBSACConfig,
    PPOConfig,
    SACConfig,
    TD3Config,
    WorldModelConfig,
)
from initablate.registry import Registry, RegistryError


@dataclass(frozen=True)
class AgentInfo:
    """What validating a trial config needs to know about an agent, without importing it."""

    config: type[BaseModel]  # the model of its own section (the class's ``Config``)
    sections: tuple[str, ...]  # every config section it reads, its own first
    pixels: bool = False  # takes pixel observations (observation.mode: pixels, pixels+state)
    devices: tuple[str, ...] = ("cpu",)  # where it can run (device: cuda needs "cuda")
    batched: bool = False  # trains seeds together (seeds_per_trial > 1; agent.common.seed_batch)


class AgentRegistry(Registry):
    """A :class:`Registry` of agent classes that also answers :meth:`info` without imports."""

    def __init__(self) -> None:
        super().__init__("agent")
        self._info: dict[str, tuple[str, AgentInfo]] = {}  # declared name -> (module, info)

    def declare(
        self, name: str, module: str, description: str, info: AgentInfo | None = None
    ) -> None:
        super().declare(name, module, description)
        if info is not None:
            self._info[name] = (module, info)

    def add(
        self, name: str, obj: Any, description: str | None = None, *, override: bool = False
    ) -> None:
        super().add(name, obj, description, override=override)
        module, info = self._info.get(name, (None, None))
        if info is None:
            return
        if getattr(obj, "__module__", None) != module:  # replaced from elsewhere (override=True)
            del self._info[name]
            return
        found = _info_of(name, obj)
        differs = [
            field
            for field in ("config", "sections", "pixels", "devices")
            if getattr(found, field) != getattr(info, field)
        ]
        if differs:
            raise RegistryError(
                f"agent '{name}' ({module}) does not match its declaration in agent/registry.py: "
                + ", ".join(
                    f"{f} {getattr(found, f)!r} != declared {getattr(info, f)!r}" for f in differs
                )
            )

    def info(self, name: str) -> AgentInfo:
        """The :class:`AgentInfo` of ``name``: declared (no import), or read from a registered
        class. RegistryError (with a suggestion) for an unknown name."""
        self.check(name)
        if name in self._info:
            return self._info[name][1]
        return _info_of(name, self.get(name))


def _info_of(name: str, cls: Any) -> AgentInfo:
    seed_batch = sys.modules.get("agent.common.seed_batch")  # a batched class imported it
    return AgentInfo(
        config=cls.Config,
        sections=tuple(getattr(cls, "sections", (name,))),
        pixels=bool(getattr(cls, "pixels", False)),
        devices=tuple(getattr(cls, "devices", ("cpu",))),
        batched=name in getattr(seed_batch, "batched_agents", {}),
    )


agents = AgentRegistry()
register = agents.register

_CUDA = ("cpu", "cuda")

#: the in-tree agents: name -> (module, description, info)
IN_TREE: dict[str, tuple[str, str, AgentInfo]] = {
    "sac": (
        "agent.sac",
        "Soft Actor-Critic: twin Q, target nets, automatic entropy tuning",
        AgentInfo(SACConfig, ("sac",), batched=True),
    ),
    "ppo": (
        "agent.ppo",
        "PPO: clipped surrogate, GAE, vectorised envs, obs/reward normalisation",
        AgentInfo(PPOConfig, ("ppo",)),
    ),
    "td3": (
        "agent.td3",
        "TD3: deterministic tanh policy, twin Q, target smoothing, delayed actor",
        AgentInfo(TD3Config, ("td3",)),
    ),
    "world_model": (
        "agent.world_model",
        "RSSM world model alone, trained on random-policy data; logs model/*",
        AgentInfo(WorldModelConfig, ("world_model",), pixels=True, devices=_CUDA),
    ),
    "dreamer": (
        "agent.dreamer",
        "Dreamer: actor-critic in imagination, lambda-returns, slow critic",
        AgentInfo(DreamerConfig, ("dreamer", "world_model"), pixels=True, devices=_CUDA),
    ),
    "mb_ppo": (
        "agent.mb_ppo",
        "model-based PPO: on-policy updates on imagined minibatches (the notes' loop)",
        AgentInfo(MBPPOConfig, ("mb_ppo", "world_model"), pixels=True, devices=_CUDA),
    ),
    "mb_sac": (
        "agent.mb_sac",
        "SAC on world-model features, on imagined plus a share of real transitions",
        AgentInfo(MBSACConfig, ("mb_sac", "world_model"), pixels=True),
    ),
}
for _name, (_module, _description, _info) in IN_TREE.items():
    agents.declare(_name, _module, _description, _info)
