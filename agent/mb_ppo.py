"""Model-based PPO: on-policy PPO updates on trajectories imagined by the world model.

The research notes' loop. Per round (after ``prefill`` random real steps):
  1. ``explore_steps`` real steps, a ~ pi(. | f(s_t)) on the filtered posterior s_t, into replay
  2. ``model_updates`` world-model updates on replayed real sequences (``agent.world_model``)
  3. encode S = ``num_sequences`` x ``sequence_length`` start states at once: the posteriors of
     replayed sequences, s^i ~ q(s | x_{<=t}, a_{<t})
  4. ``updates_per_iteration`` times: sample M = ``minibatch_size`` of the S start states and
     imagine H = ``imagine_horizon`` steps with the CURRENT policy (so every update is on-policy),
         a_t = tanh(u_t), u_t ~ N(mu(f_t), sigma(f_t)),   s_{t+1} ~ p(s | s_t, a_t),
         r_t = r(f_{t+1}),   c_t = cont(f_{t+1}),   w_t = prod_{k<t} c_k,
     targets R_t and advantages A_t by ``return_estimator`` (agent.common.returns.estimate) from
     V(f_t), V(f_{t+1}), r_t, c_t; then ``epochs`` gradient steps on the same H M samples:
         ratio   = pi(a_t | f_t) / pi_old(a_t | f_t)            (= 1 at the first epoch)
         L_clip  = -mean(w_t min(ratio A_t, clip(ratio, 1 - eps, 1 + eps) A_t))
         L_V     = 0.5 mean(w_t (V(f_t) - R_t)^2)
         L       = L_clip - ent_coef mean(w_t H[pi(. | f_t)]) + L_V
     with A normalised over the batch (``normalize_advantages``), w / mean(w) as weights, one
     Adam step (actor and critic groups, each grad norm clipped to ``max_grad_norm``).
Nothing is differentiated through the model: the policy gradient reaches the actor only through
log pi(a_t | f_t) of the stored samples. H[pi] = E[-log pi(a | f)] is estimated with one
reparameterised sample per state.

Pendulum-v1: the defaults with the world-model size of :data:`PENDULUM` (used by
bench/mb_speed.py and the learning test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from agent.common.distributions import normal_log_prob, tanh_log_det
from agent.common.networks import SquashedGaussianActor, mlp
from agent.common.rssm import Latent
from agent.config import TrialConfig
from agent.losses import clipped_surrogate, ratio_stats
from agent.model_based import ModelBasedAgent
from agent.registry import register
from agent.sections import MBPPOConfig
from agent.world_model import SMOKE_WORLD_MODEL

#: bounds of the pre-squash log-std: above e^1 a tanh-Gaussian is almost bang-bang noise, and
#: an imagined policy gradient on an early, poor model can push sigma there (then the
#: deterministic tanh(mu) of evaluation says little about what was learned)
LOG_STD_BOUNDS = (-5.0, 1.0)


#: Pendulum-v1 settings of the world model section (its defaults are Dreamer's larger model):
#: a 64-unit model learns Pendulum as well and makes a round about 2.5x cheaper
PENDULUM: dict[str, Any] = {
    "world_model.deter": 64,
    "world_model.stoch": 8,
    "world_model.hidden": 64,
    "world_model.seq_len": 32,
}


@dataclass
class PPOBatch:
    """One imagined batch, flattened over time and trajectories: K = H M samples."""

    feat: Tensor  # [K, F]
    raw: Tensor  # [K, A] pre-squash actions
    logp: Tensor  # [K] log pi_old(a | f), the policy that imagined them
    adv: Tensor  # [K]
    target: Tensor  # [K]
    weight: Tensor  # [K] reach probability w_t


@register("mb_ppo", "model-based PPO: on-policy updates on imagined minibatches (the notes' loop)")
class MBPPO(ModelBasedAgent):
    Config = MBPPOConfig
    sections = ("mb_ppo", "world_model")
    #: the agent contract's run (agent.base.SMOKE_RUN)
    smoke: ClassVar[dict[str, Any]] = {
        **SMOKE_WORLD_MODEL,
        "world_model.proprio": ["ee_pos"],
        "mb_ppo.hidden": [16, 16],
        "mb_ppo.prefill": 100,
        "mb_ppo.explore_steps": 50,
        "mb_ppo.model_updates": 2,
        "mb_ppo.num_sequences": 4,
        "mb_ppo.sequence_length": 8,
        "mb_ppo.minibatch_size": 16,
        "mb_ppo.updates_per_iteration": 2,
        "mb_ppo.imagine_horizon": 5,
    }
    devices = ("cpu", "cuda")

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        c: MBPPOConfig = self.c
        self.actor = SquashedGaussianActor(
            self.feat_dim, self.act_dim, c.hidden, c.activation, log_std_bounds=LOG_STD_BOUNDS
        )
        self.critic = mlp(self.feat_dim, c.hidden, 1, c.activation, out_role="value")
        self.actor_params = list(self.actor.parameters())
        self.critic_params = list(self.critic.parameters())
        self.opt = torch.optim.Adam(
            [
                {"params": self.actor_params, "lr": c.actor_lr},
                {"params": self.critic_params, "lr": c.critic_lr},
            ],
            eps=1e-5,
            foreach=True,
        )

    def behaviour_networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic}

    def required_steps(self) -> int:
        return max(super().required_steps(), self.c.sequence_length)

    def critic_scale(self, feat: Tensor) -> float:
        return float(self.critic(feat).abs().mean())

    # --- behaviour learning --------------------------------------------------------------------
    def behaviour_phase(self) -> dict[str, Any]:
        c = self.c
        starts = self.start_states(c.num_sequences, c.sequence_length)
        n = starts.shape[0]
        sums: dict[str, Tensor] = {}
        for _ in range(c.updates_per_iteration):
            idx = torch.randint(n, (c.minibatch_size,), device=self.device)
            batch, metrics = self.imagine_batch(starts[idx])
            for _ in range(c.epochs):
                metrics.update(self.ppo_step(batch))
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
        out = {k: v / c.updates_per_iteration for k, v in sums.items()}
        out["train/start_states"] = float(n)
        return out

    @torch.no_grad()
    def imagine_batch(self, start: Latent) -> tuple[PPOBatch, dict[str, Tensor]]:
        """Imagine from ``start`` [M] with the current policy; targets and advantages."""
        imag = self.imagine(start, self.c.imagine_horizon)
        values = self.critic(imag.feat).squeeze(-1)  # [H+1, M]
        target, adv = self.returns(imag, values)
        batch = PPOBatch(
            imag.feat[:-1].flatten(0, 1),
            imag.raw.flatten(0, 1),
            imag.logp.flatten(),
            adv.flatten(),
            target.flatten(),
            imag.weight.flatten(),
        )
        return batch, self.imagine_metrics(imag, values)

    def ppo_losses(self, b: PPOBatch) -> dict[str, Tensor]:
        """The clipped surrogate, value loss and entropy on a batch (with their graphs), plus
        the ratio [K] and detached statistics."""
        c = self.c
        mean, log_std = self.actor(b.feat)
        logp = normal_log_prob(b.raw, mean, log_std) - tanh_log_det(b.raw)
        log_ratio = logp - b.logp
        ratio = log_ratio.exp()
        adv = b.adv
        if c.normalize_advantages and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        w = b.weight / b.weight.mean()
        policy_loss = (w * clipped_surrogate(adv, ratio, c.clip)).mean()
        # entropy of the tanh-Gaussian, one reparameterised sample per state (the pre-squash
        # Gaussian's closed form would reward sigma without bound although tanh saturates)
        u = mean + log_std.exp() * torch.randn_like(mean)
        entropy = (w * (tanh_log_det(u) - normal_log_prob(u, mean, log_std))).mean()
        value = self.critic(b.feat).squeeze(-1)
        value_loss = 0.5 * (w * (value - b.target).pow(2)).mean()
        approx_kl, clip_frac = ratio_stats(ratio, log_ratio, c.clip)
        return {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "ratio": ratio,
            "approx_kl": approx_kl,
            "clip_frac": clip_frac,
            "std": log_std.detach().exp().mean(),
        }

    def ppo_step(self, b: PPOBatch) -> dict[str, Tensor]:
        """One Adam step on L = L_clip - ent_coef H + L_V; returns detached metrics."""
        c = self.c
        out = self.ppo_losses(b)
        loss = out["policy_loss"] - c.ent_coef * out["entropy"] + out["value_loss"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.actor_params, c.max_grad_norm, foreach=True)
        nn.utils.clip_grad_norm_(self.critic_params, c.max_grad_norm, foreach=True)
        self.opt.step()
        self.updates += 1
        return {
            "loss/policy": out["policy_loss"].detach(),
            "loss/value": out["value_loss"].detach(),
            "train/entropy": out["entropy"].detach(),
            "train/approx_kl": out["approx_kl"],
            "train/clip_frac": out["clip_frac"],
            "train/std": out["std"],
        }

    # --- checkpoints ---------------------------------------------------------------------------
    def behaviour_state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "opt": self.opt.state_dict(),
        }

    def load_behaviour_state_dict(self, s: dict[str, Any]) -> None:
        self.actor.load_state_dict(s["actor"])
        self.critic.load_state_dict(s["critic"])
        self.opt.load_state_dict(s["opt"])
