"""Dreamer (Hafner et al. 2020, with DreamerV3's return normalisation): an actor-critic learned
purely in the world model's imagination.

Real data trains only the world model (``agent.model_based``: explore, model updates, then this
behaviour phase). Per behaviour phase, the posteriors of ``start_sequences`` replayed sequences of
``start_length`` are encoded once; each of ``behaviour_updates`` updates then imagines from a
fresh random ``imagine_batch`` of them (the notes' "encode many, then many minibatch updates"):
  1. imagine H = ``imagine_horizon`` steps, a_t ~ tanh(N(mu(f_t), sigma(f_t))) on features f_t,
       s_{t+1} ~ p(s | s_t, a_t),   r_t = r(f_{t+1}),   c_t = cont(f_{t+1})
  2. targets G_t from the slow critic V' by ``return_estimator`` (lambda_return by default):
       G_t = r_t + gamma c_t ((1 - lam) V'(s_{t+1}) + lam G_{t+1}),   G_{H-1} bootstraps V'(s_H)
     weights w_t = prod_{k<t} c_k (the trajectory's mass left after predicted terminations)
  3. return normalisation: S = max(1, EMA_decay(P95(G) - P5(G))),   A_t = (G_t - V(s_t)) / S
  4. actor   L_pi = -mean w (A + eta H)                 ``actor_grad: dynamics``: A carries the
                    gradient back through r, c, V' and the imagined states into the actions
             L_pi = -mean w (log pi(a|s) sg(A) + eta H)  ``actor_grad: reinforce``: the imagined
                    trajectory is a constant (the model is not differentiated)
     with H_t = -log pi(a_t|s_t) of the sampled action (no closed form for a tanh-Gaussian)
  5. critic  L_V = mean w (V(sg(s)) - sg(G))^2 / 2
  6. every ``target_every`` updates: V' <- (1 - tau) V' + tau V
The world model's weights never move here (frozen during the differentiated rollout).
Pendulum-v1 settings that learn within a CPU budget: :data:`PENDULUM`.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from agent.base import tensors_to
from agent.common.networks import SquashedGaussianActor, mlp
from agent.common.rssm import Latent
from agent.config import TrialConfig
from agent.losses import polyak_
from agent.model_based import Imagined, ModelBasedAgent
from agent.registry import register
from agent.sections import DreamerConfig
from agent.world_model import SMOKE_WORLD_MODEL

#: Pendulum-v1 overrides: a small world model, enough updates to pass -400 by 15k env steps
PENDULUM: dict[str, Any] = {
    "world_model.deter": 64,
    "world_model.stoch": 8,
    "world_model.hidden": 64,
    "world_model.batch_size": 16,
    "world_model.seq_len": 32,
}

# --- pure maths ------------------------------------------------------------------------------


def percentile_range(x: Tensor, low: float = 0.05, high: float = 0.95) -> tuple[Tensor, Tensor]:
    """The ``low`` and ``high`` quantiles of all elements of ``x`` (any shape) -> two scalars."""
    q = torch.quantile(x.detach().flatten().float(), torch.tensor([low, high], device=x.device))
    return q[0], q[1]


def ema_range(
    state: Tensor | None, x: Tensor, decay: float, low: float = 0.05, high: float = 0.95
) -> Tensor:
    """One EMA step of the percentile range: state [2] = (lo, hi), or None before the first batch
    (then the batch's own percentiles, so the estimate starts unbiased rather than at zero).

    lo <- decay lo + (1 - decay) P_low(x),  hi <- decay hi + (1 - decay) P_high(x).  Returns [2].
    """
    lo, hi = percentile_range(x, low, high)
    new = torch.stack([lo, hi])
    if state is None:
        return new
    return decay * state + (1.0 - decay) * new


def return_scale(state: Tensor, limit: float = 1.0) -> Tensor:
    """S = max(limit, hi - lo) from an EMA state [2]: returns spread over less than ``limit`` are
    not scaled up (DreamerV3), so sparse or tiny rewards keep their size."""
    return (state[1] - state[0]).clamp_min(limit)


def actor_loss(
    returns: Tensor,
    values: Tensor,
    logp: Tensor,
    weights: Tensor,
    scale: Tensor,
    actor_grad: Literal["dynamics", "reinforce"],
    entropy_coef: float,
) -> Tensor:
    """Dreamer's actor loss on imagined steps; every input [H, N] except scale (scalar).

    A = (G - sg(V)) / sg(S).  dynamics:  -mean(w (A + eta H)),  gradient through G;
    reinforce: -mean(w (log pi sg(A) + eta H)),  G is treated as a constant.  H = -logp.
    ``weights`` and ``scale`` are always constants.
    """
    adv = (returns - values.detach()) / scale.detach()
    if actor_grad == "dynamics":
        objective = adv
    elif actor_grad == "reinforce":
        objective = logp * adv.detach()
    else:
        raise ValueError(f"actor_grad must be 'dynamics' or 'reinforce', got {actor_grad!r}")
    return -(weights.detach() * (objective - entropy_coef * logp)).mean()


def critic_loss(values: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """mean(w (V - sg(G))^2) / 2 on [H, N] tensors."""
    return 0.5 * (weights.detach() * (values - targets.detach()).pow(2)).mean()


#: the detached scalars every update reports (train() averages them)
STATS = ("loss/actor", "loss/critic", "train/entropy", "train/value", "imagine/return_scale")


@register("dreamer", "Dreamer: actor-critic in imagination, lambda-returns, slow critic")
class Dreamer(ModelBasedAgent):
    Config = DreamerConfig
    sections = ("dreamer", "world_model")
    #: the agent contract's run (agent.base.SMOKE_RUN)
    smoke: ClassVar[dict[str, Any]] = {
        **SMOKE_WORLD_MODEL,
        "dreamer.hidden": [16, 16],
        "dreamer.prefill": 100,
        "dreamer.explore_steps": 50,
        "dreamer.model_updates": 2,
        "dreamer.behaviour_updates": 2,
        "dreamer.start_sequences": 4,
        "dreamer.start_length": 8,
        "dreamer.imagine_batch": 16,
        "dreamer.imagine_horizon": 5,
    }
    devices = ("cpu", "cuda")

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        c: DreamerConfig = self.c
        self.actor = SquashedGaussianActor(
            self.feat_dim, self.act_dim, c.hidden, c.activation, log_std_bounds=(c.log_std_min, 2.0)
        )
        self.critic = mlp(self.feat_dim, c.hidden, 1, c.activation, out_role="value")
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr, eps=c.adam_eps)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, eps=c.adam_eps)
        self.norm_state: Tensor | None = None  # EMA (lo, hi) of the returns' percentiles

    def behaviour_networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic}

    def after_init(self) -> None:
        self.critic_target.load_state_dict(self.critic.state_dict())

    @torch.no_grad()
    def critic_scale(self, feat: Tensor) -> float:
        return float(self.critic(feat).abs().mean())

    # --- behaviour learning ------------------------------------------------------------------
    def required_steps(self) -> int:
        return max(super().required_steps(), self.c.start_length)

    def behaviour_phase(self) -> dict[str, Any]:
        c = self.c
        starts = self.start_states(c.start_sequences, c.start_length)  # one encoding per round
        sums: dict[str, Tensor] = {}
        for _ in range(c.behaviour_updates):
            idx = torch.randint(
                starts.shape[0], (min(c.imagine_batch, starts.shape[0]),), device=self.device
            )
            for k, v in self.update(starts[idx]).items():
                sums[k] = sums.get(k, 0.0) + v
        return {k: v / c.behaviour_updates for k, v in sums.items()}

    def losses(self, start: Latent) -> tuple[Tensor, Tensor, dict[str, Tensor], Imagined]:
        """(L_pi, L_V, detached metrics, the imagination) from start states [N]."""
        c = self.c
        dynamics = c.actor_grad == "dynamics"
        imag = self.imagine(start, c.imagine_horizon, grad=dynamics)
        # dynamics: gradients reach the actions through V'(s_{t+1}), r and c; V' is frozen
        targets, _ = self.returns(imag, self.critic_target(imag.feat).squeeze(-1))
        weights = imag.weight.detach()
        v_all = self.critic(imag.feat.detach()).squeeze(-1)  # [H+1, N]
        values = v_all[:-1]
        if dynamics:
            logp = imag.logp  # reparameterised: the entropy term differentiates the sample too
        else:  # the trajectory is data: only log pi(a|s) of the taken actions is differentiated
            logp, _ = self.log_prob(imag.feat[:-1], imag.raw)
        if c.return_norm:
            self.norm_state = ema_range(
                self.norm_state, targets, c.norm_decay, c.norm_low, c.norm_high
            )
            scale = return_scale(self.norm_state, c.norm_limit)
        else:
            scale = torch.ones((), device=self.device)
        loss_pi = actor_loss(targets, values, logp, weights, scale, c.actor_grad, c.entropy_coef)
        loss_v = critic_loss(values, targets, weights)
        metrics = {
            "loss/actor": loss_pi,
            "loss/critic": loss_v,
            "train/entropy": -logp.mean(),
            "train/value": values.mean(),
            "imagine/return_scale": scale,
            "imagine/target": targets.mean(),
            **self.imagine_metrics(imag, v_all.detach()),
        }
        return loss_pi, loss_v, {k: v.detach() for k, v in metrics.items()}, imag

    def update(self, start: Latent) -> dict[str, Tensor]:
        """One actor step and one critic step; then the slow critic's update when due."""
        c = self.c
        loss_pi, loss_v, metrics, _ = self.losses(start)
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        # L_pi sees the critic only through sg(V) and L_V sees no actor: one backward suffices
        (loss_pi + loss_v).backward()
        for opt, net in ((self.actor_opt, self.actor), (self.critic_opt, self.critic)):
            metrics[f"train/grad_norm_{'actor' if net is self.actor else 'critic'}"] = (
                nn.utils.clip_grad_norm_(net.parameters(), c.grad_clip)
            )
            opt.step()
        self.updates += 1
        if self.updates % c.target_every == 0:
            polyak_(
                list(self.critic_target.parameters()), list(self.critic.parameters()), c.target_tau
            )
        return metrics

    # --- checkpoints ---------------------------------------------------------------------------
    def behaviour_state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "norm_state": self.norm_state,
        }

    def load_behaviour_state_dict(self, s: dict[str, Any]) -> None:
        self.actor.load_state_dict(s["actor"])
        self.critic.load_state_dict(s["critic"])
        self.critic_target.load_state_dict(s["critic_target"])
        self.actor_opt.load_state_dict(s["actor_opt"])
        self.critic_opt.load_state_dict(s["critic_opt"])
        self.norm_state = tensors_to(s["norm_state"], self.device)
