"""Init schemes applied per layer role.

Register your own scheme from any module and name that module in the sweep YAML
(``imports: [my_module]``) or with ``--import my_module``::

    import init_schemes

    @init_schemes.register("lecun_normal", "N(0, 1/fan_in)", uses_gain=False)
    def lecun_normal(tensor, *, fan_in, fan_out, gain, scale):
        torch.nn.init.normal_(tensor, 0.0, fan_in ** -0.5)

Importing the package does not import torch: the names a config is validated against (the
scheme and scenario registries, ``ROLES``, ``GAINS``) and ``InitConfig`` load eagerly; the torch
parts (``apply_init``, ``resolve``, the diagnostics) load on first access. The built-in scheme
functions (``init_schemes/builtin.py``) are declared by name in ``init_schemes/schemes.py`` and
imported on the first ``schemes.get``. ``Registry``, ``RegistryError`` and ``suggest`` are
re-exported from ``initablate.registry``, their home.
"""

from __future__ import annotations

import importlib
from typing import Any

from init_schemes.config import InitConfig, check_role
from init_schemes.scenarios import ROLES, Scenario, register_scenario, scenarios
from init_schemes.schemes import GAINS, Scheme, gain_value, register, schemes
from initablate.registry import Registry, RegistryError, suggest

#: torch-using names, imported from their module on first access
_LAZY = {
    "RoleInit": "init_schemes.apply",
    "apply_init": "init_schemes.apply",
    "resolve": "init_schemes.apply",
    "action_diagnostics": "init_schemes.diagnostics",
    "action_histogram": "init_schemes.diagnostics",
    "clip_fraction": "init_schemes.diagnostics",
    "coverage": "init_schemes.diagnostics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'init_schemes' has no attribute '{name}'")


__all__ = [
    "GAINS",
    "ROLES",
    "InitConfig",
    "Registry",
    "RegistryError",
    "RoleInit",
    "Scenario",
    "Scheme",
    "action_diagnostics",
    "action_histogram",
    "apply_init",
    "check_role",
    "clip_fraction",
    "coverage",
    "gain_value",
    "register",
    "register_scenario",
    "resolve",
    "scenarios",
    "schemes",
    "suggest",
]
