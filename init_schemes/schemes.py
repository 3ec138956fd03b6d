"""The init-scheme registry, the names of the built-in schemes, and activation gains; no torch.

A scheme fills one tensor in place::

    fn(tensor, *, fan_in: int, fan_out: int, gain: float, scale: float) -> None

``gain`` comes from the layer's activation (or a per-role override); ``scale`` is the range of the
``small_uniform`` scheme. Schemes that ignore the gain are registered with ``uses_gain=False`` so
the init record shows ``gain=None`` for them instead of a number that had no effect.

The built-in schemes are torch functions (``init_schemes/builtin.py``). Their names and
descriptions are declared here (``BUILTIN``), so ``init.scheme`` is validated, and ``sweep list
inits`` lists them, without importing torch; ``schemes.get(name)`` imports ``builtin`` on first
use. A scheme registered with :func:`register` (in-tree or from a user module) is eager.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from initablate.registry import Registry, RegistryError


@dataclass(frozen=True)
class Scheme:
    fn: Callable[..., None]
    uses_gain: bool
    uses_scale: bool


schemes: Registry[Scheme] = Registry("init scheme")

#: name -> description of every scheme in init_schemes/builtin.py (which registers the functions)
BUILTIN: dict[str, str] = {
    "pytorch_default": "what torch.nn.Linear does: U(+-1/sqrt(fan_in)) for weight and bias",
    "fanin": "U(+-1/sqrt(fan_in)), the DDPG lineage ('current approach' in the notes)",
    "orthogonal": "orthogonal rows/columns scaled by the activation gain",
    "kaiming_normal": "N(0, gain^2/fan_in) (He et al. 2015)",
    "kaiming": "alias of kaiming_normal: N(0, gain^2/fan_in)",
    "kaiming_uniform": "U(+-gain*sqrt(3/fan_in)) (He et al. 2015, uniform variant)",
    "xavier": "U(+-gain*sqrt(6/(fan_in+fan_out))) (Glorot & Bengio 2010)",
    "xavier_normal": "N(0, gain^2*2/(fan_in+fan_out)) (Glorot & Bengio 2010)",
    "small_uniform": "U(+-scale), scale default 3e-3: the usual small output-layer init",
    "zeros": "all zeros (the default for biases)",
}
for _name, _description in BUILTIN.items():
    schemes.declare(_name, "init_schemes.builtin", _description)


def register(
    name: str,
    description: str | None = None,
    *,
    uses_gain: bool = True,
    uses_scale: bool = False,
    override: bool = False,
):
    """Register an init scheme: ``@init_schemes.register("my_scheme")`` on
    ``def my_scheme(tensor, *, fan_in, fan_out, gain, scale): ...`` (fill ``tensor`` in place).
    The description defaults to the first line of the function's docstring."""

    def decorator(fn):
        schemes.add(name, Scheme(fn, uses_gain, uses_scale), description, override=override)
        return fn

    return decorator


# --- gains -------------------------------------------------------------------------------------

#: Gain per activation. ELU and SiLU use ReLU's gain, as the research notes suggest for ELU
#: (no closed form is standard); override per role with a number if you know better.
GAINS: dict[str, float] = {
    "relu": math.sqrt(2.0),
    "elu": math.sqrt(2.0),
    "silu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)),
    "tanh": 5.0 / 3.0,
    "linear": 1.0,
    "sigmoid": 1.0,
}


def gain_value(gain: str | float, activation: str) -> float:
    """Resolve a gain setting for a layer followed by ``activation``.

    ``gain`` is ``"auto"`` (use the layer's own activation), an activation name, or a number.
    """
    if isinstance(gain, bool):
        raise RegistryError(f"gain must be an activation name or a number, got {gain!r}")
    if isinstance(gain, int | float):
        return float(gain)
    name = activation if gain == "auto" else gain
    if name not in GAINS:
        known = ", ".join(["auto", *sorted(GAINS)])
        raise RegistryError(f"unknown gain '{name}' (known: {known}, or a number)")
    return GAINS[name]
