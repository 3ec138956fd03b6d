"""Proximal Policy Optimisation (Schulman et al. 2017) with the clipped surrogate, Box actions.

Per iteration, with N vectorised envs and T = ``n_steps``:
  1. roll out T steps of every env with a ~ N(mu(s), sigma) (sigma a state-independent vector by
     default), storing the normalised obs s, a, log pi_old(a|s), r (optionally scaled), V(s),
     terminated, done, and V(final obs) of every episode that ended (truncations bootstrap from it)
  2. A = gae(r, V(s), V(s'), terminated, gamma, lambda, done),   R = A + V(s)
  3. ``epochs`` passes over the N T samples in shuffled minibatches of ``minibatch_size``:
       ratio  = pi(a|s) / pi_old(a|s),          A normalised within the minibatch
       L_clip = -mean(min(ratio A, clip(ratio, 1 - eps, 1 + eps) A))
       L_V    = mean((V(s) - R)^2), or with ``value_clip`` the max of it and the clipped
                (V_old + clip(V(s) - V_old, -c, c) - R)^2
       L      = L_clip - ent_coef H[pi] + vf_coef L_V;  one Adam step after clipping the grad norm
The env gets clip(a, -1, 1) rescaled to its bounds; log-probs use the unclipped a (as SB3 does).
``env_steps`` advances by N per vector step, so it may pass ``until`` by fewer than N steps.

Pendulum-v1 settings (rl-zoo3's, without gSDE), used by bench/learning.py: :data:`PENDULUM`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agent.base import SMOKE_RUN, Agent
from agent.common.distributions import normal_entropy, normal_log_prob
from agent.common.envs import EnvError, restore, snapshot, step_env
from agent.common.networks import GaussianActor, mlp
from agent.common.normalize import ObsNormalizer, RewardScaler
from agent.common.returns import gae
from agent.config import TrialConfig
from agent.losses import clipped_surrogate, ratio_stats
from agent.registry import register
from agent.sections import PPOConfig

#: Pendulum-v1 overrides (rl-zoo3's tuned PPO minus gSDE): reaches about -200 by 200k env steps.
PENDULUM: dict[str, Any] = {
    "ppo.num_envs": 4,
    "ppo.n_steps": 1024,
    "ppo.gamma": 0.9,
    "ppo.gae_lambda": 0.95,
    "ppo.lr": 1e-3,
    "ppo.epochs": 10,
    "ppo.minibatch_size": 64,
    "ppo.clip": 0.2,
    "ppo.ent_coef": 0.0,
    "ppo.normalize_obs": True,
    "ppo.normalize_reward": True,
}


@register("ppo", "PPO: clipped surrogate, GAE, vectorised envs, obs/reward normalisation")
class PPO(Agent):
    Config = PPOConfig
    sections = ("ppo",)
    #: the agent contract's run (agent.base.SMOKE_RUN)
    #: Evaluations fall mid-rollout (2 envs x 64 steps); 300 steps cross a time limit
    smoke: ClassVar[dict[str, Any]] = {
        **SMOKE_RUN,
        "ppo.hidden": [16, 16],
        "ppo.num_envs": 2,
        "ppo.n_steps": 64,
        "ppo.minibatch_size": 32,
        "ppo.epochs": 2,
        "ppo.value_clip": 0.2,
    }

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        c: PPOConfig = cfg.section("ppo")
        self.c = c
        self.envs = gym.vector.SyncVectorEnv(
            [self.env_spec.make for _ in range(c.num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        space = self.envs.single_action_space
        self.low, self.high = space.low, space.high
        obs_dim = self.envs.single_observation_space.shape[0]
        act_dim = space.shape[0]
        self.obs_norm = ObsNormalizer(obs_dim, c.normalize_obs)
        self.reward_scale = RewardScaler(c.num_envs, c.gamma, c.normalize_reward)
        raw_obs, _ = self.envs.reset(seed=cfg.seed)
        self.obs = self.obs_norm(raw_obs, update=True)  # [N, O], normalised
        self.episode_returns = np.zeros(c.num_envs)
        self.completed_returns: list[float] = []
        self.actor = GaussianActor(
            obs_dim, act_dim, c.hidden, c.activation, c.state_dependent_std, c.layer_norm
        )
        self.critic = mlp(
            obs_dim, c.hidden, 1, c.activation, out_role="value", layer_norm=c.layer_norm
        )
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=c.lr, eps=1e-5, fused=True)
        self.rollout = _rollout_storage(c.n_steps, c.num_envs, obs_dim, act_dim)
        self.t = 0  # steps stored in the current rollout
        self.updates = 0

    def networks(self):
        return {"actor": self.actor, "critic": self.critic}

    # --- the loop ---------------------------------------------------------------------------
    def train(self, until: int) -> dict[str, float]:
        stats: list[dict[str, torch.Tensor]] = []
        while self.env_steps < until:
            self.collect_step()
            if self.t == self.c.n_steps:
                stats.append(self.update())
                self.t = 0
        out = (
            {k: float(torch.stack([s[k] for s in stats]).mean()) for k in stats[0]} if stats else {}
        )
        if self.completed_returns:
            out["train/return"] = float(np.mean(self.completed_returns[-10:]))
        with torch.no_grad():
            out["train/std"] = float(self.actor(self.obs)[1].exp().mean())
        out["train/updates"] = float(self.updates)
        return out

    @torch.inference_mode()
    def collect_step(self) -> None:
        """One step of every env; the transition goes to row ``self.t`` of the rollout."""
        mean, log_std = self.actor(self.obs)
        value = self.critic(self.obs).squeeze(-1)
        action = mean + log_std.exp() * torch.randn_like(mean)
        logp = normal_log_prob(action, mean, log_std)
        raw_obs, reward, term, trunc, info = step_env(
            self.envs,
            action.clamp(-1.0, 1.0).numpy(),
            self.low,
            self.high,
            f"env '{self.env_spec.id}'",
            self.env_steps,
        )
        done = term | trunc
        # truncated episodes bootstrap from the value of their final (not the reset) obs
        final_value = torch.zeros(self.c.num_envs)
        if trunc.any():
            idx = np.flatnonzero(trunc)
            final_obs = self.obs_norm(np.stack([info["final_obs"][i] for i in idx]))
            final_value[idx] = self.critic(final_obs).squeeze(-1)
        r = self.rollout
        t = self.t
        r["obs"][t], r["action"][t], r["logp"][t], r["value"][t] = self.obs, action, logp, value
        r["reward"][t] = torch.from_numpy(self.reward_scale(reward, done))
        r["terminated"][t] = torch.from_numpy(term)
        r["done"][t] = torch.from_numpy(done)
        r["final_value"][t] = final_value
        self.episode_returns += reward
        for i in np.flatnonzero(done):
            self.completed_returns.append(float(self.episode_returns[i]))
            self.episode_returns[i] = 0.0
        self.obs = self.obs_norm(raw_obs, update=True)
        self.env_steps += self.c.num_envs
        self.t += 1

    def update(self) -> dict[str, torch.Tensor]:
        c, r = self.c, self.rollout
        with torch.no_grad():
            last_value = self.critic(self.obs).squeeze(-1)
            next_value = torch.cat([r["value"][1:], last_value[None]])
            next_value = torch.where(r["done"].bool(), r["final_value"], next_value)
            adv = gae(
                r["reward"],
                r["value"],
                next_value,
                r["terminated"],
                c.gamma,
                c.gae_lambda,
                r["done"],
            )
            ret = adv + r["value"]
        if c.anneal_lr:
            for group in self.opt.param_groups:
                group["lr"] = c.lr * max(1.0 - self.env_steps / self.cfg.total_steps, 0.0)
        # one [T N, O + A + 4] table, shuffled once per epoch; minibatches are views into it
        table = torch.cat(
            [
                r["obs"].flatten(0, 1),
                r["action"].flatten(0, 1),
                torch.stack([r["logp"], adv, ret, r["value"]], -1).flatten(0, 1),
            ],
            -1,
        )
        o, a = r["obs"].shape[-1], r["action"].shape[-1]
        sums: list[torch.Tensor] = []
        for _ in range(c.epochs):
            shuffled = table[torch.randperm(table.shape[0])]
            for batch in shuffled.split(c.minibatch_size):
                obs, act = batch[:, :o], batch[:, o : o + a]
                old_logp, adv_b, ret_b, old_v = batch[:, o + a :].unbind(-1)
                stats = self.minibatch_step(obs, act, old_logp, adv_b, ret_b, old_v)
                sums.append(stats)
            if c.target_kl is not None and float(stats[3]) > c.target_kl:
                break
        self.updates += 1
        mean = torch.stack(sums).mean(0)
        var_ret = ret.var()
        explained = 1.0 - (ret - r["value"]).var() / var_ret if var_ret > 0 else torch.tensor(0.0)
        return {
            "loss/policy": mean[0],
            "loss/value": mean[1],
            "train/entropy": mean[2],
            "train/approx_kl": mean[3],
            "train/clip_frac": mean[4],
            "train/explained_variance": explained,
        }

    def minibatch_step(self, obs, act, old_logp, adv, ret, old_v) -> torch.Tensor:
        """One gradient step; returns [policy loss, value loss, entropy, approx KL, clip frac]."""
        c = self.c
        mean, log_std = self.actor(obs)
        logp = normal_log_prob(act, mean, log_std)
        entropy = normal_entropy(log_std).mean()
        log_ratio = logp - old_logp
        ratio = log_ratio.exp()
        if c.normalize_advantages and adv.shape[0] > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss = clipped_surrogate(adv, ratio, c.clip).mean()
        v = self.critic(obs).squeeze(-1)
        value_loss = (v - ret).pow(2)
        if c.value_clip is not None:
            v_clipped = old_v + (v - old_v).clamp(-c.value_clip, c.value_clip)
            value_loss = torch.max(value_loss, (v_clipped - ret).pow(2))
        value_loss = value_loss.mean()
        loss = policy_loss - c.ent_coef * entropy + c.vf_coef * value_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm, foreach=True)
        self.opt.step()
        approx_kl, clip_frac = ratio_stats(ratio, log_ratio, c.clip)
        return torch.stack([policy_loss, value_loss, entropy, approx_kl, clip_frac]).detach()

    # --- acting, diagnostics, checkpoints ---------------------------------------------------
    @torch.inference_mode()
    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        mean, _ = self.actor(self.obs_norm(obs))
        return mean.clamp(-1.0, 1.0).numpy(), state

    @torch.inference_mode()
    def init_probe(self, obs: np.ndarray) -> dict[str, Any]:
        """Actions are samples clipped to [-1, 1] (what the env gets); ``mean_abs_mean`` is
        |clip(mean)|, the deterministic action's size; ``critic_scale`` is mean |V(s)|. With
        ``normalize_obs`` the states are standardised by their own statistics (what the running
        normaliser converges to), not by the few reset observations it has seen at step 0."""
        probe_norm = ObsNormalizer(obs.shape[1], self.c.normalize_obs)
        o = probe_norm(obs, update=True)
        mean, log_std = self.actor(o)
        gen = torch.Generator().manual_seed(self.cfg.seed + 104729)  # leaves the global RNG
        noise = torch.randn(mean.shape, generator=gen)
        actions = (mean + log_std.exp() * noise).clamp(-1.0, 1.0)
        return {
            "actions": actions.numpy(),
            "entropy": float(normal_entropy(log_std).mean()),
            "mean_abs_mean": float(mean.clamp(-1.0, 1.0).abs().mean()),
            "std": float(log_std.exp().mean()),
            "critic_scale": float(self.critic(o).abs().mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "opt": self.opt.state_dict(),
            "obs_norm": self.obs_norm.state_dict(),
            "reward_scale": self.reward_scale.state_dict(),
            "envs": [snapshot(env) for env in self.envs.envs],
            "autoreset": self.envs._autoreset_envs.copy(),  # pending resets (NEXT_STEP mode)
            "obs": self.obs.clone(),
            "episode_returns": self.episode_returns.copy(),
            "completed_returns": list(self.completed_returns),
            "rollout": {k: v.clone() for k, v in self.rollout.items()},
            "t": self.t,
            "updates": self.updates,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.actor.load_state_dict(s["actor"])
        self.critic.load_state_dict(s["critic"])
        self.opt.load_state_dict(s["opt"])
        self.obs_norm.load_state_dict(s["obs_norm"])
        self.reward_scale.load_state_dict(s["reward_scale"])
        if len(s["envs"]) != len(self.envs.envs):
            raise EnvError(f"checkpoint has {len(s['envs'])} envs, config {len(self.envs.envs)}")
        for env, snap in zip(self.envs.envs, s["envs"]):
            restore(env, snap)
        self.envs._autoreset_envs[:] = s["autoreset"]
        self.obs = s["obs"].clone()
        self.episode_returns = s["episode_returns"].copy()
        self.completed_returns = list(s["completed_returns"])
        for k, v in s["rollout"].items():
            self.rollout[k].copy_(v)
        self.t, self.updates = s["t"], s["updates"]


def _rollout_storage(steps: int, n: int, obs_dim: int, act_dim: int) -> dict[str, torch.Tensor]:
    """Preallocated time-major rollout tensors: obs [T, N, O], action [T, N, A], others [T, N]."""
    out = {"obs": torch.zeros(steps, n, obs_dim), "action": torch.zeros(steps, n, act_dim)}
    for k in ("logp", "value", "reward", "terminated", "done", "final_value"):
        out[k] = torch.zeros(steps, n)
    return out
