"""Dreamer-style image encoder and decoder for pixel world models, built from role-tagged layers.

    encoder  uint8 image [..., 3, S, S] -> x / 255 - 0.5 -> L convs (kernel 4, stride 2,
             padding 1, depth d, 2d, 4d, ...) S -> S/2 -> ... -> 4 -> flatten: E = d 2^(L-1) 16
    decoder  features [..., F] -> linear -> [d 2^(L-1), 4, 4] -> L transposed convs (kernel 4,
             stride 2, padding 1) back to [..., 3, S, S], the mean of a unit-variance Gaussian
             over x / 255 - 0.5

with L = log2(S / 4) (S = 64: 4 layers, like Dreamer's). Every layer carries role ``encoder``
or ``decoder`` and the activation after it, so ``init_schemes.apply_init`` initialises them like
linear layers (a conv weight [out, in, k, k] has fan-in in k^2; a transposed conv's weight is
stored [in, out, k, k], so its "fan-in" is out k^2, torch's own convention for them).

Differences from Dreamer (v1: depth 32, "valid" padding, ReLU, decoder kernels 5-5-6-6; v3:
depth 96 at 64x64, LayerNorm and SiLU): "same" padding so every size halves exactly, the depth
and activation are config (``world_model.depth``, ``world_model.activation``, quick default 16,
ELU), no normalisation layers. ``channels_last`` stores activations NHWC (faster convs on some
CPUs; measure with bench/pixel_wm.py).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, nn

from agent.common.networks import RoleLinear, activations
from init_schemes import check_role


class RoleConv2d(nn.Conv2d):
    def __init__(self, cin: int, cout: int, role: str, activation: str):
        check_role(role)
        super().__init__(cin, cout, kernel_size=4, stride=2, padding=1)
        self.role, self.activation = role, activation


class RoleConvTranspose2d(nn.ConvTranspose2d):
    def __init__(self, cin: int, cout: int, role: str, activation: str):
        check_role(role)
        super().__init__(cin, cout, kernel_size=4, stride=2, padding=1)
        self.role, self.activation = role, activation


def conv_layers(size: int) -> int:
    """L = log2(size / 4): the halvings from ``size`` down to 4 (size a power of two >= 8)."""
    n = round(math.log2(size / 4))
    if n < 1 or 4 * 2**n != size:
        raise ValueError(f"image size must be a power of two >= 8, got {size}")
    return n


def image_to_input(x: Tensor) -> Tensor:
    """uint8 images -> float x / 255 - 0.5 (float images pass unchanged)."""
    return x.float() / 255.0 - 0.5 if x.dtype == torch.uint8 else x


class ConvEncoder(nn.Module):
    """Images [..., 3, S, S] (uint8 or already scaled floats) -> embeddings [..., E]."""

    def __init__(
        self, size: int, depth: int = 16, activation: str = "elu", channels_last: bool = False
    ):
        super().__init__()
        n = conv_layers(size)
        chans = [3] + [depth * 2**i for i in range(n)]
        layers: list[nn.Module] = []
        for cin, cout in pairwise(chans):
            layers += [RoleConv2d(cin, cout, "encoder", activation), activations.get(activation)()]
        self.net = nn.Sequential(*layers)
        self.size, self.channels_last = size, channels_last
        self.out_dim = chans[-1] * 16

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        x = image_to_input(x.reshape(-1, *x.shape[-3:]))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """Features [..., F] -> predicted images [..., 3, S, S] in x / 255 - 0.5 units."""

    def __init__(
        self,
        feat_dim: int,
        size: int,
        depth: int = 16,
        activation: str = "elu",
        channels_last: bool = False,
    ):
        super().__init__()
        n = conv_layers(size)
        chans = [depth * 2**i for i in reversed(range(n))] + [3]
        self.first = chans[0]
        self.linear = RoleLinear(feat_dim, chans[0] * 16, "decoder", activation)
        layers: list[nn.Module] = [activations.get(activation)()]
        for i, (cin, cout) in enumerate(pairwise(chans)):
            last = i == n - 1
            layers.append(
                RoleConvTranspose2d(cin, cout, "decoder", "linear" if last else activation)
            )
            if not last:
                layers.append(activations.get(activation)())
        self.net = nn.Sequential(*layers)
        self.size, self.channels_last = size, channels_last

    def forward(self, feat: Tensor) -> Tensor:
        lead = feat.shape[:-1]
        x = self.linear(feat.reshape(-1, feat.shape[-1])).reshape(-1, self.first, 4, 4)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).reshape(*lead, 3, self.size, self.size)
