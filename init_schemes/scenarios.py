"""The research notes' five output-layer scenarios, as registry entries.

A scenario names the output roles that keep the small init (``init.small_scheme``, by default
``small_uniform`` with ``init.small_scale`` = 3e-3); every other layer gets ``init.scheme``.
"Critic" means both the Q heads (SAC) and the value head (PPO).
"""

from __future__ import annotations

from dataclasses import dataclass

from initablate.registry import Registry

#: Every role a layer can carry. Model-free nets use the first five; the world model the rest.
ROLES: tuple[str, ...] = (
    "hidden",
    "policy_mean",
    "policy_std",
    "q",
    "value",
    "encoder",
    "dynamics",
    "decoder",
    "reward_head",
    "continue_head",
    "proprio_head",
)
CRITIC = frozenset({"q", "value"})


@dataclass(frozen=True)
class Scenario:
    small_roles: frozenset[str]
    notes: str  # the sentence of the research notes this scenario implements


scenarios: Registry[Scenario] = Registry("init scenario")


def register_scenario(
    name: str,
    small_roles: set[str] | frozenset[str],
    notes: str,
    description: str,
    *,
    override: bool = False,
) -> Scenario:
    unknown = set(small_roles) - set(ROLES)
    if unknown:
        raise ValueError(f"scenario '{name}': unknown roles {sorted(unknown)} (known: {ROLES})")
    scenario = Scenario(frozenset(small_roles), notes)
    scenarios.add(name, scenario, description, override=override)
    return scenario


register_scenario(
    "small_outputs",
    {"policy_mean", "policy_std"} | CRITIC,
    "Initialise every layer but small init for output layers (current approach using fanin)",
    "(1) scheme on hidden layers; policy mean, policy std and critic outputs small",
)
register_scenario(
    "small_critic_std",
    {"policy_std"} | CRITIC,
    "Initialise every layer but small init for critic and policy std output layers "
    "(highest probability of being helpful)",
    "(2) scheme also on the policy mean; critic and policy std outputs small",
)
register_scenario(
    "small_std",
    {"policy_std"},
    "Initialise every layer but small init for policy std output only",
    "(3) scheme on every layer except the policy std output, which stays small",
)
register_scenario(
    "small_mean_critic",
    {"policy_mean"} | CRITIC,
    "Initialise every layer (except mean and critic if they don't help)",
    "(4) scheme also on the policy std; policy mean and critic outputs stay small",
)
register_scenario(
    "no_small",
    set(),
    "Initialise every layer (baseline if any of above don't prove helpful)",
    "(5) scheme on every layer, no small init anywhere",
)
