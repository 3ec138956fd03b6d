"""Role-tagged network building blocks shared by every agent.

Constructors never choose an init: every weight-owning layer carries a ``role`` and the
``activation`` that follows it, and ``init_schemes.apply_init`` initialises them afterwards.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from agent.common.activations import Activation, activations, known_activation  # noqa: F401
from init_schemes import check_role

# the activations' names and descriptions are declared in agent/common/activations.py, where
# the config type ``Activation`` (re-exported here) checks them without torch
activations.add("relu", nn.ReLU)
activations.add("elu", nn.ELU)
activations.add("tanh", nn.Tanh)
activations.add("silu", nn.SiLU)
activations.add("leaky_relu", nn.LeakyReLU)


class RoleLinear(nn.Linear):
    """nn.Linear that knows its role and the activation after it (which sets its default gain)."""

    def __init__(self, in_features: int, out_features: int, role: str, activation: str = "linear"):
        check_role(role)
        super().__init__(in_features, out_features)
        self.role = role
        self.activation = activation

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, role={self.role}, activation={self.activation}"


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied in one batched matmul: [n, B, in] -> [n, B, out].

    ``apply_init`` initialises each member like a plain layer of the same shape.
    """

    def __init__(
        self, n: int, in_features: int, out_features: int, role: str, activation: str = "linear"
    ):
        super().__init__()
        check_role(role)
        self.ensemble_size = n
        self.role = role
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(n, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n, out_features))
        bound = 1.0 / math.sqrt(in_features)  # placeholder until apply_init
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def extra_repr(self) -> str:
        n, o, i = self.weight.shape
        return f"n={n}, in={i}, out={o}, role={self.role}, activation={self.activation}"


def mlp(
    in_dim: int,
    hidden: list[int] | tuple[int, ...],
    out_dim: int | None,
    activation: str = "relu",
    out_role: str = "hidden",
    out_activation: str = "linear",
    hidden_role: str = "hidden",
    layer_norm: bool = False,
    ensemble: int = 0,
) -> nn.Sequential:
    """An MLP whose hidden layers carry ``hidden_role`` and whose last layer ``out_role``.

    ``out_dim=None`` ends after the last hidden activation (a trunk). ``ensemble=n`` builds ``n``
    independent MLPs evaluated together on inputs shaped [n, B, in_dim].
    """
    act = activations.get(activation)
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(_linear(d, h, hidden_role, activation, ensemble))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(act())
        d = h
    if out_dim is not None:
        layers.append(_linear(d, out_dim, out_role, out_activation, ensemble))
    return nn.Sequential(*layers)


def _linear(i: int, o: int, role: str, activation: str, ensemble: int) -> nn.Module:
    if ensemble:
        return EnsembleLinear(ensemble, i, o, role, activation)
    return RoleLinear(i, o, role, activation)


class LogStd(nn.Module):
    """A state-independent log-std vector (role ``policy_std``; its init is ``init.log_std``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.role = "policy_std"
        self.activation = "linear"
        self.log_std = nn.Parameter(torch.zeros(dim))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return self.log_std.expand_as(like)


class SquashedGaussianActor(nn.Module):
    """SAC's policy: trunk -> mean (role policy_mean, tanh follows) and log-std (policy_std).

    ``forward`` returns the pre-squash mean and the clamped log-std, each [B, A].
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: list[int],
        activation: str = "relu",
        layer_norm: bool = False,
        log_std_bounds: tuple[float, float] = (-20.0, 2.0),
    ):
        super().__init__()
        self.trunk = mlp(obs_dim, hidden, None, activation, layer_norm=layer_norm)
        self.mean = RoleLinear(hidden[-1], act_dim, "policy_mean", "tanh")
        self.log_std = RoleLinear(hidden[-1], act_dim, "policy_std", "linear")
        self.log_std_bounds = log_std_bounds

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.mean(h), self.log_std(h).clamp(*self.log_std_bounds)


class GaussianActor(nn.Module):
    """PPO's policy: trunk -> mean (policy_mean, linear) and a log-std that is either a
    state-independent vector (default) or a layer (both role policy_std)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: list[int],
        activation: str = "tanh",
        state_dependent_std: bool = False,
        layer_norm: bool = False,
    ):
        super().__init__()
        self.trunk = mlp(obs_dim, hidden, None, activation, layer_norm=layer_norm)
        self.mean = RoleLinear(hidden[-1], act_dim, "policy_mean", "linear")
        self.state_dependent_std = state_dependent_std
        if state_dependent_std:
            self.log_std = RoleLinear(hidden[-1], act_dim, "policy_std", "linear")
        else:
            self.log_std = LogStd(act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        mean = self.mean(h)
        log_std = self.log_std(h) if self.state_dependent_std else self.log_std(mean)
        return mean, log_std.clamp(-20.0, 2.0)
