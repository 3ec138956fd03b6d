"""The ``init.*`` section of a trial config, validated without torch.

Scheme names are checked against the scheme registry (the built-ins are declared there by name,
``init_schemes/schemes.py``), scenarios against the scenario registry, roles against ``ROLES`` and
gains against ``GAINS``: every unknown name is a one-line error listing the known ones. Applying
an init to a network is ``init_schemes.apply`` (torch).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from init_schemes.scenarios import ROLES, scenarios
from init_schemes.schemes import gain_value, schemes
from initablate.registry import RegistryError, suggest


class InitConfig(BaseModel):
    """The ``init.*`` section of a trial config."""

    model_config = ConfigDict(extra="forbid")

    scheme: str = Field("fanin", description="scheme for every layer the scenario leaves alone")
    scenario: str = Field("small_outputs", description="which output roles stay small")
    small_scheme: str = Field("small_uniform", description="scheme for the small output roles")
    small_scale: float = Field(3e-3, gt=0, description="range of small_uniform")
    bias: str = Field(
        "auto",
        description="bias scheme; auto = zeros, except the layer's own rule for pytorch_default "
        "and small_uniform",
    )
    gains: dict[str, str | float] = Field(
        default_factory=dict,
        description="role -> gain ('auto', an activation name like tanh|linear|relu, or a number)",
    )
    roles: dict[str, str] = Field(
        default_factory=dict, description="role -> scheme, overriding scheme and scenario"
    )
    log_std: float = Field(0.0, description="value of state-independent log-std parameters")

    # registry errors become ValueErrors so pydantic reports them with their key path
    @field_validator("scheme", "small_scheme")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        _check(schemes.check, v)
        return v

    @field_validator("bias")
    @classmethod
    def _known_bias(cls, v: str) -> str:
        if v != "auto":
            _check(schemes.check, v)
        return v

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, v: str) -> str:
        _check(scenarios.entry, v)
        return v

    @field_validator("gains")
    @classmethod
    def _known_gains(cls, v: dict) -> dict:
        for role, gain in v.items():
            _check(check_role, role)
            _check(gain_value, gain, "linear")
        return v

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: dict) -> dict:
        for role, scheme in v.items():
            _check(check_role, role)
            _check(schemes.check, scheme)
        return v


def _check(fn, *args) -> None:
    try:
        fn(*args)
    except RegistryError as err:
        raise ValueError(str(err)) from None


def check_role(role: str) -> None:
    if role not in ROLES:
        raise RegistryError(
            f"unknown layer role '{role}'{suggest(role, list(ROLES))} (known: {', '.join(ROLES)})"
        )
