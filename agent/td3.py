"""Twin Delayed DDPG (TD3, Fujimoto et al. 2018): a deterministic tanh policy and twin critics.

Per env step:
  1. act: a = clip(mu(s) + N(0, sigma_explore), -1, 1), mu(s) = tanh(f(s)) in [-1, 1]; for the
     first ``learning_starts`` steps a ~ U(-1, 1) instead (``warmup: uniform``, as in the paper
     and SB3; ``warmup: policy`` acts with the initial policy from step 0)
  2. store (s, a, r, s', terminated) in the replay buffer
  3. every step from ``learning_starts`` on, ``utd`` updates on batches of ``batch_size``:
       a'   = clip(mu'(s') + clip(N(0, sigma_target), -c, c), -1, 1)  target policy smoothing
       y    = r + gamma (1 - d) min_j Q'_j(s', a')                     clipped double Q
       L_Q  = sum_j mean (Q_j(s, a) - y)^2                               one Adam step on Q
     and every ``policy_delay``-th update (delayed policy updates):
       L_mu = -mean Q_1(s, mu(s))                                        one Adam step on mu
       Q'  <- (1 - tau) Q' + tau Q,   mu' <- (1 - tau) mu' + tau mu      Polyak, with the actor
The actor's output layer has role ``policy_mean`` and the Q heads role ``q``, so the init
scenarios apply; a deterministic policy has no ``policy_std`` layer, so ``small_std`` is
``no_small`` here and ``small_mean_critic`` is ``small_outputs`` (README, "Init scenarios").

The losses are the module-level pure functions below; the class wires them to its networks.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from agent.base import SMOKE_RUN, Agent, to_tensor
from agent.common.envs import step_env
from agent.common.networks import EnsembleLinear, mlp
from agent.common.replay import ReplayBuffer
from agent.config import TrialConfig
from agent.losses import polyak_
from agent.registry import register
from agent.sections import TD3Config

# --- the maths ---------------------------------------------------------------------------------


def smoothed_target_action(next_mu: Tensor, eps: Tensor, noise: float, noise_clip: float) -> Tensor:
    """Target policy smoothing: clip(mu'(s') + clip(noise * eps, -c, c), -1, 1).

    next_mu [B, A] in [-1, 1] (the target actor's action), eps [B, A] standard normal -> [B, A].
    """
    return (next_mu + (noise * eps).clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def td_target(reward: Tensor, terminated: Tensor, q_next: Tensor, gamma: float) -> Tensor:
    """Clipped double-Q target y = r + gamma (1 - d) min_j Q'_j(s', a').

    reward, terminated [B]; q_next [2, B] (both target heads) -> [B].
    """
    return reward + gamma * (1.0 - terminated) * q_next.min(0).values


def critic_loss(q: Tensor, target: Tensor) -> Tensor:
    """sum_j mean_b (Q_j(s_b, a_b) - y_b)^2: q [2, B], target [B] (no gradient) -> scalar."""
    return (q - target.detach()).pow(2).mean(-1).sum(0)


def actor_loss(q1_pi: Tensor) -> Tensor:
    """Deterministic policy gradient objective -mean_b Q_1(s_b, mu(s_b)): q1_pi [B] -> scalar."""
    return -q1_pi.mean()


def exploration_action(mu: np.ndarray, eps: np.ndarray, noise: float) -> np.ndarray:
    """Gaussian exploration: clip(mu + noise * eps, -1, 1), mu and eps [..., A] -> [..., A]."""
    return np.clip(mu + noise * eps, -1.0, 1.0).astype(np.float32)


#: what ``update`` returns, in order; loss/actor only on the delayed actor updates
STATS = ("loss/critic", "train/q", "loss/actor")


class DeterministicActor(torch.nn.Module):
    """mu(s) = tanh(f(s)): an MLP whose output layer has role ``policy_mean`` (tanh follows)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: list[int], activation: str, layer_norm: bool
    ):
        super().__init__()
        self.net = mlp(
            obs_dim,
            hidden,
            act_dim,
            activation,
            out_role="policy_mean",
            out_activation="tanh",
            layer_norm=layer_norm,
        )

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.net(obs))


@register("td3", "TD3: deterministic tanh policy, twin Q, target smoothing, delayed actor")
class TD3(Agent):
    Config = TD3Config
    sections = ("td3",)
    #: the agent contract's run (agent.base.SMOKE_RUN)
    smoke: ClassVar[dict[str, Any]] = {
        **SMOKE_RUN,
        "td3.hidden": [32, 32],
        "td3.batch_size": 32,
        "td3.learning_starts": 100,
    }

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        c: TD3Config = cfg.section("td3")
        self.c = c
        obs_dim, act_dim = self.open_env()
        self.actor = DeterministicActor(obs_dim, act_dim, c.hidden, c.activation, c.layer_norm)
        # both Q heads in one ensemble MLP: [2, B, O + A] -> [2, B, 1]
        self.critic = mlp(
            obs_dim + act_dim,
            c.hidden,
            1,
            c.activation,
            out_role="q",
            layer_norm=c.layer_norm,
            ensemble=2,
        )
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, fused=True)
        self.pairs = [
            (list(self.actor_target.parameters()), list(self.actor.parameters())),
            (list(self.critic_target.parameters()), list(self.critic.parameters())),
        ]
        self.buffer = ReplayBuffer(
            min(c.buffer_size, cfg.total_steps), obs_dim, act_dim, seed=cfg.seed
        )
        self.np_rng = np.random.default_rng(cfg.seed + 1)  # warm-up and exploration noise
        self.updates = 0

    def networks(self):
        return {"actor": self.actor, "critic": self.critic}

    def after_init(self) -> None:
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())

    # --- the loop ---------------------------------------------------------------------------
    def train(self, until: int) -> dict[str, float]:
        sums, counts = torch.zeros(len(STATS)), torch.zeros(len(STATS))
        while self.env_steps < until:
            action = self._explore_action()
            next_obs, reward, term, trunc, _ = step_env(
                self.env, action, self.low, self.high, f"env '{self.env_spec.id}'", self.env_steps
            )
            self.buffer.add(self.obs, action, reward, next_obs, float(term))
            self.episode_return += float(reward)
            self.obs = next_obs
            self.env_steps += 1
            if term or trunc:
                self.completed_returns.append(self.episode_return)
                self.episode_return = 0.0
                self.obs, _ = self.env.reset()
            if self.env_steps >= self.c.learning_starts and self.buffer.size >= self.c.batch_size:
                for _ in range(self.c.utd):
                    stats = self.update()
                    seen = ~stats.isnan()
                    sums += torch.where(seen, stats, 0.0)
                    counts += seen
        out = {k: float(s / n) for k, s, n in zip(STATS, sums, counts) if n > 0}
        if self.completed_returns:
            out["train/return"] = float(np.mean(self.completed_returns[-10:]))
        out["train/updates"] = float(self.updates)
        return out

    @torch.inference_mode()
    def _explore_action(self) -> np.ndarray:
        a_dim = self.low.shape
        if self.env_steps < self.c.learning_starts and self.c.warmup == "uniform":
            return self.np_rng.uniform(-1.0, 1.0, a_dim).astype(np.float32)
        mu = self.actor(to_tensor(self.obs).unsqueeze(0))[0].numpy()
        return exploration_action(mu, self.np_rng.standard_normal(a_dim), self.c.exploration_noise)

    def update(self) -> Tensor:
        """One critic step, and every ``policy_delay``-th call an actor step and the Polyak
        update of both targets. Returns detached STATS (loss/actor NaN without an actor step)."""
        c = self.c
        obs, act, rew, next_obs, term = self.buffer.sample(c.batch_size)
        with torch.no_grad():
            eps = torch.randn_like(act)
            next_act = smoothed_target_action(
                self.actor_target(next_obs), eps, c.target_noise, c.target_noise_clip
            )
            target = td_target(rew, term, self._q(self.critic_target, next_obs, next_act), c.gamma)
        q = self._q(self.critic, obs, act)
        loss_q = critic_loss(q, target)
        self.critic_opt.zero_grad(set_to_none=True)
        loss_q.backward()
        self.critic_opt.step()
        self.updates += 1
        loss_mu = torch.tensor(float("nan"))
        if self.updates % c.policy_delay == 0:
            loss_mu = self.actor_step(obs)
            for target_params, online in self.pairs:
                polyak_(target_params, online, c.tau)
        return torch.stack([loss_q.detach(), q.detach().mean(), loss_mu])

    def actor_step(self, obs: Tensor) -> Tensor:
        """One Adam step of the actor on L_mu (the critic's weights get no gradient)."""
        self.critic.requires_grad_(False)
        loss = actor_loss(self._q1(obs, self.actor(obs)))
        self.critic.requires_grad_(True)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        return loss.detach()

    @staticmethod
    def _q(critic: torch.nn.Module, obs: Tensor, act: Tensor) -> Tensor:
        """Both Q heads: [B, O], [B, A] -> [2, B]."""
        x = torch.cat([obs, act], -1)
        return critic(x.unsqueeze(0).expand(2, *x.shape))[..., 0]

    def _q1(self, obs: Tensor, act: Tensor) -> Tensor:
        """The first Q head alone (member 0 of the ensemble, half the work): [B, O], [B, A] ->
        [B]."""
        x = torch.cat([obs, act], -1)
        for layer in self.critic:
            x = (
                F.linear(x, layer.weight[0], layer.bias[0])
                if isinstance(layer, EnsembleLinear)
                else layer(x)
            )
        return x[:, 0]

    # --- acting, diagnostics, checkpoints ---------------------------------------------------
    @torch.inference_mode()
    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        return self.actor(to_tensor(obs)).numpy(), state

    @torch.inference_mode()
    def init_probe(self, obs: np.ndarray) -> dict[str, Any]:
        """What the initial policy samples after the warm-up: clip(mu(s) + noise, -1, 1) on
        real states (noise from a generator of its own, so the probe leaves the run's streams
        alone). ``std`` is the exploration noise's; the entropy of a deterministic policy is
        not defined (None); ``mean_abs_mean`` is mean |mu(s)|."""
        mu = self.actor(to_tensor(obs)).numpy()
        eps = np.random.default_rng(self.cfg.seed + 2).standard_normal(mu.shape)
        actions = exploration_action(mu, eps, self.c.exploration_noise)
        q = self._q(self.critic, to_tensor(obs), torch.from_numpy(actions))
        return {
            "actions": actions,
            "entropy": None,
            "mean_abs_mean": float(np.abs(mu).mean()),
            "std": self.c.exploration_noise,
            "critic_scale": float(q.abs().mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            **self.env_state(),
            "np_rng": self.np_rng.bit_generator.state,
            "updates": self.updates,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.actor.load_state_dict(s["actor"])
        self.critic.load_state_dict(s["critic"])
        self.actor_target.load_state_dict(s["actor_target"])
        self.critic_target.load_state_dict(s["critic_target"])
        self.actor_opt.load_state_dict(s["actor_opt"])
        self.critic_opt.load_state_dict(s["critic_opt"])
        self.buffer.load_state_dict(s["buffer"])
        self.load_env_state(s)
        self.np_rng.bit_generator.state = s["np_rng"]
        self.updates = s["updates"]
