"""Return estimators against small hand-computed values, and the identities that tie them."""

import pytest
import torch

from agent.common.returns import gae, lambda_return, monte_carlo, td0


def col(*xs: float) -> torch.Tensor:
    """A [T, 1] column: one env, T steps."""
    return torch.tensor(xs, dtype=torch.float64)[:, None]


R = col(1.0, 2.0, 3.0)
V = col(0.5, 1.0, 1.5)            # V(s_t)
V_NEXT = col(1.0, 1.5, 2.0)       # V(s_{t+1}), consistent with V inside the episode
ZERO = col(0.0, 0.0, 0.0)
GAMMA, LAM = 0.5, 0.5


def test_td0_by_hand():
    assert torch.equal(td0(R, V_NEXT, ZERO, GAMMA), col(1.5, 2.75, 4.0))
    assert torch.equal(td0(R, V_NEXT, col(0, 1, 0), GAMMA), col(1.5, 2.0, 4.0))


def test_gae_by_hand_without_episode_ends():
    # deltas = [1.0, 1.75, 2.5]; A2 = 2.5, A1 = 1.75 + .25 * 2.5, A0 = 1 + .25 * 2.375
    adv = gae(R, V, V_NEXT, ZERO, GAMMA, LAM)
    assert adv.shape == R.shape
    assert torch.allclose(adv, col(1.59375, 2.375, 2.5))


def test_gae_termination_cuts_bootstrap_and_recursion():
    # episode terminates after step 1: delta_1 = 2 - 1 = 1 and A_1 does not see A_2
    adv = gae(R, V, V_NEXT, col(0, 1, 0), GAMMA, LAM)
    assert torch.allclose(adv, col(1.25, 1.0, 2.5))


def test_gae_truncation_bootstraps_but_cuts_recursion():
    # time limit after step 1: V(final obs) = 1.5 still bootstraps, the next episode is not mixed in
    adv = gae(R, V, V_NEXT, ZERO, GAMMA, LAM, done=col(0, 1, 0))
    assert torch.allclose(adv, col(1.4375, 1.75, 2.5))


def test_lambda_return_by_hand_and_equals_gae_plus_values():
    ret = lambda_return(R, V_NEXT, ZERO, GAMMA, LAM)
    # G2 = 3 + .5 * 2; G1 = 2 + .5 (.5 * 1.5 + .5 * 4); G0 = 1 + .5 (.5 * 1 + .5 * 3.375)
    assert torch.allclose(ret, col(2.09375, 3.375, 4.0))
    assert torch.allclose(ret, gae(R, V, V_NEXT, ZERO, GAMMA, LAM) + V)


def test_monte_carlo_by_hand():
    assert torch.allclose(monte_carlo(R, ZERO, GAMMA), col(2.75, 3.5, 3.0))
    assert torch.allclose(monte_carlo(R, col(0, 1, 0), GAMMA), col(2.0, 2.0, 3.0))
    assert torch.allclose(monte_carlo(R, ZERO, GAMMA, last_value=torch.tensor([2.0])),
                          col(3.0, 4.0, 4.0))


def _random_segment(t: int = 9, b: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(t, b, generator=g, dtype=torch.float64)
    values = torch.randn(t + 1, b, generator=g, dtype=torch.float64)
    final = torch.randn(t, b, generator=g, dtype=torch.float64)  # V(final obs) at episode ends
    done = (torch.rand(t, b, generator=g) < 0.25).double()
    terminated = done * (torch.rand(t, b, generator=g) < 0.5).double()
    next_values = torch.where(done.bool(), final, values[1:])
    return rewards, values[:-1], next_values, terminated, done


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
def test_identities_on_random_segments_with_episode_ends(lam):
    r, v, v_next, term, done = _random_segment()
    ret = lambda_return(r, v_next, term, 0.9, lam, done)
    assert ret.shape == r.shape == (9, 4)
    assert torch.allclose(ret, gae(r, v, v_next, term, 0.9, lam, done) + v)
    if lam == 0.0:
        assert torch.allclose(ret, td0(r, v_next, term, 0.9))


def test_lambda_one_is_bootstrapped_monte_carlo_and_columns_are_independent():
    r, _, v_next, _, _ = _random_segment()
    no_end = torch.zeros_like(r)
    mc = monte_carlo(r, no_end, 0.9, last_value=v_next[-1])
    assert torch.allclose(lambda_return(r, v_next, no_end, 0.9, 1.0), mc)
    single = monte_carlo(r[:, 2:3], no_end[:, 2:3], 0.9, last_value=v_next[-1, 2:3])
    assert torch.allclose(mc[:, 2:3], single)


def test_soft_continuation_weights_the_bootstrap():
    # a learned continue probability of 0.5 halves the discount of the next value
    ret = lambda_return(col(0.0), col(4.0), col(0.5), 1.0, 0.95)
    assert torch.allclose(ret, col(2.0))


def test_gradients_flow_for_imagined_returns():
    r = torch.ones(5, 2, requires_grad=True)
    v = torch.ones(5, 2, requires_grad=True)
    lambda_return(r, v, torch.zeros(5, 2), 0.99, 0.95).sum().backward()
    assert r.grad is not None and v.grad is not None and torch.all(r.grad > 0)
