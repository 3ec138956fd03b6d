"""The activation registry and the ``Activation`` config type, without torch.

The activations are torch modules, registered by ``agent.common.networks``; their names and
descriptions are declared here, so a config's ``activation: rleu`` is rejected (naming the known
ones and the closest) without importing torch. ``activations.get(name)`` imports
``agent.common.networks`` on first use. Register another one there, or from a user module with
``activations.add(name, module_class, description)``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from initablate.registry import Registry, RegistryError

activations: Registry = Registry("activation")
for _name, _description in {
    "relu": "rectified linear unit",
    "elu": "exponential linear unit (Dreamer's default)",
    "tanh": "hyperbolic tangent",
    "silu": "sigmoid-weighted linear unit (swish)",
    "leaky_relu": "leaky ReLU, slope 0.01",
}.items():
    activations.declare(_name, "agent.common.networks", _description)


def known_activation(name: str) -> str:
    """``name`` if it is a registered activation; else ValueError with the registry's message
    (known names, closest suggestion). The body of the config validators of ``activation``."""
    try:
        activations.check(name)
    except RegistryError as err:
        raise ValueError(str(err)) from None
    return name


Activation = Annotated[str, AfterValidator(known_activation)]
"""The type of every config section's ``activation``: a registered name, checked when the config
is built (so ``sweep validate`` catches ``activation: rleu``, naming the known ones)."""
