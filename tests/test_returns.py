"""Return estimators against small hand-computed values, and the identities that tie them."""

import pytest
import torch

from agent.common.returns import ESTIMATORS, estimate, gae, lambda_return, monte_carlo, td0


def col(*xs: float) -> torch.Tensor:
    """A [T, 1] column: one env, T steps."""
    return torch.tensor(xs, dtype=torch.float64)[:, None]


R = col(1.0, 2.0, 3.0)
V = col(0.5, 1.0, 1.5)  # V(s_t)
V_NEXT = col(1.0, 1.5, 2.0)  # V(s_{t+1}), consistent with V inside the episode
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
    assert torch.allclose(
        monte_carlo(R, ZERO, GAMMA, last_value=torch.tensor([2.0])), col(3.0, 4.0, 4.0)
    )


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


# --- the return_estimator dispatcher --------------------------------------------------------------

ONE = col(1.0, 1.0, 1.0)


def test_estimate_by_hand_with_full_continuation():
    # same segment as above: c = 1 everywhere is "no termination"
    targets, adv = estimate("lambda_return", R, V, V_NEXT, ONE, GAMMA, LAM)
    assert torch.allclose(targets, col(2.09375, 3.375, 4.0)) and torch.allclose(adv, targets - V)
    targets, adv = estimate("gae", R, V, V_NEXT, ONE, GAMMA, LAM)
    assert torch.allclose(adv, col(1.59375, 2.375, 2.5)) and torch.allclose(targets, adv + V)
    targets, adv = estimate("td0", R, V, V_NEXT, ONE, GAMMA, LAM)
    assert torch.allclose(targets, col(1.5, 2.75, 4.0)) and torch.allclose(adv, targets - V)
    # monte carlo bootstraps from V(s_T) = 2 at the horizon end: G2 = 3 + 1, G1 = 2 + 2, G0 = 3
    targets, adv = estimate("monte_carlo", R, V, V_NEXT, ONE, GAMMA, LAM)
    assert torch.allclose(targets, col(3.0, 4.0, 4.0)) and torch.allclose(adv, targets - V)


def test_estimate_soft_continuation_is_dreamers_lambda_return():
    # G_t = r_t + gamma c_t ((1 - lam) V(s_{t+1}) + lam G_{t+1}), G at the end -> V(s_T)
    c = col(0.5, 0.8, 0.25)
    g2 = 3.0 + GAMMA * 0.25 * 2.0
    g1 = 2.0 + GAMMA * 0.8 * ((1 - LAM) * 1.5 + LAM * g2)
    g0 = 1.0 + GAMMA * 0.5 * ((1 - LAM) * 1.0 + LAM * g1)
    for name in ("lambda_return", "gae"):
        targets, adv = estimate(name, R, V, V_NEXT, c, GAMMA, LAM)
        assert torch.allclose(targets, col(g0, g1, g2)), name
        assert torch.allclose(adv, targets - V), name
    targets, _ = estimate("monte_carlo", R, V, V_NEXT, c, GAMMA, LAM)
    m2 = 3.0 + GAMMA * 0.25 * 2.0
    m1 = 2.0 + GAMMA * 0.8 * m2
    assert torch.allclose(targets, col(1.0 + GAMMA * 0.5 * m1, m1, m2))
    targets, _ = estimate("td0", R, V, V_NEXT, c, GAMMA, LAM)
    assert torch.allclose(targets, col(1.25, 2.6, 3.25))


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_estimators_agree_where_they_should_on_random_segments(lam):
    r, v, v_next, term, done = _random_segment(seed=3)
    g = torch.Generator().manual_seed(4)
    soft = torch.rand(r.shape, generator=g, dtype=torch.float64)  # learned continue probs
    last = torch.randn(1, r.shape[1], generator=g, dtype=torch.float64)
    imagined_next = torch.cat([v[1:], last])  # one trajectory: V(s_{t+1}) is the next V(s_t)
    for cont, nxt, cut in ((1.0 - term, v_next, done), (soft, imagined_next, None)):
        lr, lr_adv = estimate("lambda_return", r, v, nxt, cont, 0.9, lam, cut)
        ga, ga_adv = estimate("gae", r, v, nxt, cont, 0.9, lam, cut)
        assert torch.allclose(lr, ga) and torch.allclose(lr_adv, ga_adv)
        if lam == 1.0:
            assert torch.allclose(estimate("monte_carlo", r, v, nxt, cont, 0.9, 0.3, cut)[0], lr)
        if lam == 0.0:
            assert torch.allclose(estimate("td0", r, v, nxt, cont, 0.9, 0.7, cut)[0], lr)
    # with hard ends the dispatcher matches the plain functions (done cuts, terminated stops)
    assert torch.allclose(
        estimate("gae", r, v, v_next, 1.0 - term, 0.9, lam, done)[1],
        gae(r, v, v_next, term, 0.9, lam, done),
    )


def test_estimate_monte_carlo_is_the_plain_function_bootstrapped():
    r, v, v_next, _, _ = _random_segment(seed=5)
    cont = torch.ones_like(r)
    targets, _ = estimate("monte_carlo", r, v, v_next, cont, 0.9, 0.5)
    assert torch.allclose(targets, monte_carlo(r, 1.0 - cont, 0.9, last_value=v_next[-1]))


def test_estimate_unknown_name_suggests():
    assert set(ESTIMATORS) == {"lambda_return", "gae", "td0", "monte_carlo"}
    with pytest.raises(ValueError, match="did you mean 'gae'"):
        estimate("gea", R, V, V_NEXT, ONE, GAMMA, LAM)
