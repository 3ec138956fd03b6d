"""Soft Actor-Critic (Haarnoja et al. 2018) with automatic entropy tuning.

Per env step:
  1. act: sample a ~ tanh(N(mu(s), sigma(s))) from the current policy (during ``learning_starts``
     too, unless ``warmup: uniform``: the init's effect on early exploration is the point here)
  2. store (s, a, r, s', terminated) in the replay buffer
  3. every step after ``learning_starts``, ``utd`` gradient updates on batches of ``batch_size``:
       y      = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha log pi(a'|s')),  a' ~ pi(s')
       L_Q    = sum_j (Q_j(s, a) - y)^2
       L_pi   = alpha log pi(a~|s) - min_j Q_j(s, a~),                         a~ ~ pi(s)
       L_alpha = -log alpha (log pi(a~|s) + target_entropy)
       Q'    <- (1 - tau) Q' + tau Q
     The three losses share one backward pass and one Adam step, so all of them see the networks
     from before the step (as in the authors' implementation); the actor's pass through the
     critic freezes the critic's weights, so L_pi moves only the policy. With
     ``actor_step: after_critic`` the critic steps first and L_pi, L_alpha (on a fresh a~) see
     the updated critic, as in Stable-Baselines3 and CleanRL.
``manual_grad: true`` (the default) computes the same losses and gradients without autograd:
agent/sac_fast.py (on agent/common/manual_grad.py), equal to autograd's up to float rounding
(tests/test_manual_grad.py) and ~1.3x cheaper per update on CPU; layer norm, ``actor_step:
after_critic`` and activations without a hand-written derivative use autograd (``losses``), as
does the seed-batched SAC.

``bf16: true`` runs the big hidden-to-hidden matmuls of the update in bfloat16: on the
hand-written path on bf16 copies of those layers (each net's first layer, its heads, the
losses, gradients and Adam stay float32), on the autograd path under autocast. It pays on CPUs
with AMX or AVX512-BF16 (``lscpu`` flags amx_bf16 / avx512_bf16) and costs several times more
on CPUs without them; acting is always float32 (bench/sac_vs_sb3.py measures both).

The losses are written per seed: a plain run's tensors are [B, ...]; a seed-batched run
(``SeedBatchedSAC``, K seeds of one config in one process, see agent/common/seed_batch.py) puts a
seed axis in front, [K, B, ...], its layers hold one member per seed, and the per-seed losses are
summed before the backward pass, so every seed's gradient is exactly its own.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch

from agent import sac_fast
from agent.base import SMOKE_RUN, Agent, seed_everything, to_tensor
from agent.common import seed_batch
from agent.common.distributions import squashed_sample
from agent.common.envs import restore, snapshot, step_env
from agent.common.networks import SquashedGaussianActor, mlp
from agent.common.replay import ReplayBuffer, SeedBatchedReplay
from agent.config import TrialConfig
from agent.losses import polyak_
from agent.registry import register
from agent.sections import SACConfig
from init_schemes import apply_init

#: what ``update`` returns, in order (train() reports their means over the updates it ran)
STATS = ("loss/critic", "loss/actor", "loss/alpha", "train/entropy", "train/q")


@register("sac", "Soft Actor-Critic: twin Q, target nets, automatic entropy tuning")
class SAC(Agent):
    Config = SACConfig
    sections = ("sac",)
    #: the agent contract's run (agent.base.SMOKE_RUN)
    smoke: ClassVar[dict[str, Any]] = {
        **SMOKE_RUN,
        "sac.hidden": [32, 32],
        "sac.batch_size": 32,
        "sac.learning_starts": 100,
    }

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        c: SACConfig = cfg.section("sac")
        self.c = c
        obs_dim, act_dim = self.open_env()
        self.actor, self.critic = self.build_networks(obs_dim, act_dim)
        self._learner(torch.tensor(float(np.log(c.init_alpha)), requires_grad=True), act_dim)
        self.buffer = ReplayBuffer(
            min(c.buffer_size, cfg.total_steps), obs_dim, act_dim, seed=cfg.seed
        )
        self.np_rng = np.random.default_rng(cfg.seed + 1)
        self.updates = 0

    def build_networks(self, obs_dim: int, act_dim: int) -> tuple[torch.nn.Module, ...]:
        """A plain policy, and a critic with both Q heads in one ensemble MLP ([2, B, O+A] ->
        [2, B, 1])."""
        c = self.c
        actor = SquashedGaussianActor(obs_dim, act_dim, c.hidden, c.activation, c.layer_norm)
        critic = mlp(
            obs_dim + act_dim,
            c.hidden,
            1,
            c.activation,
            out_role="q",
            layer_norm=c.layer_norm,
            ensemble=2,
        )
        return actor, critic

    def _learner(self, log_alpha: torch.Tensor, act_dim: int) -> None:
        """Target critic, temperature and optimiser for ``self.actor`` and ``self.critic``."""
        c = self.c
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = log_alpha
        self.target_entropy = -float(act_dim) if c.target_entropy is None else c.target_entropy
        self.critic_params = list(self.critic.parameters())
        self.target_params = list(self.critic_target.parameters())
        # one fused Adam, a parameter group each (Adam treats every parameter independently)
        groups = [
            {"params": list(self.actor.parameters()), "lr": c.lr},
            {"params": self.critic_params, "lr": c.critic_lr or c.lr},
        ]
        if c.alpha == "auto":
            groups.append({"params": [self.log_alpha], "lr": c.lr})
        self.opt = torch.optim.Adam(groups, fused=True)
        self.fast = sac_fast.SACFastPath(self)  # the hand-written update (agent/sac_fast.py)

    def networks(self):
        return {"actor": self.actor, "critic": self.critic}

    def after_init(self) -> None:
        self.critic_target.load_state_dict(self.critic.state_dict())

    @property
    def alpha(self) -> torch.Tensor:
        if self.c.alpha == "auto":
            return self.log_alpha.detach().exp()
        return torch.tensor(self.c.alpha)

    # --- the loop ---------------------------------------------------------------------------
    def train(self, until: int) -> dict[str, float]:
        sums = torch.zeros(len(STATS))
        n_updates = 0
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
                    sums += self.update()
                    n_updates += 1
        out = dict(zip(STATS, (sums / n_updates).tolist())) if n_updates else {}
        if self.c.alpha != "auto":
            out.pop("loss/alpha", None)
        if self.completed_returns:
            out["train/return"] = float(np.mean(self.completed_returns[-10:]))
        out["train/alpha"] = float(self.alpha)
        out["train/updates"] = float(self.updates)
        return out

    @torch.inference_mode()
    def _explore_action(self) -> np.ndarray:
        if self.env_steps < self.c.learning_starts and self.c.warmup == "uniform":
            return self.np_rng.uniform(-1.0, 1.0, self.low.shape).astype(np.float32)
        obs = to_tensor(self.obs).unsqueeze(0)
        if self.manual:  # the same sample without the modules' dispatch and the log-prob
            return self.fast.explore_action(obs).numpy()
        mean, log_std = self.actor(obs)
        action, _ = squashed_sample(mean, log_std)
        return action[0].numpy()

    @property
    def manual(self) -> bool:
        """Whether ``update`` uses the hand-written backward pass (plain MLPs, joint step)."""
        return sac_fast.usable(self)

    def update(self) -> torch.Tensor:
        """One gradient step of critic, actor and temperature; returns detached STATS."""
        if self.manual:
            return self.fast.update(self.buffer.sample(self.c.batch_size))
        batch = self.buffer.sample(self.c.batch_size)
        if self.c.actor_step == "joint":
            # one backward and one Adam step: each loss reaches only its own parameters, and all
            # three use the critic and policy from before this step (as the reference SAC does)
            critic_loss, actor_loss, alpha_loss, stats = self.losses(batch)
            self._step(critic_loss + actor_loss + alpha_loss)
        else:  # the critic steps first; the policy's losses then see the updated critic
            critic_loss, q = self.critic_loss(batch)
            self._step(critic_loss)
            actor_loss, alpha_loss, logp = self.policy_losses(batch[0])
            self._step(actor_loss + alpha_loss)
            stats = self._stats(critic_loss, actor_loss, alpha_loss, logp, q)
        polyak_(self.target_params, self.critic_params, self.c.tau)
        self.updates += 1
        return stats

    def _step(self, loss: torch.Tensor) -> None:
        """Backward of ``loss`` (summed over seeds if batched) and an Adam step of the
        parameters it reaches (Adam skips parameters without a gradient)."""
        self.opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.opt.step()

    def losses(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """(L_Q, L_pi, L_alpha, detached STATS) on a replay batch [*S, B, ...].

        S is the seed axis of a seed-batched run ([K]) and empty for a plain run: the losses
        are shaped [*S] (scalars for a plain run) and STATS [*S, len(STATS)]."""
        critic_loss, q = self.critic_loss(batch)
        actor_loss, alpha_loss, logp = self.policy_losses(batch[0])
        return (
            critic_loss,
            actor_loss,
            alpha_loss,
            self._stats(critic_loss, actor_loss, alpha_loss, logp, q),
        )

    def critic_loss(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """L_Q (both Q heads regress on the soft Bellman target) and Q(s, a) [2, *S, B]."""
        c = self.c
        obs, act, rew, next_obs, term = batch
        with torch.no_grad():
            next_act, next_logp = self._sample(next_obs)
            q_next = self._q(self.critic_target, next_obs, next_act).min(0).values
            target = rew + c.gamma * (1.0 - term) * (q_next - self.alpha * next_logp)
        q = self._q(self.critic, obs, act)  # [2, *S, B]
        return (q - target).pow(2).mean(-1).sum(0), q

    def policy_losses(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(L_pi, L_alpha, log pi(a~|s)) on fresh policy actions a~ ~ pi(obs)."""
        new_act, logp = self._sample(obs)
        # actor: gradient through the critic's input only (its weights are frozen for this pass)
        self.critic.requires_grad_(False)
        q_pi = self._q(self.critic, obs, new_act).min(0).values
        self.critic.requires_grad_(True)
        actor_loss = (self.alpha * logp - q_pi).mean(-1)
        # temperature: keep the policy's entropy near the target
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean(-1)
        if self.c.alpha != "auto":
            alpha_loss = torch.zeros_like(alpha_loss)
        return actor_loss, alpha_loss, logp

    @staticmethod
    def _stats(critic_loss, actor_loss, alpha_loss, logp, q) -> torch.Tensor:
        """The detached STATS row(s): [*S, len(STATS)]."""
        return torch.stack(
            [critic_loss, actor_loss, alpha_loss, -logp.mean(-1), q.mean((0, -1))], -1
        ).detach()

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a ~ pi(obs) and log pi(a|obs): [*S, B, A], [*S, B] (float32; matmuls in bf16 if
        ``bf16``)."""
        with torch.autocast("cpu", torch.bfloat16, enabled=self.c.bf16):
            mean, log_std = self.actor(obs)
        return self._squashed(mean.float(), log_std.float())

    def _squashed(self, mean: torch.Tensor, log_std: torch.Tensor):
        """tanh-Gaussian sample and log-prob (noise from the global torch generator)."""
        return squashed_sample(mean, log_std)

    def _q(self, critic: torch.nn.Module, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Both Q heads: [*S, B, O], [*S, B, A] -> [2, *S, B] (float32; matmuls in bf16 if
        ``bf16``)."""
        with torch.autocast("cpu", torch.bfloat16, enabled=self.c.bf16):
            q = critic(_pair(obs, act)).float()  # [S * 2, B, 1], seed-major
        return q.view(*obs.shape[:-2], 2, obs.shape[-2]).movedim(-2, 0)

    # --- acting, diagnostics, checkpoints ---------------------------------------------------
    @torch.inference_mode()
    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        mean, _ = self.actor(to_tensor(obs))
        return torch.tanh(mean).numpy(), state

    @torch.inference_mode()
    def init_probe(self, obs: np.ndarray) -> dict[str, Any]:
        return _probe_summary(*self._probe_tensors(to_tensor(obs)))

    def _probe_tensors(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The policy's sample on states [*S, N, O]: actions, log pi, mean, log std and both Q
        heads of the sampled actions (the critic's output, [*S * 2, N, 1])."""
        mean, log_std = self.actor(obs)
        actions, logp = self._squashed(mean, log_std)
        return actions, logp, mean, log_std, self.critic(_pair(obs, actions))

    def _learner_state(self) -> dict[str, Any]:
        """Networks, temperature, optimiser and replay: the checkpoint's learner part."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.data,
            "opt": self.opt.state_dict(),
            "buffer": self.buffer.state_dict(),
        }

    def _load_learner(self, s: dict[str, Any]) -> None:
        self.fast.invalidate()  # the optimiser's state tensors are replaced
        self.actor.load_state_dict(s["actor"])
        self.critic.load_state_dict(s["critic"])
        self.critic_target.load_state_dict(s["critic_target"])
        self.log_alpha.data.copy_(s["log_alpha"])
        self.opt.load_state_dict(s["opt"])
        self.buffer.load_state_dict(s["buffer"])

    def state_dict(self) -> dict[str, Any]:
        return {
            **self._learner_state(),
            **self.env_state(),
            "np_rng": self.np_rng.bit_generator.state,
            "updates": self.updates,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self._load_learner(s)
        self.load_env_state(s)
        self.np_rng.bit_generator.state = s["np_rng"]
        self.updates = s["updates"]


@seed_batch.register_batched("sac")
class SeedBatchedSAC(SAC):
    """SAC on K seeds of one config at once (``seeds_per_trial``), each with its own env,
    initialisation, replay, optimiser state, temperature and random stream; the networks hold
    one member per seed along a leading axis, so the losses above, and ``act``, run unchanged
    on [K, B, ...]. A trial trains it through ``agent.seeds.BatchedSeeds``."""

    def __init__(self, cfg: TrialConfig):
        Agent.__init__(self, cfg)
        c: SACConfig = cfg.section("sac")
        self.c = c
        self.seeds = cfg.run_seeds()
        k = len(self.seeds)
        self.envs = [self.env_spec.make() for _ in self.seeds]
        self.low, self.high = self.envs[0].action_space.low, self.envs[0].action_space.high
        obs_dim, act_dim = self.envs[0].observation_space.shape[0], self.low.shape[0]
        self.obs = np.stack([env.reset(seed=s)[0] for env, s in zip(self.envs, self.seeds)])
        self.episode_return = np.zeros(k)
        self.completed_returns: list[list[float]] = [[] for _ in self.seeds]
        # plain networks: each seed is initialised on these, exactly as a plain run, then stacked
        self.plain = dict(zip(("actor", "critic"), self.build_networks(obs_dim, act_dim)))
        self.actor = seed_batch.seed_stack(self.plain["actor"], k)  # [K, B, O] -> [K, B, A]
        self.critic = seed_batch.seed_stack(self.plain["critic"], k)  # [K * 2, B, O + A] -> ...
        log_alpha = torch.full((k, 1), float(np.log(c.init_alpha)), requires_grad=True)
        self._learner(log_alpha, act_dim)
        self.buffer = SeedBatchedReplay(
            min(c.buffer_size, cfg.total_steps), obs_dim, act_dim, self.seeds
        )
        self.np_rngs = [np.random.default_rng(s + 1) for s in self.seeds]
        self.rng = seed_batch.SeedRNG(k)
        self.updates = 0

    def initialise(self) -> list[dict]:
        """Seed k's weights: ``seed_everything(seed_k)`` then the init spec on the plain networks
        (a plain run's exact sequence); its random stream continues from there."""
        records = []
        for k, seed in enumerate(self.seeds):
            seed_everything(seed)
            for name, net in self.plain.items():
                for rec in apply_init(net, self.cfg.init):
                    records.append({**rec, "layer": f"{name}.{rec['layer']}", "seed": seed})
                seed_batch.load_member(self.networks()[name], k, net)
            self.rng.capture(k)
        self.after_init()
        return records

    def member_state_dict(self, k: int) -> dict[str, dict[str, torch.Tensor]]:
        """Seed k's actor and critic in a plain SAC's layout."""
        return {
            name: seed_batch.member_state_dict(net, k, self.plain[name])
            for name, net in self.networks().items()
        }

    def train(self, until: int) -> list[dict[str, float]]:
        """Step every seed's env and learn until ``env_steps == until``; per-seed metrics."""
        k = len(self.seeds)
        sums = torch.zeros(k, len(STATS))
        n_updates = 0
        rewards, terms = np.zeros(k, np.float32), np.zeros(k, np.float32)
        next_obs = np.empty_like(self.obs)
        while self.env_steps < until:
            action, obs = self._explore_action(), self.obs.copy()
            for i, env in enumerate(self.envs):
                o, r, term, trunc, _ = step_env(
                    env,
                    action[i],
                    self.low,
                    self.high,
                    f"env '{self.env_spec.id}' (seed {self.seeds[i]})",
                    self.env_steps,
                )
                next_obs[i], rewards[i], terms[i] = o, r, float(term)
                self.episode_return[i] += float(r)
                if term or trunc:
                    self.completed_returns[i].append(float(self.episode_return[i]))
                    self.episode_return[i] = 0.0
                    o, _ = env.reset()
                self.obs[i] = o
            self.buffer.add(obs, action, rewards, next_obs, terms)
            self.env_steps += 1
            if self.env_steps >= self.c.learning_starts and self.buffer.size >= self.c.batch_size:
                for _ in range(self.c.utd):
                    sums += self.update()
                    n_updates += 1
        out = []
        alpha = self.alpha.expand(k, 1)[:, 0].tolist()
        for i in range(k):
            m = dict(zip(STATS, (sums[i] / n_updates).tolist())) if n_updates else {}
            if self.c.alpha != "auto":
                m.pop("loss/alpha", None)
            if self.completed_returns[i]:
                m["train/return"] = float(np.mean(self.completed_returns[i][-10:]))
            m["train/alpha"] = float(alpha[i])
            m["train/updates"] = float(self.updates)
            out.append(m)
        return out

    @torch.inference_mode()
    def _explore_action(self) -> np.ndarray:
        """[K, A]: seed k's action from its policy (or its uniform warm-up generator)."""
        if self.env_steps < self.c.learning_starts and self.c.warmup == "uniform":
            return np.stack(
                [r.uniform(-1.0, 1.0, self.low.shape).astype(np.float32) for r in self.np_rngs]
            )
        mean, log_std = self.actor(to_tensor(self.obs).unsqueeze(1))
        action, _ = self._squashed(mean, log_std)
        return action[:, 0].numpy()

    @property
    def manual(self) -> bool:
        return False  # the hand-written update is for plain [B, ...] batches; autograd here

    def _squashed(self, mean: torch.Tensor, log_std: torch.Tensor):
        return seed_batch.squashed_sample(mean, log_std, self.rng)  # seed k's noise: its stream

    # --- acting, diagnostics, checkpoints (per seed) ----------------------------------------
    # SAC.act runs unchanged on a leading seed axis: [K, n, O] -> [K, n, A], seed k's policy
    @torch.inference_mode()
    def init_probe(self, obs: np.ndarray) -> list[dict[str, Any]]:
        """``SAC.init_probe`` of each seed on its own states [K, N, O] (noise from its stream):
        one summary per seed."""
        actions, logp, mean, log_std, q = self._probe_tensors(to_tensor(obs))
        q = q.view(len(self.seeds), -1)
        return [
            _probe_summary(actions[i], logp[i], mean[i], log_std[i], q[i])
            for i in range(len(self.seeds))
        ]

    def state_dict(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            **self._learner_state(),
            "envs": [snapshot(e) for e in self.envs],
            "obs": self.obs,
            "episode_return": self.episode_return,
            "completed_returns": self.completed_returns,
            "np_rngs": [r.bit_generator.state for r in self.np_rngs],
            "rng": self.rng.state(),
            "updates": self.updates,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        if list(s["seeds"]) != self.seeds:
            raise ValueError(f"checkpoint of seeds {s['seeds']} cannot continue seeds {self.seeds}")
        self._load_learner(s)
        for env, snap in zip(self.envs, s["envs"], strict=True):
            restore(env, snap)
        self.obs, self.episode_return = s["obs"].copy(), s["episode_return"].copy()
        self.completed_returns = [list(r) for r in s["completed_returns"]]
        for r, state in zip(self.np_rngs, s["np_rngs"], strict=True):
            r.bit_generator.state = state
        self.rng.set_state(s["rng"])
        self.updates = s["updates"]


def _probe_summary(
    actions: torch.Tensor,
    logp: torch.Tensor,
    mean: torch.Tensor,
    log_std: torch.Tensor,
    q: torch.Tensor,
) -> dict[str, Any]:
    """What ``init_probe`` reports of one seed's sample (agent.base.Agent.init_probe)."""
    return {
        "actions": actions.numpy(),
        "entropy": float(-logp.mean()),
        "mean_abs_mean": float(torch.tanh(mean).abs().mean()),
        "std": float(log_std.exp().mean()),
        "critic_scale": float(q.abs().mean()),
    }


def _pair(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """[B, O], [B, A] -> [2, B, O + A] for the twin-Q ensemble; with a seed axis,
    [K, B, O], [K, B, A] -> [K * 2, B, O + A] (seed-major, the stacked critic's member order)."""
    x = torch.cat([obs, act], -1)
    if x.ndim == 2:
        return x.unsqueeze(0).expand(2, *x.shape)
    return x.unsqueeze(-3).expand(*x.shape[:-2], 2, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
