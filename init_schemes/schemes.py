"""Built-in weight-initialisation schemes and activation gains.

A scheme fills one tensor in place::

    fn(tensor, *, fan_in: int, fan_out: int, gain: float, scale: float) -> None

``gain`` comes from the layer's activation (or a per-role override); ``scale`` is the range of the
``small_uniform`` scheme. Schemes that ignore the gain are registered with ``uses_gain=False`` so
the init record shows ``gain=None`` for them instead of a number that had no effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from init_schemes.registry import Registry, RegistryError


@dataclass(frozen=True)
class Scheme:
    fn: Callable[..., None]
    uses_gain: bool
    uses_scale: bool


schemes: Registry[Scheme] = Registry("init scheme")


def register(
    name: str,
    description: str | None = None,
    *,
    uses_gain: bool = True,
    uses_scale: bool = False,
    override: bool = False,
):
    """Register an init scheme: ``@init_schemes.register("my_scheme")`` on
    ``def my_scheme(tensor, *, fan_in, fan_out, gain, scale): ...`` (fill ``tensor`` in place)."""

    def decorator(fn):
        doc = description
        if doc is None:
            text = (fn.__doc__ or "").strip()
            doc = text.splitlines()[0] if text else ""
        schemes.add(name, Scheme(fn, uses_gain, uses_scale), doc, override=override)
        return fn

    return decorator


def _needs_matrix(name: str, tensor: torch.Tensor) -> None:
    if tensor.ndim < 2:
        raise RegistryError(
            f"init scheme '{name}' needs a weight matrix, got a {tensor.ndim}-D tensor "
            "(use zeros, fanin, pytorch_default or small_uniform for biases)"
        )


@register("pytorch_default", "what torch.nn.Linear does: U(+-1/sqrt(fan_in)) for weight and bias",
          uses_gain=False)
def pytorch_default(tensor, *, fan_in, fan_out, gain, scale):
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("fanin", "U(+-1/sqrt(fan_in)), the DDPG lineage ('current approach' in the notes)",
          uses_gain=False)
def fanin(tensor, *, fan_in, fan_out, gain, scale):
    bound = 1.0 / math.sqrt(fan_in)
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("orthogonal", "orthogonal rows/columns scaled by the activation gain")
def orthogonal(tensor, *, fan_in, fan_out, gain, scale):
    _needs_matrix("orthogonal", tensor)
    torch.nn.init.orthogonal_(tensor, gain=gain)


@register("kaiming_normal", "N(0, gain^2/fan_in) (He et al. 2015)")
def kaiming_normal(tensor, *, fan_in, fan_out, gain, scale):
    torch.nn.init.normal_(tensor, 0.0, gain / math.sqrt(fan_in))


register("kaiming", "alias of kaiming_normal: N(0, gain^2/fan_in)")(kaiming_normal)


@register("kaiming_uniform", "U(+-gain*sqrt(3/fan_in)) (He et al. 2015, uniform variant)")
def kaiming_uniform(tensor, *, fan_in, fan_out, gain, scale):
    bound = gain * math.sqrt(3.0 / fan_in)
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("xavier", "U(+-gain*sqrt(6/(fan_in+fan_out))) (Glorot & Bengio 2010)")
def xavier(tensor, *, fan_in, fan_out, gain, scale):
    _needs_matrix("xavier", tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("xavier_normal", "N(0, gain^2*2/(fan_in+fan_out)) (Glorot & Bengio 2010)")
def xavier_normal(tensor, *, fan_in, fan_out, gain, scale):
    _needs_matrix("xavier_normal", tensor)
    torch.nn.init.normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


@register("small_uniform", "U(+-scale), scale default 3e-3: the usual small output-layer init",
          uses_gain=False, uses_scale=True)
def small_uniform(tensor, *, fan_in, fan_out, gain, scale):
    torch.nn.init.uniform_(tensor, -scale, scale)


@register("zeros", "all zeros (the default for biases)", uses_gain=False)
def zeros(tensor, *, fan_in, fan_out, gain, scale):
    torch.nn.init.zeros_(tensor)


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
