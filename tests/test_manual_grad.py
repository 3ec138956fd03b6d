"""The hand-written SAC update (agent/common/manual_grad.py, agent/sac_fast.py) against autograd:
same gradients for every parameter, same stats, and the same training over many steps."""

import pytest
import torch

from agent import build_config
from agent.base import seed_everything
from agent.common import manual_grad
from agent.sac import SAC


def trained_sac(**extra) -> SAC:
    cfg = build_config(
        {
            "agent": "sac",
            "env": "Pendulum-v1",
            "seed": 0,
            "total_steps": 2000,
            "sac.hidden": [32, 24],
            "sac.batch_size": 64,
            "preset": "none",
            "sac.learning_starts": 100,
            **extra,
        }
    )
    seed_everything(0)
    agent = SAC(cfg)
    agent.initialise()
    agent.train(300)  # 200 updates: the nets, alpha and the buffer are no longer at their init
    return agent


def params(agent: SAC) -> list[tuple[str, torch.Tensor]]:
    out = [(f"actor.{n}", p) for n, p in agent.actor.named_parameters()]
    out += [(f"critic.{n}", p) for n, p in agent.critic.named_parameters()]
    return out + ([("log_alpha", agent.log_alpha)] if agent.c.alpha == "auto" else [])


def autograd_grads(agent: SAC, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    critic_loss, actor_loss, alpha_loss, stats = agent.losses(batch)
    agent.opt.zero_grad(set_to_none=True)
    (critic_loss + actor_loss + alpha_loss).backward()
    return {n: p.grad.clone() for n, p in params(agent)}, stats


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"sac.activation": "tanh"},
        {"sac.activation": "elu", "sac.hidden": [16, 16, 16]},
        {"sac.activation": "leaky_relu", "sac.alpha": 0.2},
        {"sac.hidden": [48]},
        {"env": "Walker2d-v5"},  # 17-dim observations, 6-dim actions
    ],
)
def test_manual_gradients_equal_autograd(extra):
    agent = trained_sac(**extra)
    batch = agent.buffer.sample(64)
    rng = torch.get_rng_state()
    want, want_stats = autograd_grads(agent, batch)
    torch.set_rng_state(rng)  # the same policy noise
    got_stats = agent.fast.grads(batch)
    assert torch.allclose(got_stats, want_stats, rtol=1e-5, atol=1e-6)
    for name, p in params(agent):
        scale = want[name].abs().max()
        assert scale > 0, name  # every parameter really gets a gradient
        assert torch.allclose(p.grad, want[name], rtol=1e-4, atol=1e-5 * scale), name


def test_log_std_outside_its_bounds_gets_no_gradient():
    agent = trained_sac()
    with torch.no_grad():
        agent.actor.log_std.bias.fill_(5.0)  # raw log-std above the upper bound 2 everywhere
    batch = agent.buffer.sample(64)
    rng = torch.get_rng_state()
    want, _ = autograd_grads(agent, batch)
    torch.set_rng_state(rng)
    agent.fast.grads(batch)
    assert not agent.actor.log_std.weight.grad.any() and not want["actor.log_std.weight"].any()
    assert torch.allclose(agent.actor.mean.weight.grad, want["actor.mean.weight"], atol=1e-6)


def test_manual_and_autograd_training_stay_together():
    """300 full updates (Adam, target nets) from the same state and noise: the two paths differ
    only by float rounding, so the networks stay close."""
    runs = {}
    for manual in (False, True):
        agent = trained_sac(**{"sac.manual_grad": manual})
        torch.manual_seed(1)
        stats = torch.stack([agent.update() for _ in range(300)])
        runs[manual] = agent, stats
    (a, sa), (m, sm) = runs[False], runs[True]
    assert torch.allclose(sa, sm, rtol=1e-2, atol=1e-3)
    for (name, pa), (_, pm) in zip(params(a), params(m)):
        assert torch.allclose(pa, pm, rtol=1e-3, atol=1e-4), name
    for pa, pm in zip(a.target_params, m.target_params):
        assert torch.allclose(pa, pm, rtol=1e-3, atol=1e-4)


def steps_in_adam(agent: SAC) -> set[int]:
    return {int(st["step"]) for st in agent.opt.state.values()}


def test_switching_paths_and_resuming_keep_one_adam_state():
    """The fast Adam step works on the optimiser's own state: every path and a checkpoint
    round trip advance the same step counters and moments."""
    agent = trained_sac()
    assert steps_in_adam(agent) == {agent.updates} == {201}
    agent.c.manual_grad = False
    agent.update()  # autograd replaces .grad: the manual path's views go stale
    agent.c.manual_grad = True
    before = agent.actor.mean.weight.detach().clone()
    agent.update()  # views rebuilt on the new gradients
    assert steps_in_adam(agent) == {203} and not torch.equal(before, agent.actor.mean.weight)
    state = agent.state_dict()
    agent.load_state_dict(state)  # new moment tensors in the optimiser
    moments = [st["exp_avg"].clone() for st in agent.opt.state.values()]
    agent.update()
    assert steps_in_adam(agent) == {204} and agent.updates == 204
    assert all(
        not torch.equal(m, st["exp_avg"]) for m, st in zip(moments, agent.opt.state.values())
    )


def test_backward_matches_autograd_for_a_plain_mlp():
    torch.manual_seed(0)
    layers = [(torch.randn(8, 5), torch.randn(8)), (torch.randn(3, 8), torch.randn(3))]
    x = torch.randn(10, 5)
    outs = manual_grad.forward(x, layers, "tanh")
    g_out = torch.randn(10, 3)
    grads = [(torch.empty_like(w), torch.empty_like(b)) for w, b in layers]
    delta = manual_grad.backward(outs, layers, g_out, "tanh", rows=6, grads=grads)
    ws = [(w.clone().requires_grad_(), b.clone().requires_grad_()) for w, b in layers]
    xr = x.clone().requires_grad_()
    h = torch.tanh(xr[:6] @ ws[0][0].t() + ws[0][1])
    (h @ ws[1][0].t() + ws[1][1]).mul(g_out[:6]).sum().backward()
    for (gw, gb), (w, b) in zip(grads, ws):
        assert torch.allclose(gw, w.grad, atol=1e-5) and torch.allclose(gb, b.grad, atol=1e-5)
    assert torch.allclose(delta[:6] @ layers[0][0], xr.grad[:6], atol=1e-5)
    assert torch.equal(xr.grad[6:], torch.zeros(4, 5))  # rows past `rows` were not in the loss


@pytest.mark.parametrize(
    "extra",
    [
        {"sac.hidden": [64, 64]},
        {"sac.hidden": [32, 32, 32]},
        {"env": "Walker2d-v5", "sac.hidden": [64, 64]},
    ],
)
def test_bf16_gradients_follow_float32(extra):
    """sac.bf16 on the hand-written path: the hidden-to-hidden matmuls run on bf16 copies, the
    first layers and heads in float32. Every gradient points where autograd's float32 one does
    (bf16 rounds to ~3 significant digits), and what Adam sees stays float32."""
    agent = trained_sac(**extra)
    batch = agent.buffer.sample(64)
    rng = torch.get_rng_state()
    want, want_stats = autograd_grads(agent, batch)
    torch.set_rng_state(rng)
    agent.c.bf16 = True
    got_stats = agent.fast.grads(batch)
    v = agent.fast.state
    assert {t.dtype for t in v.copies.copies} == {torch.bfloat16}
    assert v.trunk[0][0] is agent.actor.trunk[0].weight  # first layer stays float32
    assert v.trunk[1][0].dtype == torch.bfloat16 and v.critic[0][1][0].dtype == torch.bfloat16
    assert torch.allclose(got_stats, want_stats, rtol=1e-2, atol=1e-2)
    for name, p in params(agent):
        assert p.grad.dtype == torch.float32
        g, w = p.grad.flatten(), want[name].flatten()
        assert not torch.equal(g, w) or name == "log_alpha", name  # bf16 really ran
        assert torch.nn.functional.cosine_similarity(g, w, 0) > 0.99, name
        assert (g - w).norm() <= 0.1 * w.norm(), name


def test_bf16_compute_copies_follow_the_weights():
    """The bf16 copies are refreshed from the float32 weights at every update (after Adam and
    the target update moved them), and a checkpoint round trip keeps the path working."""
    agent = trained_sac(**{"sac.bf16": True, "sac.hidden": [32, 32]})
    for _ in range(3):
        agent.update()
        agent.fast.grads(agent.buffer.sample(64))  # refreshes the copies, no step
        copies = agent.fast.state.copies
        for src, low in zip(copies.sources, copies.copies):
            assert torch.equal(low, src.to(torch.bfloat16))
    agent.load_state_dict(agent.state_dict())
    agent.update()
    assert agent.fast.state.copies.sources[0] is agent.actor.trunk[2].weight
