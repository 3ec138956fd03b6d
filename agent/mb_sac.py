"""Model-based SAC: Soft Actor-Critic on world-model features, trained on imagined transitions.

Real data trains only the world model (``agent.model_based``: explore, model updates, then this
behaviour phase). Per behaviour phase:
  1. encode ``start_sequences`` replayed sequences of ``start_length``: posterior features f
       real transitions      (f_t, a_{t+1}, r_{t+1}, f_{t+1}, terminal_{t+1}), within episodes
  2. imagined transitions: ``imagine_horizon`` policy steps from every posterior state,
       a_t ~ pi(f_t), s_{t+1} ~ p(s | s_t, a_t): (f_t, a_t, r(f_{t+1}), f_{t+1}, 1 - cont(f_{t+1}))
  3. ``sac_updates`` SAC steps (agent.sac's losses with states = features), each on a batch of
     ``batch_size`` rows, round(real_ratio batch_size) of them real and the rest imagined:
       y       = r + gamma (1 - d) (min_j Q'_j(f', a') - alpha log pi(a'|f')),  a' ~ pi(f')
       L_Q     = sum_j (Q_j(f, a) - y)^2
       L_pi    = alpha log pi(a~|f) - min_j Q_j(f, a~),                          a~ ~ pi(f)
       L_alpha = -log alpha (log pi(a~|f) + target_entropy)
       Q'     <- (1 - tau) Q' + tau Q
     (d is the model's 1 - cont, a probability, for imagined rows; 0/1 for real ones)
Transitions are drawn afresh every phase, so features always come from the current model (a
buffer of old latent transitions would not match a model that has moved on). The model's
weights never move here. ``return_estimator`` and ``lam`` of the shared config are unused (SAC
bootstraps one step). Pendulum-v1 settings that learn within a CPU budget: :data:`PENDULUM`.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from agent.common.networks import SquashedGaussianActor, mlp
from agent.common.rssm import Latent
from agent.common.sequence_replay import Batch
from agent.config import TrialConfig
from agent.losses import polyak_
from agent.model_based import Imagined, ModelBasedAgent
from agent.registry import register
from agent.sac import STATS
from agent.sections import MBSACConfig
from agent.world_model import SMOKE_WORLD_MODEL

Transitions = dict[str, Tensor]  # feat [N, F], action [N, A], reward [N], next_feat, done [N]

#: Pendulum-v1 overrides: a small world model, enough updates to pass -400 by 15k env steps
PENDULUM: dict[str, Any] = {
    "world_model.deter": 64,
    "world_model.stoch": 8,
    "world_model.hidden": 64,
    "world_model.batch_size": 16,
    "world_model.seq_len": 32,
}

# --- pure functions --------------------------------------------------------------------------


def real_transitions(feat: Tensor, batch: dict[str, Any]) -> Transitions:
    """Consecutive posterior features of real sequences -> the transitions between them.

    feat [B, T, F] from ``batch`` (action, reward, is_first, is_terminal [B, T, ...]). Step t -> t+1
    is a transition unless t+1 starts an episode; its action, reward and terminal flag are those
    stored at t+1 (replay stores what led to a step at that step). Returns N <= B (T-1) rows.
    """
    keep = ~batch["is_first"][:, 1:]  # [B, T-1]
    return {
        "feat": feat[:, :-1][keep],
        "action": batch["action"][:, 1:][keep],
        "reward": batch["reward"][:, 1:][keep],
        "next_feat": feat[:, 1:][keep],
        "done": batch["is_terminal"][:, 1:][keep].to(feat.dtype),
    }


def imagined_transitions(feat: Tensor, action: Tensor, reward: Tensor, cont: Tensor) -> Transitions:
    """An imagined rollout, time-major, -> flat transitions.

    feat [H+1, N, F], action [H, N, A], reward and cont [H, N] (of the arrival state f_{t+1}).
    Returns H N rows with ``done = 1 - cont`` (a probability).
    """
    return {
        "feat": feat[:-1].flatten(0, 1),
        "action": action.flatten(0, 1),
        "reward": reward.flatten(),
        "next_feat": feat[1:].flatten(0, 1),
        "done": (1.0 - cont).flatten(),
    }


def mixed_batch(
    real: Transitions, imagined: Transitions, size: int, real_ratio: float, rng: np.random.Generator
) -> Transitions:
    """``size`` rows drawn uniformly with replacement: round(real_ratio size) from ``real``, the
    rest from ``imagined`` (all real if there is no imagined row and vice versa)."""
    n_real = round(real_ratio * size)
    if len(imagined["reward"]) == 0:
        n_real = size
    if len(real["reward"]) == 0:
        n_real = 0
    parts = []
    for pool, n in ((real, n_real), (imagined, size - n_real)):
        if n:
            idx = torch.from_numpy(rng.integers(0, len(pool["reward"]), n))
            parts.append({k: v[idx] for k, v in pool.items()})
    return {k: torch.cat([p[k] for p in parts]) for k in real}


def soft_return(
    reward: Tensor,
    logp: Tensor,
    weight: Tensor,
    v_last: Tensor,
    gamma: float,
    alpha: float | Tensor,
) -> Tensor:
    """The soft return of the model's own rollout, what Q(f_0, a_0) estimates:

    G_0 = sum_{t<H} gamma^t w_t r_t - alpha sum_{0<t<H} gamma^t w_t log pi(a_t|f_t)
          + gamma^H w_H V(f_H)

    reward, logp [H, N]; weight [H+1, N] (w_t = prod_{k<t} cont_k, w_0 = 1); v_last [N] the
    soft value min_j Q'_j(f_H, a) - alpha log pi(a|f_H). Returns [N].
    """
    H = reward.shape[0]
    disc = gamma ** torch.arange(H + 1, dtype=reward.dtype)[:, None]  # [H+1, 1]
    w = disc * weight
    return (w[:-1] * reward).sum(0) - alpha * (w[1:-1] * logp[1:]).sum(0) + w[-1] * v_last


# --- the agent -------------------------------------------------------------------------------


@register("mb_sac", "SAC on world-model features, on imagined plus a share of real transitions")
class MBSAC(ModelBasedAgent):
    Config = MBSACConfig
    sections = ("mb_sac", "world_model")
    #: the agent contract's run (agent.base.SMOKE_RUN)
    smoke: ClassVar[dict[str, Any]] = {
        **SMOKE_WORLD_MODEL,
        "mb_sac.hidden": [16, 16],
        "mb_sac.prefill": 100,
        "mb_sac.explore_steps": 50,
        "mb_sac.model_updates": 2,
        "mb_sac.sac_updates": 3,
        "mb_sac.start_sequences": 4,
        "mb_sac.start_length": 8,
        "mb_sac.batch_size": 32,
        "mb_sac.imagine_horizon": 3,
    }

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        c: MBSACConfig = self.c
        self.actor = SquashedGaussianActor(self.feat_dim, self.act_dim, c.hidden, c.activation)
        # both Q heads in one ensemble MLP: [2, N, F + A] -> [2, N, 1]
        self.critic = mlp(
            self.feat_dim + self.act_dim, c.hidden, 1, c.activation, out_role="q", ensemble=2
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(c.init_alpha)), requires_grad=True)
        self.target_entropy = -float(self.act_dim) if c.target_entropy is None else c.target_entropy
        groups = [
            {"params": list(self.actor.parameters()), "lr": c.lr},
            {"params": list(self.critic.parameters()), "lr": c.critic_lr or c.lr},
        ]
        if c.alpha == "auto":
            groups.append({"params": [self.log_alpha], "lr": c.lr})
        self.opt = torch.optim.Adam(groups)
        self.batch_rng = np.random.default_rng(cfg.seed + 5)

    def behaviour_networks(self) -> dict[str, nn.Module]:
        return {"actor": self.actor, "critic": self.critic}

    def after_init(self) -> None:
        self.critic_target.load_state_dict(self.critic.state_dict())

    @property
    def alpha(self) -> Tensor:
        if self.c.alpha == "auto":
            return self.log_alpha.detach().exp()
        return torch.tensor(float(self.c.alpha))

    def q(self, critic: nn.Module, feat: Tensor, action: Tensor) -> Tensor:
        """Both Q heads: [N, F], [N, A] -> [2, N] (the ensemble takes [2, N, F + A])."""
        x = torch.cat([feat, action], -1)
        return critic(x.unsqueeze(0).expand(2, *x.shape)).squeeze(-1)

    @torch.no_grad()
    def critic_scale(self, feat: Tensor) -> float:
        action, _, _ = self.sample_action(feat)
        return float(self.q(self.critic, feat, action).abs().mean())

    # --- behaviour learning ------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, num_sequences: int, length: int) -> tuple[Batch, Latent]:
        """A replayed batch and its posteriors [B, T] (``start_states`` without flattening: the
        real transitions need the sequences' actions, rewards and episode starts)."""
        batch = self.replay.sample(num_sequences, length)
        posts, _ = self.model.observe(
            self.model.batch_obs(batch), batch["action"], batch["is_first"]
        )
        return batch, posts

    def required_steps(self) -> int:
        return max(super().required_steps(), self.c.start_length)

    def behaviour_phase(self) -> dict[str, Any]:
        c = self.c
        batch, posts = self.encode(c.start_sequences, c.start_length)
        real = real_transitions(self.model.features(posts), batch)
        imag = self.imagine(posts.flatten(), c.imagine_horizon)
        imagined = imagined_transitions(imag.feat, imag.action, imag.reward, imag.cont)
        sums = torch.zeros(len(STATS))
        for _ in range(c.sac_updates):
            sums += self.update(
                mixed_batch(real, imagined, c.batch_size, c.real_ratio, self.batch_rng)
            )
        out = dict(zip(STATS, (sums / c.sac_updates).tolist()))
        if c.alpha != "auto":
            out.pop("loss/alpha")
        out["train/alpha"] = float(self.alpha)
        out.update(self.value_check(imag))
        return out

    def losses(self, b: Transitions) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(L_Q, L_pi, L_alpha, detached STATS) on a batch of transitions, as agent.sac."""
        c, alpha = self.c, self.alpha
        with torch.no_grad():
            next_act, next_logp, _ = self.sample_action(b["next_feat"])
            q_next = self.q(self.critic_target, b["next_feat"], next_act).min(0).values
            target = b["reward"] + c.gamma * (1.0 - b["done"]) * (q_next - alpha * next_logp)
        q = self.q(self.critic, b["feat"], b["action"])  # [2, N]
        critic_loss = (q - target).pow(2).mean(1).sum()
        new_act, logp, _ = self.sample_action(b["feat"])
        self.critic.requires_grad_(False)  # the actor's pass moves only the policy
        q_pi = self.q(self.critic, b["feat"], new_act).min(0).values
        self.critic.requires_grad_(True)
        actor_loss = (alpha * logp - q_pi).mean()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        stats = torch.stack([critic_loss, actor_loss, alpha_loss, -logp.mean(), q.mean()])
        if c.alpha != "auto":
            alpha_loss = torch.zeros(())
        return critic_loss, actor_loss, alpha_loss, stats.detach()

    def update(self, batch: Transitions) -> Tensor:
        """One Adam step of critic, actor and temperature, then the target's; returns STATS."""
        critic_loss, actor_loss, alpha_loss, stats = self.losses(batch)
        self.opt.zero_grad(set_to_none=True)
        (critic_loss + actor_loss + alpha_loss).backward()
        self.opt.step()
        polyak_(list(self.critic_target.parameters()), list(self.critic.parameters()), self.c.tau)
        self.updates += 1
        return stats

    @torch.no_grad()
    def value_check(self, imag: Imagined) -> dict[str, Tensor]:
        """The critic against the model's own rollout of the current policy (see soft_return):
        ``imagine/return`` G_0, ``imagine/q`` Q(f_0, a_0), ``imagine/value_error`` |Q - G_0|."""
        alpha = self.alpha
        weight = torch.cumprod(torch.cat([torch.ones_like(imag.cont[:1]), imag.cont]), 0)
        act, logp, _ = self.sample_action(imag.feat[-1])
        v_last = self.q(self.critic_target, imag.feat[-1], act).min(0).values - alpha * logp
        g0 = soft_return(imag.reward, imag.logp, weight, v_last, self.c.gamma, alpha)
        q0 = self.q(self.critic, imag.feat[0], imag.action[0]).min(0).values
        return {
            "imagine/return": g0.mean(),
            "imagine/q": q0.mean(),
            "imagine/value_error": (q0 - g0).abs().mean(),
            "imagine/reward": imag.reward.mean(),
            "imagine/cont": imag.cont.mean(),
        }

    # --- checkpoints ---------------------------------------------------------------------------
    def behaviour_state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "opt": self.opt.state_dict(),
            "batch_rng": self.batch_rng.bit_generator.state,
        }

    def load_behaviour_state_dict(self, s: dict[str, Any]) -> None:
        self.actor.load_state_dict(s["actor"])
        self.critic.load_state_dict(s["critic"])
        self.critic_target.load_state_dict(s["critic_target"])
        self.log_alpha.data.copy_(s["log_alpha"])
        self.opt.load_state_dict(s["opt"])
        self.batch_rng.bit_generator.state = s["batch_rng"]
