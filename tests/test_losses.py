"""agent.losses: the loss pieces several agents share, checked on hand-computed cases."""

from __future__ import annotations

import math

import torch

from agent.losses import clipped_surrogate, ratio_stats


def test_clipped_surrogate_takes_the_pessimistic_bound():
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0])
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.1])
    # A>0: min(rA, clip(r)A) -> 1.2, 0.5 ; A<0: min(rA, clip(r)A) -> -1.5, -0.8 ; inside: 2.2
    expected = -torch.tensor([1.2, 0.5, -1.5, -0.8, 2.2])
    torch.testing.assert_close(clipped_surrogate(adv, ratio, 0.2), expected)


def test_clipped_surrogate_gradient_vanishes_outside_the_trust_region():
    ratio = torch.tensor([1.5, 1.1], requires_grad=True)
    clipped_surrogate(torch.tensor([1.0, 1.0]), ratio, 0.2).sum().backward()
    assert ratio.grad.tolist() == [0.0, -1.0]  # clipped: no push further; inside: -A


def test_ratio_stats_k3_kl_and_clip_fraction():
    ratio = torch.tensor([1.0, 2.0, 0.5, 1.1])
    kl, frac = ratio_stats(ratio, ratio.log(), 0.2)
    by_hand = sum((r - 1) - math.log(r) for r in (1.0, 2.0, 0.5, 1.1)) / 4
    assert math.isclose(kl.item(), by_hand, rel_tol=1e-6)
    assert frac.item() == 0.5  # 2.0 and 0.5 lie outside [0.8, 1.2]
    kl0, frac0 = ratio_stats(torch.ones(3), torch.zeros(3), 0.2)
    assert kl0.item() == 0.0 and frac0.item() == 0.0
