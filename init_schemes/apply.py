"""Init is data: an :class:`InitConfig` resolved per role and applied to a built module.

Networks are built plain (torch's own default init runs in the constructors and is then
overwritten here). Every layer that owns a weight must carry a ``role`` attribute (see
``agent.common.networks.RoleLinear``) and an ``activation`` attribute naming the nonlinearity
that follows it, which sets the default gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from init_schemes.config import InitConfig, check_role
from init_schemes.scenarios import scenarios
from init_schemes.schemes import gain_value, schemes
from initablate.registry import RegistryError

__all__ = ["InitConfig", "RoleInit", "apply_init", "check_role", "resolve"]


@dataclass(frozen=True)
class RoleInit:
    scheme: str
    gain: str | float
    scale: float
    bias: str


def resolve(cfg: InitConfig, role: str) -> RoleInit:
    """What a layer of ``role`` gets under ``cfg``."""
    check_role(role)
    small = role in scenarios.get(cfg.scenario).small_roles
    scheme = cfg.roles.get(role, cfg.small_scheme if small else cfg.scheme)
    if cfg.bias != "auto":
        bias = cfg.bias
    elif scheme in ("pytorch_default", "small_uniform"):
        bias = scheme
    else:
        bias = "zeros"
    return RoleInit(scheme, cfg.gains.get(role, "auto"), cfg.small_scale, bias)


def _fans(t: torch.Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        return t.shape[0], t.shape[0]
    receptive = math.prod(t.shape[2:]) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


@torch.no_grad()
def apply_init(module: torch.nn.Module, cfg: InitConfig | dict | None = None) -> list[dict]:
    """Initialise every role-tagged layer of ``module`` from ``cfg``; return one record per layer.

    A record is ``{"layer", "role", "scheme", "gain", "scale", "bias", "weight_mean",
    "weight_std", "shape"}``. Raises if a layer owning a weight matrix has no role.
    """
    if cfg is None:
        cfg = InitConfig()
    elif isinstance(cfg, dict):
        cfg = InitConfig(**cfg)
    records = []
    for name, mod in module.named_modules():
        own = dict(mod.named_parameters(recurse=False))
        if not own:
            continue
        role = getattr(mod, "role", None)
        if role is None:
            if any(p.ndim >= 2 for p in own.values()):
                raise RegistryError(
                    f"layer '{name or type(mod).__name__}' ({type(mod).__name__}) has no role; "
                    "build it with agent.common.networks.RoleLinear or set .role"
                )
            continue  # e.g. LayerNorm affine parameters keep their defaults
        plan = resolve(cfg, role)
        activation = getattr(mod, "activation", "linear")
        entry = schemes.get(plan.scheme)
        gain = gain_value(plan.gain, activation)
        min_ndim = 3 if getattr(mod, "ensemble_size", 0) else 2
        weights = [p for p in own.values() if p.ndim >= min_ndim]
        fan_in = _fans(weights[0][0] if min_ndim == 3 else weights[0])[0] if weights else 1
        members = int(getattr(mod, "ensemble_size", 0) or 0)
        for pname, p in own.items():
            # an ensemble layer stacks independent members on dim 0: init each like a plain layer
            slices = list(p) if members else [p]
            for t in slices:
                if t.ndim >= 2:
                    fi, fo = _fans(t)
                    entry.fn(t, fan_in=fi, fan_out=fo, gain=gain, scale=plan.scale)
                elif pname.startswith("bias"):
                    schemes.get(plan.bias).fn(
                        t, fan_in=fan_in, fan_out=t.shape[0], gain=gain, scale=plan.scale
                    )
                else:  # a free vector such as a state-independent log-std
                    t.fill_(cfg.log_std if role == "policy_std" else 0.0)
        w = torch.cat([p.flatten() for p in weights]) if weights else next(iter(own.values()))
        records.append(
            {
                "layer": name,
                "role": role,
                "scheme": plan.scheme if weights else "constant",
                "gain": round(gain, 6) if entry.uses_gain and weights else None,
                "scale": plan.scale if entry.uses_scale else None,
                "bias": plan.bias,
                "weight_mean": float(w.mean()),
                "weight_std": float(w.std()) if w.numel() > 1 else 0.0,
                "shape": list(weights[0].shape) if weights else list(w.shape),
            }
        )
    return records
