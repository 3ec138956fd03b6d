"""SAC's fast update: the gradients of ``SAC.losses`` written by hand, bf16 compute copies and
a fused Adam step, for plain-MLP SAC on CPU.

``SAC.update`` uses it when ``sac.manual_grad`` is true (the default), ``actor_step`` is
``joint``, the nets have no layer norm and the activation has a hand-written derivative
(``agent.common.manual_grad.THROUGH``). It computes what ``SAC.losses`` and one backward pass
would, with the same noise: the actor runs once on [obs; next_obs], the critic once on
[(s, a); (s, a~)], and the critic's weight gradients are taken from the TD rows only. Its
gradients equal autograd's up to float rounding (tests/test_manual_grad.py); an update takes
~1.3x less CPU time here (bench/sac_vs_sb3.py), which is why research sweeps run it by default.

All its state (views of the layers and their gradients, the bf16 copies, the fused Adam step)
lives in one :class:`FastViews`, built on first use and rebuilt when a checkpoint or an autograd
step replaced the gradient tensors or the optimiser's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from agent.common import manual_grad
from agent.common.distributions import LOG_2PI, tanh_log_det
from agent.losses import polyak_

if TYPE_CHECKING:
    from agent.sac import SAC

Layer = tuple[torch.Tensor, torch.Tensor]


@dataclass
class FastViews:
    """Views of the agent's layers and gradient buffers, in the layout the update needs."""

    trunk: list[Layer]  # the policy trunk's (weight, bias), bf16 copies past the first if bf16
    trunk_grads: list[Layer]
    critic: list[list[Layer]]  # [Q head k][layer]: member k of each ensemble layer
    target: list[list[Layer]]
    critic_grads: list[list[Layer]]
    head_grads: Layer  # one [2A, H] / [2A] buffer for both policy heads' gradients
    head_scatter: list[tuple[torch.Tensor, torch.Tensor]]  # (param, its rows of head_grads)
    grads: list[tuple[torch.Tensor, torch.Tensor]]  # (param, the .grad these views hold)
    bf16: bool
    copies: manual_grad.ComputeCopies | None = None  # bf16 copies, refreshed every update
    adam: manual_grad.FusedAdamStep | None = None  # built after the first opt.step()


def usable(agent: SAC) -> bool:
    """Whether ``agent``'s update can take the hand-written path (plain MLPs, joint step)."""
    c = agent.c
    return (
        c.manual_grad
        and c.actor_step == "joint"
        and not c.layer_norm
        and c.activation in manual_grad.THROUGH
    )


class SACFastPath:
    """The hand-written update of one SAC agent (it reads and writes the agent's tensors)."""

    def __init__(self, agent: SAC):
        self.agent = agent
        self.state: FastViews | None = None

    def invalidate(self) -> None:
        """Forget the views (after the optimiser's state or the parameters were replaced)."""
        self.state = None

    def explore_action(self, obs: torch.Tensor) -> torch.Tensor:
        """A policy sample for one observation [1, O] -> [A], without the modules' dispatch
        and the log-probability (the same draw as ``squashed_sample``). Called once per env
        step, under the caller's ``inference_mode`` (``SAC._explore_action``)."""
        a = self.agent
        a_dim = a.low.shape[0]
        h = manual_grad.forward(obs, trunk_layers(a), a.c.activation, linear_out=False)[-1]
        w, b = heads(a)
        out = torch.addmm(b, h, w.t())
        lo, hi = a.actor.log_std_bounds
        std = out[:, a_dim:].clamp(lo, hi).exp_()
        return torch.tanh_(out[:, :a_dim] + torch.randn(1, a_dim) * std)[0]

    @torch.no_grad()
    def update(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``SAC.update`` without autograd: the gradients into ``.grad``, then the same Adam
        step and target update; returns the detached STATS."""
        a = self.agent
        stats = self.grads(batch)
        v = self.state
        if v.adam is None:
            a.opt.step()
            v.adam = manual_grad.FusedAdamStep(a.opt)
        else:
            v.adam()
        polyak_(a.target_params, a.critic_params, a.c.tau)
        a.updates += 1
        return stats

    @torch.no_grad()
    def grads(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Set every parameter's ``.grad`` to d(L_Q + L_pi + L_alpha) (as ``SAC.losses`` and one
        backward pass would, same noise) and return the detached STATS."""
        ag, v = self.agent, self.views()
        c, act_fn = ag.c, ag.c.activation
        through = manual_grad.THROUGH[act_fn]
        obs, act, rew, next_obs, term = batch
        b, a_dim = act.shape
        alpha = ag.alpha
        if v.copies is not None:  # bf16: this step's weights into the compute copies
            v.copies.refresh()
        head_w, head_b = heads(ag)
        # policy on [obs; next_obs] (noise drawn in ``losses``' order: next_obs first)
        eps_next, eps = torch.randn(b, a_dim), torch.randn(b, a_dim)
        hs = manual_grad.forward(torch.cat([obs, next_obs]), v.trunk, act_fn, linear_out=False)
        features = hs[-1].float()  # the heads compute in float32 (a no-op without bf16)
        out = torch.addmm(head_b, features, head_w.t())  # [2B, 2A]: mean | raw log-std
        lo, hi = ag.actor.log_std_bounds
        mean, raw = out[:, :a_dim], out[:, a_dim:]
        log_std = raw.clamp(lo, hi)
        std = log_std.exp()
        noise = torch.cat([eps, eps_next])
        u = mean + noise * std
        a = torch.tanh(u)
        logp = (-0.5 * noise.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1) - tanh_log_det(u)
        new_act, next_act, logp_new = a[:b], a[b:], logp[:b]
        # soft Bellman target from the target critic
        x_next = torch.cat([next_obs, next_act], -1)
        q_next = torch.minimum(
            *(manual_grad.forward(x_next, layers, act_fn)[-1][:, 0] for layers in v.target)
        )
        target = rew + c.gamma * (1.0 - term) * (q_next - alpha * logp[b:])
        # both Q heads on the replay actions (rows :B, L_Q) and on the policy's (rows B:, L_pi)
        x = torch.cat([torch.cat([obs, act], -1), torch.cat([obs, new_act], -1)])
        passes = [manual_grad.forward(x, layers, act_fn) for layers in v.critic]
        q = torch.stack([p[-1][:, 0] for p in passes])  # [2, 2B]
        td = q[:, :b] - target
        first_min = q[0, b:] <= q[1, b:]  # the head min(Q_1, Q_2) takes in L_pi, per row
        grad_act = torch.zeros(b, a_dim)
        for k, (layers, outs) in enumerate(zip(v.critic, passes)):
            chosen = (first_min if k == 0 else ~first_min).float()
            grad_q = torch.cat([td[k] * (2.0 / b), chosen * (-1.0 / b)]).unsqueeze(1)
            delta = manual_grad.backward(outs, layers, grad_q, act_fn, v.critic_grads[k], rows=b)
            grad_act += delta[b:] @ layers[0][0][:, -a_dim:]  # dL_pi/da~ (critic frozen)
        # actor: L_pi = mean(alpha log pi(a~|s) - min Q(s, a~)) through a~ = tanh(mean + e std),
        # log pi = sum(-e^2/2 - log std - log(2 pi)/2) - log|det tanh'(u)|
        grad_u = grad_act * (1.0 - new_act * new_act) + (2.0 / b) * alpha * new_act
        in_bounds = (raw[:b] >= lo) & (raw[:b] <= hi)
        grad_log_std = (grad_u * noise[:b] * std[:b] - alpha / b) * in_bounds
        grad_out = torch.cat([grad_u, grad_log_std], -1)
        grad_w, grad_b = v.head_grads
        torch.mm(grad_out.t(), features[:b], out=grad_w)
        torch.sum(grad_out, 0, out=grad_b)
        grad_h = through(grad_out @ head_w, features[:b])
        manual_grad.backward([h[:b] for h in hs[:-1]], v.trunk, grad_h, act_fn, v.trunk_grads)
        for param, grad in v.head_scatter:
            param.grad.copy_(grad)
        # temperature
        logp_mean = logp_new.mean()
        if c.alpha == "auto":
            ag.log_alpha.grad.copy_(-(logp_mean + ag.target_entropy))
        critic_loss = td.pow(2).mean(-1).sum(0)
        actor_loss = (alpha * logp_new - torch.minimum(q[0, b:], q[1, b:])).mean()
        alpha_loss = -(ag.log_alpha.detach() * (logp_mean + ag.target_entropy))
        return torch.stack([critic_loss, actor_loss, alpha_loss, -logp_mean, q[:, :b].mean()])

    def views(self) -> FastViews:
        """The views (built once; rebuilt when the gradients or the optimiser's state were
        replaced, e.g. by an autograd step or a checkpoint, or ``bf16`` changed)."""
        v = self.state
        if v is not None and v.bf16 == self.agent.c.bf16 and all(p.grad is g for p, g in v.grads):
            return v
        self.state = _build_views(self.agent)
        return self.state


def trunk_layers(agent: SAC) -> list[Layer]:
    return [(m.weight, m.bias) for m in agent.actor.trunk if isinstance(m, torch.nn.Linear)]


def heads(agent: SAC) -> Layer:
    """The policy's two heads stacked ([2A, H], [2A]: mean | log-std)."""
    m, s = agent.actor.mean, agent.actor.log_std
    return torch.cat([m.weight, s.weight]), torch.cat([m.bias, s.bias])


def _build_views(agent: SAC) -> FastViews:
    params = [*agent.actor.parameters(), *agent.critic_params]
    if agent.c.alpha == "auto":
        params.append(agent.log_alpha)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    trunk = trunk_layers(agent)
    ens = [m for m in agent.critic if hasattr(m, "ensemble_size")]
    ens_target = [m for m in agent.critic_target if hasattr(m, "ensemble_size")]
    n, h = agent.actor.mean.out_features, agent.actor.mean.in_features
    head_w, head_b = torch.empty(2 * n, h), torch.empty(2 * n)
    m, s = agent.actor.mean, agent.actor.log_std
    v = FastViews(
        trunk=trunk,
        trunk_grads=[(w.grad, b.grad) for w, b in trunk],
        critic=[[(lin.weight[k], lin.bias[k]) for lin in ens] for k in range(2)],
        target=[[(lin.weight[k], lin.bias[k]) for lin in ens_target] for k in range(2)],
        critic_grads=[[(lin.weight.grad[k], lin.bias.grad[k]) for lin in ens] for k in range(2)],
        head_grads=(head_w, head_b),
        head_scatter=[
            (m.weight, head_w[:n]),
            (m.bias, head_b[:n]),
            (s.weight, head_w[n:]),
            (s.bias, head_b[n:]),
        ],
        grads=[(p, p.grad) for p in params],
        bf16=agent.c.bf16,
    )
    if agent.c.bf16:
        # the big hidden-to-hidden matmuls compute in bf16 copies of their layers; each net's
        # first layer (raw observations and actions in) and heads stay float32
        low = [(m.weight, m.bias) for m in [*ens[1:-1], *ens_target[1:-1]]]
        copies = manual_grad.ComputeCopies([t for layer in [*trunk[1:], *low] for t in layer])
        swap = dict(zip(map(id, copies.sources), copies.copies))

        def low_precision(t: torch.Tensor) -> torch.Tensor:
            return swap.get(id(t), t)

        v.trunk = [(low_precision(w), low_precision(b)) for w, b in trunk]
        v.critic, v.target = (
            [
                [(low_precision(m.weight)[k], low_precision(m.bias)[k]) for m in lins]
                for k in range(2)
            ]
            for lins in (ens, ens_target)
        )
        v.copies = copies
    return v
