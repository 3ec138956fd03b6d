"""Init schemes applied per layer role.

Register your own scheme from any module and name that module in the sweep YAML
(``imports: [my_module]``) or with ``--import my_module``::

    import init_schemes

    @init_schemes.register("lecun_normal", "N(0, 1/fan_in)", uses_gain=False)
    def lecun_normal(tensor, *, fan_in, fan_out, gain, scale):
        torch.nn.init.normal_(tensor, 0.0, fan_in ** -0.5)
"""

from init_schemes.apply import InitConfig, RoleInit, apply_init, check_role, resolve
from init_schemes.diagnostics import action_diagnostics, action_histogram, clip_fraction, coverage
from init_schemes.registry import Registry, RegistryError, suggest
from init_schemes.scenarios import ROLES, Scenario, register_scenario, scenarios
from init_schemes.schemes import GAINS, Scheme, gain_value, register, schemes

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
