"""The shared base of model-based agents: real env, world model, replay, schedule, imagination.

A model-based agent learns its behaviour from trajectories imagined by the world model
(``agent.world_model``) and uses real data only to train that model. The loop:

    prefill      ``prefill`` real steps with uniform random actions
    repeat       ``explore_steps`` real steps acting from the filtered posterior latent:
                     s_t = q(s_t | s_{t-1}, a_{t-1}, x_t),   a_t ~ pi(a | f(s_t)),  f = [h, z]
                 ``model_updates`` world-model updates on replayed real sequences
                 ``behaviour_phase()``: the subclass learns from imagination
    (a round starts at env step ``prefill`` and every ``explore_steps`` after it; the first
    rounds wait until the replay holds a sequence of ``world_model.seq_len`` steps)

Policies are tanh-squashed Gaussians on the model features by default: a ~ tanh(N(mu(f),
sigma(f))) in (-1, 1)^A, evaluated deterministically as tanh(mu(f)) on the posterior mode.

Subclass contract (``agent.mb_ppo``, ``agent.dreamer``, ``agent.mb_sac`` follow it):

* ``Config`` subclasses :class:`ModelBasedConfig` (the schedule and behaviour knobs shared by
  every model-based agent); ``sections = ("<name>", "world_model")``, own section first: the
  world model is built from the trial's ``world_model`` section (:class:`WorldModelConfig`: size,
  loss, ``lr``, ``batch_size``, ``seq_len``, ``proprio``, ``eval_horizons``; its
  ``prefill``/``train_every``/``updates``/``holdout_every``/``policy`` drive only the
  ``world_model`` agent and are ignored here).
* ``__init__(cfg)`` calls ``super().__init__(cfg)`` first; then ``self.c`` is the own section,
  ``self.model`` the world model, ``self.feat_dim``/``self.act_dim`` the sizes. It builds the
  behaviour networks (role-tagged: ``policy_mean``, ``policy_std``, ``value``, ``q``, ``hidden``)
  and their optimisers.
* ``behaviour_networks() -> {name: module}``: every behaviour net the init spec applies to
  (``networks()`` adds the world model). ``after_init()`` may copy weights into target nets.
* ``actor(feat [N, F]) -> (mean [N, A], log_std [N, A])``, the pre-squash Gaussian (an
  ``nn.Module`` attribute such as ``SquashedGaussianActor(feat_dim, act_dim, hidden)`` works);
  or override :meth:`sample_action`, :meth:`log_prob` and :meth:`mode_action` together for
  another distribution.
* ``behaviour_phase() -> {metric: float or 0-d tensor}``: learn from imagination, using
  :meth:`start_states` and :meth:`imagine`; count gradient steps in ``self.updates`` (for
  ``perf/updates_per_s`` and ``train/updates``); metric names ``loss/*``, ``train/*``,
  ``imagine/*`` (see :meth:`imagine_metrics`). ``train()`` reports their means per call.
* ``behaviour_state_dict()`` / ``load_behaviour_state_dict(s)``: behaviour nets and their
  optimisers (the base saves the model, its optimiser, the replay, env, latent and counters;
  the trial saves the global RNGs).
* optional: ``critic_scale(feat) -> float | None`` for the init diagnostics;
  ``required_steps() -> int``, the replayed steps a round needs (default ``world_model.seq_len``).

Metrics of ``train()``: ``model/*`` and ``loss/model`` (means over its model updates),
``model/open_loop/*`` and ``model/const/*`` (open-loop errors on a fixed draw of replayed, i.e.
training, sequences), the behaviour phase's metrics, ``train/return``, ``train/updates``,
``train/model_updates``, ``perf/model_updates_per_s``, ``perf/updates_per_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from agent.base import Agent, tensors_to
from agent.common.distributions import normal_log_prob, tanh_log_det
from agent.common.envs import restore, snapshot, stack_obs
from agent.common.returns import estimate
from agent.common.rssm import Latent
from agent.common.sequence_replay import SequenceReplay, batch_to
from agent.config import TrialConfig
from agent.sections import ModelBasedConfig
from agent.world_model import (
    RealSteps,
    WorldModel,
    WorldModelConfig,
    model_update,
    obs_layout,
    proprio_targets,
)


@dataclass
class Imagined:
    """A batch of imagined trajectories, time-major. H horizon, N trajectories.

    states Latent [H+1, N] and feat [H+1, N, F] include the start (t = 0); action [H, N, A] is
    what the model was fed (in (-1, 1)), raw [H, N, A] its pre-squash sample, logp [H, N] its
    log-probability under the policy that acted; reward [H, N] and cont [H, N] are the model's
    reward and continue probability on arriving at t + 1 (feat[t + 1]).
    """

    states: Latent
    feat: Tensor
    action: Tensor
    raw: Tensor
    logp: Tensor
    reward: Tensor
    cont: Tensor

    @property
    def weight(self) -> Tensor:
        """[H, N]: probability that step t is reached, prod_{k<t} cont[k] (1 at t = 0)."""
        ones = torch.ones_like(self.cont[:1])
        return torch.cumprod(torch.cat([ones, self.cont[:-1]]), 0)


class ModelBasedAgent(RealSteps, Agent):
    """Base class of model-based agents; see the module docstring for the subclass contract."""

    Config: type[ModelBasedConfig] = ModelBasedConfig
    sections: tuple[str, ...] = ("world_model",)
    pixels = True  # observations: state, pixels or pixels+state (the world model encodes them)
    actor: Any  # subclasses: feat [N, F] -> (mean [N, A], log_std [N, A])

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        self.c = cfg.section(self.sections[0])
        wm: WorldModelConfig = cfg.section("world_model")
        self.wm = wm
        self.proprio_fns = proprio_targets(self.env_spec, wm.proprio)
        self.env = self.env_spec.make()
        self.low, self.high = self.env.action_space.low, self.env.action_space.high
        self.obs_dim, state_dim = obs_layout(self.env.observation_space)
        self.act_dim = self.env.action_space.shape[0]
        self.obs, _ = self.env.reset(seed=cfg.seed)
        dims = {k: int(np.asarray(f(self.env.unwrapped)).size) for k, f in self.proprio_fns.items()}
        self.model = WorldModel(self.obs_dim, self.act_dim, wm, dims, state_dim).to(self.device)
        self.feat_dim = self.model.rssm.feat_dim
        self.model_opt = torch.optim.Adam(
            self.model.parameters(), lr=wm.lr, eps=wm.adam_eps, foreach=True
        )
        # the stream holds one more step per episode (its first observation) than env steps
        capacity = min(self.c.buffer_size, cfg.total_steps + cfg.total_steps // 4 + 1000)
        self.replay = SequenceReplay(
            capacity, self.obs_dim, self.act_dim, dims, seed=cfg.seed, state_dim=state_dim
        )
        self.np_rng = np.random.default_rng(cfg.seed + 2)
        self.episode_return, self.completed_returns = 0.0, []
        self.updates = 0  # behaviour gradient steps (subclasses count them)
        self.model_updates_done = 0
        self.latent: Latent | None = None  # the filtered posterior of the real env's state
        self._record(np.zeros(self.act_dim, np.float32), 0.0, first=True, terminal=False)

    # --- construction ------------------------------------------------------------------------
    def behaviour_networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        return {"world_model": self.model, **self.behaviour_networks()}

    def initialise(self) -> list[dict]:
        self.to_device()
        records = super().initialise()
        self.latent = None  # filtered with the initialised model from the next step on
        return records

    def to_device(self) -> None:
        """Move every network of the agent (target copies too) to ``self.device``; parameters
        stay the same objects, so the optimisers keep them."""
        for value in vars(self).values():
            if isinstance(value, nn.Module):
                value.to(self.device)

    def obs_tensor(self, obs: Any) -> Tensor | dict[str, Tensor]:
        """A batch of env observations [n, ...] (or a dict of them) as tensors on the device:
        states float32, images uint8 (the encoder scales them)."""
        if isinstance(obs, dict):
            return {k: self.obs_tensor(v) for k, v in obs.items()}
        x = np.asarray(obs)
        x = x if x.dtype == np.uint8 else x.astype(np.float32)
        return torch.as_tensor(x, device=self.device)

    def zeros_action(self, n: int) -> Tensor:
        return torch.zeros(n, self.act_dim, device=self.device)

    # --- policy (tanh-squashed Gaussian on the features) -------------------------------------
    def sample_action(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """feat [N, F] -> (action [N, A] in (-1, 1), log-prob [N], pre-squash sample [N, A])."""
        mean, log_std = self.actor(feat)
        raw = mean + torch.randn_like(mean) * log_std.exp()
        logp = normal_log_prob(raw, mean, log_std) - tanh_log_det(raw)
        return torch.tanh(raw), logp, raw

    def log_prob(self, feat: Tensor, raw: Tensor) -> tuple[Tensor, Tensor]:
        """Log-prob [N] of the squashed action tanh(raw) under the current policy, and the
        policy's log-std [N, A] (e.g. for an entropy term). feat [N, F], raw [N, A]."""
        mean, log_std = self.actor(feat)
        return normal_log_prob(raw, mean, log_std) - tanh_log_det(raw), log_std

    def mode_action(self, feat: Tensor) -> Tensor:
        """The deterministic action tanh(mu(f)) [N, A] of evaluation."""
        mean, _ = self.actor(feat)
        return torch.tanh(mean)

    def critic_scale(self, feat: Tensor) -> float | None:
        """Mean |critic output| on features [N, F] for the init diagnostics (None: no critic)."""
        return None

    # --- latent filtering --------------------------------------------------------------------
    def _filter(
        self,
        state: Latent | None,
        obs: Tensor | dict[str, Tensor],
        action: Tensor,
        first: bool | Tensor,
        sample: bool,
    ) -> Latent:
        """One posterior step for a batch: obs [n, ...] (or {"pixels", "state"}), action [n, A]
        (that led to obs); ``first`` resets the state before the step. Returns Latent [n]."""
        n = action.shape[0]
        is_first = (
            first
            if isinstance(first, Tensor)
            else torch.full((n,), bool(first), device=action.device)
        ).reshape(n, 1)
        step = {k: v[:, None] for k, v in obs.items()} if isinstance(obs, dict) else obs[:, None]
        posts, _ = self.model.observe(step, action[:, None], is_first, state, sample)
        return posts[:, 0]

    # --- imagination -------------------------------------------------------------------------
    @torch.no_grad()
    def start_states(self, num_sequences: int, sequence_length: int) -> Latent:
        """Posteriors (samples) of ``num_sequences`` replayed sequences of ``sequence_length``,
        flattened: Latent [num_sequences * sequence_length], detached."""
        batch = batch_to(self.replay.sample(num_sequences, sequence_length), self.device)
        posts, _ = self.model.observe(
            self.model.batch_obs(batch), batch["action"], batch["is_first"]
        )
        return posts.flatten()

    def imagine(self, start: Latent, horizon: int, grad: bool = False) -> Imagined:
        """Roll the current policy ``horizon`` steps from ``start`` [N] through the prior.

        ``grad=False`` (PPO-style learners): nothing carries gradients. ``grad=True``
        (Dreamer-style): gradients flow through actions (reparameterised) and the dynamics into
        the behaviour nets; the world model's parameters get none (frozen during the rollout).
        """
        model = self.model
        with torch.set_grad_enabled(grad):
            if grad:
                model.requires_grad_(False)
            try:
                states, actions, raws, logps = [start], [], [], []
                state = start
                for _ in range(horizon):
                    a, logp, raw = self.sample_action(model.features(state))
                    state = model.imagine_step(state, a)
                    states.append(state)
                    actions.append(a)
                    raws.append(raw)
                    logps.append(logp)
                lat = Latent.stack(states, 0)
                feat = model.features(lat)
                reward, cont = model.reward(feat[1:]), model.cont(feat[1:])
            finally:
                if grad:
                    model.requires_grad_(True)
        return Imagined(
            lat, feat, torch.stack(actions), torch.stack(raws), torch.stack(logps), reward, cont
        )

    def returns(self, imag: Imagined, values: Tensor) -> tuple[Tensor, Tensor]:
        """(targets, advantages) [H, N] of the trial's ``return_estimator`` from values
        [H+1, N] = V(feat) along the imagined trajectories (bootstrapped from values[-1])."""
        c = self.c
        return estimate(
            c.return_estimator, imag.reward, values[:-1], values[1:], imag.cont, c.gamma, c.lam
        )

    @torch.no_grad()
    def imagine_metrics(self, imag: Imagined, values: Tensor) -> dict[str, Tensor]:
        """``imagine/return``: the model's own discounted return from the start states (imagined
        rewards, continue-weighted, bootstrapped with V at the horizon); ``imagine/value_error``:
        mean |V(start) - that return|; ``imagine/reward`` (per step), ``imagine/cont``."""
        c = self.c
        ret, _ = estimate(
            "monte_carlo", imag.reward, values[:-1], values[1:], imag.cont, c.gamma, 1.0
        )
        return {
            "imagine/return": ret[0].mean(),
            "imagine/value_error": (values[0] - ret[0]).abs().mean(),
            "imagine/reward": imag.reward.mean(),
            "imagine/cont": imag.cont.mean(),
        }

    # --- the loop ----------------------------------------------------------------------------
    def behaviour_phase(self) -> dict[str, Any]:
        raise NotImplementedError

    def required_steps(self) -> int:
        """Replayed steps a round needs (the model's ``seq_len``; subclasses may need more)."""
        return self.wm.seq_len

    def round_due(self) -> bool:
        """Is a round (model updates + behaviour phase) due after the current env step?"""
        c = self.c
        return (
            self.env_steps >= c.prefill
            and (self.env_steps - c.prefill) % c.explore_steps == 0
            and self.replay.can_sample(self.required_steps())
        )

    def train(self, until: int) -> dict[str, float]:
        sums: dict[str, Tensor | float] = {}
        counts: dict[str, int] = {}

        def add(metrics: dict[str, Any]) -> None:
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1

        t_model = t_behaviour = 0.0
        n_model = n_behaviour = 0
        while self.env_steps < until:
            self.env_step()
            if not self.round_due():
                continue
            t0 = time.perf_counter()
            for _ in range(self.c.model_updates):
                batch = batch_to(
                    self.replay.sample(self.wm.batch_size, self.wm.seq_len), self.device
                )
                metrics, _ = model_update(self.model, self.model_opt, batch, self.wm.grad_clip)
                add(metrics)
            n_model += self.c.model_updates
            self.model_updates_done += self.c.model_updates
            t1 = time.perf_counter()
            before = self.updates
            add(self.behaviour_phase())
            n_behaviour += self.updates - before
            t_model += t1 - t0
            t_behaviour += time.perf_counter() - t1
        out = {k: float(v) / counts[k] for k, v in sums.items()}
        if n_model:
            out["perf/model_updates_per_s"] = n_model / max(t_model, 1e-9)
        if n_behaviour:
            out["perf/updates_per_s"] = n_behaviour / max(t_behaviour, 1e-9)
        out.update(self.evaluate_model())
        if self.completed_returns:
            out["train/return"] = float(np.mean(self.completed_returns[-10:]))
        out["train/updates"] = float(self.updates)
        out["train/model_updates"] = float(self.model_updates_done)
        return out

    @torch.no_grad()
    def env_step(self) -> None:
        """One real step: act (uniform during prefill, else a policy sample on the filtered
        latent), store it, and filter the latent with the new observation."""
        if self.latent is None:  # after construction, init or a reset: filter the current obs
            self.latent = self._filter(
                None,
                self.obs_tensor(stack_obs([self.obs])),
                self.zeros_action(1),
                True,
                sample=True,
            )
        if self.env_steps < self.c.prefill:
            action = self.np_rng.uniform(-1.0, 1.0, self.low.shape).astype(np.float32)
        else:
            a, _, _ = self.sample_action(self.model.features(self.latent))
            action = a[0].cpu().numpy()
        if self._real_step(action):
            self.latent = None
        else:
            self.latent = self._filter(
                self.latent,
                self.obs_tensor(stack_obs([self.obs])),
                torch.from_numpy(action)[None].to(self.device),
                False,
                sample=True,
            )

    def evaluate_model(self) -> dict[str, float]:
        """Open-loop errors on a fixed draw of replayed (training) sequences ({} until the replay
        holds sequences longer than the largest horizon)."""
        wm = self.wm
        length = min(wm.seq_len, self.replay.size)
        if length <= max(wm.eval_horizons) or self.model_updates_done == 0:
            return {}
        batch = self.replay.sample(wm.eval_batch, length, rng=np.random.default_rng(12345))
        return self.model.open_loop_errors(batch_to(batch, self.device), wm.eval_horizons)

    # --- acting, diagnostics ------------------------------------------------------------------
    def eval_state(self, n: int) -> dict[str, Any]:
        """Per eval episode: the latent, the previous action, and whether the next obs is first."""
        return {"latent": None, "action": self.zeros_action(n), "first": True}

    @torch.inference_mode()
    def act(self, obs: np.ndarray, state: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Deterministic: posterior mode filtered along the episode, then tanh(mu(f))."""
        latent = self._filter(
            state["latent"], self.obs_tensor(obs), state["action"], state["first"], sample=False
        )
        action = self.mode_action(self.model.features(latent))
        return action.cpu().numpy(), {"latent": latent, "action": action, "first": False}

    @torch.inference_mode()
    def init_probe(self, obs: np.ndarray) -> dict[str, Any]:
        """The initial policy on each real state's first-step posterior (mode); actions are
        squashed samples drawn from a private generator (the global RNG is left alone)."""
        o = self.obs_tensor(obs)
        n = len(obs["state"] if isinstance(obs, dict) else obs)
        latent = self._filter(None, o, self.zeros_action(n), True, sample=False)
        feat = self.model.features(latent)
        mean, log_std = self.actor(feat)
        gen = torch.Generator().manual_seed(self.cfg.seed + 104729)
        raw = mean + log_std.exp() * torch.randn(mean.shape, generator=gen).to(mean.device)
        logp = normal_log_prob(raw, mean, log_std) - tanh_log_det(raw)
        return {
            "actions": torch.tanh(raw).cpu().numpy(),
            "entropy": float(-logp.mean()),
            "mean_abs_mean": float(torch.tanh(mean).abs().mean()),
            "std": float(log_std.exp().mean()),
            "critic_scale": self.critic_scale(feat),
        }

    # --- checkpoints ---------------------------------------------------------------------------
    def behaviour_state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_behaviour_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "model_opt": self.model_opt.state_dict(),
            "replay": self.replay.state_dict(),
            "env": snapshot(self.env),
            "obs": self.obs,
            "latent": self.latent,
            "episode_return": self.episode_return,
            "completed_returns": list(self.completed_returns),
            "np_rng": self.np_rng.bit_generator.state,
            "updates": self.updates,
            "model_updates": self.model_updates_done,
            "behaviour": self.behaviour_state_dict(),
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.to_device()
        self.model.load_state_dict(s["model"])
        self.model_opt.load_state_dict(s["model_opt"])
        self.replay.load_state_dict(s["replay"])
        restore(self.env, s["env"])
        self.obs, self.latent = s["obs"], tensors_to(s["latent"], self.device)
        self.episode_return = s["episode_return"]
        self.completed_returns = list(s["completed_returns"])
        self.np_rng.bit_generator.state = s["np_rng"]
        self.updates, self.model_updates_done = s["updates"], s["model_updates"]
        self.load_behaviour_state_dict(s["behaviour"])
