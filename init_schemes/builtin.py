"""The built-in init schemes: torch functions filling one tensor in place.

Their names and descriptions are declared in ``init_schemes/schemes.py`` (``BUILTIN``), which
is what config validation reads; this module registers the functions under those names and is
imported on the first ``schemes.get``. A new in-tree scheme is a function here plus its line in
``BUILTIN``.
"""

from __future__ import annotations

import math

import torch

from init_schemes.schemes import register
from initablate.registry import RegistryError


def _needs_matrix(name: str, tensor: torch.Tensor) -> None:
    if tensor.ndim < 2:
        raise RegistryError(
            f"init scheme '{name}' needs a weight matrix, got a {tensor.ndim}-D tensor "
            "(use zeros, fanin, pytorch_default or small_uniform for biases)"
        )


@register("pytorch_default", uses_gain=False)
def pytorch_default(tensor, *, fan_in, fan_out, gain, scale):
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("fanin", uses_gain=False)
def fanin(tensor, *, fan_in, fan_out, gain, scale):
    bound = 1.0 / math.sqrt(fan_in)
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("orthogonal")
def orthogonal(tensor, *, fan_in, fan_out, gain, scale):
    _needs_matrix("orthogonal", tensor)
    torch.nn.init.orthogonal_(tensor, gain=gain)


@register("kaiming_normal")
def kaiming_normal(tensor, *, fan_in, fan_out, gain, scale):
    torch.nn.init.normal_(tensor, 0.0, gain / math.sqrt(fan_in))


register("kaiming")(kaiming_normal)


@register("kaiming_uniform")
def kaiming_uniform(tensor, *, fan_in, fan_out, gain, scale):
    bound = gain * math.sqrt(3.0 / fan_in)
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("xavier")
def xavier(tensor, *, fan_in, fan_out, gain, scale):
    _needs_matrix("xavier", tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    torch.nn.init.uniform_(tensor, -bound, bound)


@register("xavier_normal")
def xavier_normal(tensor, *, fan_in, fan_out, gain, scale):
    _needs_matrix("xavier_normal", tensor)
    torch.nn.init.normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


@register("small_uniform", uses_gain=False, uses_scale=True)
def small_uniform(tensor, *, fan_in, fan_out, gain, scale):
    torch.nn.init.uniform_(tensor, -scale, scale)


@register("zeros", uses_gain=False)
def zeros(tensor, *, fan_in, fan_out, gain, scale):
    torch.nn.init.zeros_(tensor)
