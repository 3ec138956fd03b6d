"""World model: Dreamer's RSSM on states or pixels, with optional proprio auxiliary heads.

The model (shared by every model-based agent):

    encoder     e_t = MLP(x_t) on states, ConvEncoder(x_t) on pixels    role encoder
                (pixels+state: [ConvEncoder(image), MLP(state)])
    RSSM        h_t, z_t (see agent.common.rssm)                   role dynamics
    heads       on f_t = [h_t, z_t]: observation x_t               output role decoder
                (pixels: ConvDecoder, every layer role decoder, image in x / 255 - 0.5 units)
                reward r_t, continue 1 - terminal_t                reward_head, continue_head
                proprio targets (joint_pos, joint_vel, ee_pos, ee_vel), one head each, proprio_head
    loss        sum of unit-variance Gaussian NLLs (0.5 squared error, summed over dims),
                continue BCE, and the balanced KL with free nats (DreamerV2), with b = kl_balance:
                b max(KL(sg(q) || p), free) + (1 - b) max(KL(q || sg(p)), free)

Hidden layers of the heads carry role ``hidden``; every layer of the encoder carries
``encoder``. Constructors choose no init: ``init_schemes.apply_init`` applies the trial's init.
With pixels the proprio targets are prediction targets only: the encoder sees only the image.
The body-state probe (``agent.common.probe``) measures every model the same way, heads or not.

The ``world_model`` agent trains the model alone on data from a uniform random policy, holding
out every ``holdout_every``-th episode for open-loop evaluation, and logs ``model/*``:

    model/loss_<term>, model/kl, model/prior_entropy, model/post_entropy, model/grad_norm
    model/open_loop/<quantity>_h<h>   mean squared error per dim (raw units) of predictions h
                                      steps ahead from the posterior, fed the real actions
    model/const/<quantity>            the same for the best constant predictor (the variance)
                                      (pixels: obs errors in [0, 1] intensity units)
    model/recon/obs                   pixels: the posterior's own reconstruction error (h = 0)
    model/probe/<latent>/<q>          R^2 of a ridge probe from the features to the true body
                                      state (latent: post, prior_h<h>), see agent.common.probe

Its ``act`` returns zero actions: ``eval/return`` is the zero-action return, not a learned one.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agent.base import SMOKE_RUN, Agent
from agent.common.conv import ConvDecoder, ConvEncoder
from agent.common.envs import restore, snapshot, step_env
from agent.common.networks import mlp
from agent.common.probe import probe_scores
from agent.common.rssm import RSSM, Latent
from agent.common.sequence_replay import Batch, SequenceReplay, batch_to
from agent.config import ConfigError, TrialConfig
from agent.registry import register
from agent.sections import WorldModelConfig


def proprio_targets(env_spec: Any, names: list[str]) -> dict[str, Any]:
    """The env spec's proprio functions for ``names`` (``world_model.proprio``); a ConfigError
    naming the key, the env and its known targets if one is missing."""
    missing = [k for k in names if k not in env_spec.proprio]
    if missing:
        known = ", ".join(sorted(env_spec.proprio)) or "none"
        raise ConfigError(
            [
                (
                    "world_model.proprio",
                    f"env '{env_spec.id}' has no proprio target {missing} (it has: {known})",
                )
            ]
        )
    return {k: env_spec.proprio[k] for k in names}


def obs_layout(space: Any) -> tuple[int | tuple[int, ...], int]:
    """(obs_dim, state_dim) of an env's observation space: a vector's size and 0; an image's
    shape (3, S, S) and 0; or for {"pixels", "state"} the image's shape and the state's size."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return tuple(space["pixels"].shape), int(space["state"].shape[0])
    if space.dtype == np.uint8 and len(space.shape) == 3:
        return tuple(space.shape), 0
    return int(space.shape[0]), 0


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class WorldModel(nn.Module):
    """Encoder, RSSM and heads. Shapes: B batch, T time, N states, O obs, A action, F features.

    A batch (see ``agent.common.sequence_replay``) has obs [B, T, O], action [B, T, A] (the
    action that led to t), reward [B, T], is_first [B, T], is_terminal [B, T] and
    proprio {name: [B, T, D]} for every enabled target.
    """

    def __init__(
        self,
        obs_dim: int | tuple[int, ...],
        act_dim: int,
        cfg: WorldModelConfig,
        proprio_dims: dict[str, int] | None = None,
        state_dim: int = 0,
    ):
        """``obs_dim``: a state vector's size, or an image's shape (3, S, S) for pixels;
        ``state_dim`` > 0 (pixels+state) adds a state encoder and decoder beside the image's."""
        super().__init__()
        self.cfg = cfg
        hidden, act = [cfg.hidden] * cfg.layers, cfg.activation
        self.pixels = isinstance(obs_dim, tuple | list)
        self.state_dim = state_dim
        if self.pixels:
            size = obs_dim[-1]
            self.encoder = ConvEncoder(size, cfg.depth, act, cfg.channels_last)
            embed = self.encoder.out_dim
            if state_dim:
                self.state_encoder = mlp(state_dim, hidden, None, act, hidden_role="encoder")
                embed += cfg.hidden
        else:
            self.encoder = mlp(obs_dim, hidden, None, act, hidden_role="encoder")
            embed = cfg.hidden
        self.rssm = RSSM(
            embed,
            act_dim,
            cfg.deter,
            cfg.stoch,
            cfg.discrete,
            cfg.hidden,
            act,
            cfg.min_std,
            cfg.unimix,
        )
        f = self.rssm.feat_dim
        if self.pixels:
            self.decoder = ConvDecoder(f, size, cfg.depth, act, cfg.channels_last)
            if state_dim:
                self.state_decoder = mlp(f, hidden, state_dim, act, out_role="decoder")
        else:
            self.decoder = mlp(f, hidden, obs_dim, act, out_role="decoder")
        self.reward_head = mlp(f, hidden, 1, act, out_role="reward_head")
        self.continue_head = mlp(
            f, hidden, 1, act, out_role="continue_head", out_activation="sigmoid"
        )
        self.proprio_heads = nn.ModuleDict(
            {
                k: mlp(f, hidden, d, act, out_role="proprio_head")
                for k, d in (proprio_dims or {}).items()
            }
        )

    # --- latent states -------------------------------------------------------------------------
    def initial(self, batch: int) -> Latent:
        """Zero state [batch] that episodes start from."""
        return self.rssm.initial(batch)

    @staticmethod
    def features(state: Latent) -> Tensor:
        """[*L] state -> [*L, F] = [deter, stoch], the input of every head (and of policies)."""
        return torch.cat([state.deter, state.stoch], -1)

    def embed(self, obs: Tensor | dict[str, Tensor]) -> Tensor:
        """obs [..., O], an image [..., 3, S, S] (uint8), or {"pixels", "state"} -> [..., E]."""
        if isinstance(obs, dict):
            vec = obs["state"]
            return torch.cat(
                [
                    self.encoder(obs["pixels"]),
                    self.state_encoder(symlog(vec) if self.cfg.symlog else vec),
                ],
                -1,
            )
        if self.pixels:
            return self.encoder(obs)
        return self.encoder(symlog(obs) if self.cfg.symlog else obs)

    @staticmethod
    def batch_obs(batch: Batch) -> Tensor | dict[str, Tensor]:
        """The observation part of a replay batch: obs, or {"pixels", "state"}."""
        if "state" in batch:
            return {"pixels": batch["obs"], "state": batch["state"]}
        return batch["obs"]

    def observe(
        self,
        obs: Tensor | dict[str, Tensor],
        action: Tensor,
        is_first: Tensor,
        state: Latent | None = None,
        sample: bool = True,
    ) -> tuple[Latent, Latent]:
        """Posteriors and priors [B, T] along real sequences (obs [B, T, O], images
        [B, T, 3, S, S] or {"pixels", "state"}; action [B, T, A] leading to t, is_first [B, T]);
        ``state`` [B] continues a previous call (e.g. acting)."""
        return self.rssm.observe(self.embed(obs), action, is_first, state, sample)

    def imagine_step(self, state: Latent, action: Tensor, sample: bool = True) -> Latent:
        """state [N], action [N, A] in [-1, 1] -> the prior's next state [N]."""
        return self.rssm.img_step(state, action, sample)

    def imagine(
        self, start: Latent, policy, horizon: int | None = None, sample: bool = True
    ) -> tuple[Latent, Tensor]:
        """Batched imagination from ``start`` [N] with ``policy(Latent [N]) -> [N, A]`` for
        ``horizon`` steps, or with fixed actions [N, H, A]. Returns (states [N, H+1], actions
        [N, H, A]); rate them with ``reward``/``cont`` on ``features(states)``."""
        return self.rssm.imagine(start, policy, horizon, sample)

    # --- heads -----------------------------------------------------------------------------------
    def decode(self, feat: Tensor) -> Tensor:
        """Predicted observation [..., O] in raw units (pixels: the image [..., 3, S, S] in
        [0, 1] intensity units)."""
        x = self.decoder(feat)
        if self.pixels:
            return x + 0.5
        return symexp(x) if self.cfg.symlog else x

    def obs_loss(self, feat: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Reconstruction terms: 0.5 squared error summed over an observation's dims (pixels:
        over every pixel and channel of x / 255 - 0.5), mean over steps; ``state`` too with
        pixels+state."""
        tx = symlog if self.cfg.symlog else (lambda x: x)
        obs = batch["obs"]
        if not self.pixels:
            return {"obs": 0.5 * (self.decoder(feat) - tx(obs)).pow(2).sum(-1).mean()}
        target = obs.float() / 255.0 - 0.5
        terms = {"obs": 0.5 * (self.decoder(feat) - target).pow(2).sum((-3, -2, -1)).mean()}
        if self.state_dim:
            terms["state"] = (
                0.5 * (self.state_decoder(feat) - tx(batch["state"])).pow(2).sum(-1).mean()
            )
        return terms

    def reward(self, feat: Tensor) -> Tensor:
        """Predicted reward [...]."""
        return self.reward_head(feat).squeeze(-1)

    def cont(self, feat: Tensor) -> Tensor:
        """Probability [...] that the episode continues (is not terminal) at this state."""
        return torch.sigmoid(self.continue_head(feat).squeeze(-1))

    def proprio(self, feat: Tensor) -> dict[str, Tensor]:
        """Predicted proprio targets {name: [..., D]} in raw units."""
        out = {k: h(feat) for k, h in self.proprio_heads.items()}
        return {k: symexp(v) for k, v in out.items()} if self.cfg.symlog else out

    # --- learning ------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor], Latent]:
        """The world-model loss on a batch of real sequences.

        Returns (scalar loss, detached metrics ``model/*``, posteriors Latent [B, T]: the start
        states of imagination for a behaviour learner; detach them before use).
        """
        c = self.cfg
        is_first = batch["is_first"]
        posts, priors = self.observe(self.batch_obs(batch), batch["action"], is_first)
        feat = self.features(posts)
        tx = symlog if c.symlog else (lambda x: x)
        terms: dict[str, Tensor] = self.obs_loss(feat, batch)
        mask = (~is_first).to(feat.dtype)  # the reward on arriving at a first step is not real
        r_err = (self.reward(feat) - batch["reward"]).pow(2)
        terms["reward"] = 0.5 * (r_err * mask).sum() / mask.sum().clamp_min(1.0)
        terms["continue"] = F.binary_cross_entropy_with_logits(
            self.continue_head(feat).squeeze(-1), 1.0 - batch["is_terminal"].to(feat.dtype)
        )
        for k, head in self.proprio_heads.items():
            target = tx(batch["proprio"][k])
            terms[f"proprio_{k}"] = 0.5 * (head(feat) - target).pow(2).sum(-1).mean()
        kl_prior = self.rssm.kl(posts.stats.detach(), priors.stats).mean()
        kl_post = self.rssm.kl(posts.stats, priors.stats.detach()).mean()
        free = c.free_nats
        terms["kl"] = c.kl_balance * kl_prior.clamp_min(free) + (
            1 - c.kl_balance
        ) * kl_post.clamp_min(free)
        weights = {
            "obs": c.obs_weight,
            "state": c.obs_weight,
            "reward": c.reward_weight,
            "continue": c.continue_weight,
            "kl": c.kl_weight,
        }
        total = sum(weights.get(k, c.proprio_weight) * v for k, v in terms.items())
        metrics = {f"model/loss_{k}": v.detach() for k, v in terms.items()}
        metrics["model/kl"] = kl_prior.detach()
        metrics["model/prior_entropy"] = self.rssm.entropy(priors.stats).mean().detach()
        metrics["model/post_entropy"] = self.rssm.entropy(posts.stats).mean().detach()
        metrics["loss/model"] = total.detach()
        return total, metrics, posts

    # --- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def open_loop_errors(
        self,
        batch: Batch,
        horizons: list[int] | tuple[int, ...] = (1, 5, 15),
    ) -> dict[str, float]:
        """Open-loop prediction errors on real sequences (e.g. held-out episodes).

        From the posterior (mode) at every step t, the prior is rolled forward on the real
        actions without further observations; its prediction for t + h is compared with the
        real obs, reward and each proprio target there (only where no episode starts in
        (t, t + h]; a horizon no window reaches is left out). Errors are mean squared errors per
        dimension in raw units, ``model/open_loop/<q>_h<h>``; ``model/const/<q>`` is the batch
        variance, the error of the best constant predictor. With pixels, ``model/recon/obs`` is
        the posterior's reconstruction error (h = 0), in [0, 1] intensity units like the others.
        """
        obs, action, is_first = batch["obs"], batch["action"], batch["is_first"]
        B, T = is_first.shape
        H = max(horizons)
        if H >= T:
            raise ValueError(f"horizon {H} needs sequences longer than {T}")
        posts, _ = self.observe(self.batch_obs(batch), action, is_first, sample=False)
        state = posts.flatten()  # [B*T] start states
        if self.pixels:  # errors in [0, 1] intensity units
            obs = obs.float() / 255.0

        def windows(x: Tensor, fill: float | bool = 0.0) -> Tensor:
            """x [B, T, ...] -> [B, T, H, ...]: x[b, t + 1 + k] at [b, t, k], padded past T."""
            pad = x.new_full((B, H, *x.shape[2:]), fill)
            w = torch.cat([x, pad], 1)[:, 1:].unfold(1, H, 1)  # [B, T, ..., H]
            return w.movedim(-1, 2)

        starts_ok = windows(is_first, True).cumsum(2) == 0  # [B, T, H]
        targets = {"obs": obs, "reward": batch["reward"].unsqueeze(-1), **batch["proprio"]}
        if self.state_dim:
            targets["state"] = batch["state"]
        out: dict[str, float] = {}
        if self.pixels:  # the posterior's own reconstruction (what the encoder kept)
            recon = self.decode(self.features(posts)).reshape(B * T, -1)
            out["model/recon/obs"] = float((recon - obs.reshape(B * T, -1)).pow(2).mean())
        target_w = {k: windows(v) for k, v in targets.items()}
        act_w = windows(action)
        for h in range(1, H + 1):
            state = self.rssm.img_step(state, act_w[:, :, h - 1].reshape(B * T, -1), sample=False)
            if h not in horizons:
                continue
            feat = self.features(state)
            preds = {
                "obs": self.decode(feat),
                "reward": self.reward(feat).unsqueeze(-1),
                **self.proprio(feat),
            }
            if self.state_dim:
                vec = self.state_decoder(feat)
                preds["state"] = symexp(vec) if self.cfg.symlog else vec
            valid = starts_ok[:, :, h - 1].reshape(-1).to(feat.dtype)
            if not valid.any():  # every window crosses an episode start: nothing to compare
                continue
            for k, p in preds.items():
                err = (
                    (p.reshape(B * T, -1) - target_w[k][:, :, h - 1].reshape(B * T, -1))
                    .pow(2)
                    .mean(-1)
                )
                out[f"model/open_loop/{k}_h{h}"] = float((err * valid).sum() / valid.sum())
        real = ~is_first  # constant-predictor baseline; first steps carry no real reward
        for k, v in targets.items():
            vals = v[real] if k == "reward" else v.reshape(B * T, -1)
            out[f"model/const/{k}"] = float(vals.var(0, unbiased=False).mean())
        return out


def model_update(
    model: WorldModel, opt: torch.optim.Optimizer, batch: Batch, grad_clip: float
) -> tuple[dict[str, Tensor], Latent]:
    """One gradient step on ``batch``; returns (detached metrics, posteriors [B, T])."""
    loss, metrics, posts = model.loss(batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    metrics["model/grad_norm"] = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return metrics, posts


def _sequences(batch: Batch, which: slice) -> Batch:
    """The sequences ``which`` of a replay batch (every array's first axis)."""
    return {
        k: ({q: v[which] for q, v in x.items()} if isinstance(x, dict) else x[which])
        for k, x in batch.items()
    }


#: the smoke run of every agent with a world model: SMOKE_RUN with a tiny RSSM
SMOKE_WORLD_MODEL: dict[str, Any] = {
    **SMOKE_RUN,
    "world_model.deter": 16,
    "world_model.stoch": 4,
    "world_model.hidden": 16,
    "world_model.seq_len": 16,
    "world_model.batch_size": 4,
    "world_model.eval_batch": 4,
    "world_model.eval_horizons": [1, 3],
}


class RealSteps:
    """The real-env side of every agent that trains a world model: one env step, recorded in
    its sequence replay with the body quantities the model predicts.

    The agent provides env, low, high, env_spec, env_steps, obs, proprio_fns, replay,
    episode_return and completed_returns; it may choose the buffer a step goes to
    (:meth:`_buffer`) and act when an episode ends (:meth:`_episode_ended`)."""

    def _buffer(self) -> SequenceReplay:
        return self.replay

    def _record(self, action: np.ndarray, reward: float, first: bool, terminal: bool) -> None:
        proprio = {k: f(self.env.unwrapped) for k, f in self.proprio_fns.items()}
        self._buffer().add(self.obs, action, reward, first, terminal, proprio)

    def _real_step(self, action: np.ndarray) -> bool:
        """Step the env with ``action`` and record it; at an episode's end, reset the env and
        record the next episode's first observation. Returns whether the episode ended."""
        self.obs, reward, term, trunc, _ = step_env(
            self.env, action, self.low, self.high, f"env '{self.env_spec.id}'", self.env_steps
        )
        self._record(action, float(reward), first=False, terminal=bool(term))
        self.episode_return += float(reward)
        self.env_steps += 1
        if not (term or trunc):
            return False
        self.completed_returns.append(self.episode_return)
        self.episode_return = 0.0
        self._episode_ended()
        self.obs, _ = self.env.reset()
        self._record(np.zeros_like(action), 0.0, first=True, terminal=False)
        return True

    def _episode_ended(self) -> None:
        """Called when an episode ends, before the reset."""


@register("world_model", "RSSM world model alone, trained on random-policy data; logs model/*")
class WorldModelAgent(RealSteps, Agent):
    """Collects real episodes with a uniform random policy and trains the world model on them.

    Episodes 0, k, 2k, ... (k = ``holdout_every``) go to a held-out replay for the open-loop
    errors and the probe (its steps cut into sequences end to end, alternately fitting and
    scoring it);
    all others train the model. ``act`` returns zeros (there is no learned policy).
    """

    Config = WorldModelConfig
    sections = ("world_model",)
    #: the agent contract's run (agent.base.SMOKE_RUN)
    smoke: ClassVar[dict[str, Any]] = {
        **SMOKE_WORLD_MODEL,
        "world_model.prefill": 100,
        "world_model.train_every": 10,
        "world_model.proprio": ["ee_pos"],
    }
    devices = ("cpu", "cuda")
    pixels = True

    def __init__(self, cfg: TrialConfig):
        super().__init__(cfg)
        c: WorldModelConfig = cfg.section("world_model")
        self.c = c
        self.proprio_fns = proprio_targets(self.env_spec, c.proprio)
        self.env = self.env_spec.make()
        self.probe = c.probe if c.probe is not None else self.env_spec.observation.pixels
        if self.probe:  # the replay keeps every body quantity (the probe's ground truth); the
            self.proprio_fns = dict(self.env_spec.proprio)  # heads predict only ``proprio``
        self.low, self.high = self.env.action_space.low, self.env.action_space.high
        obs_dim, state_dim = obs_layout(self.env.observation_space)
        act_dim = self.env.action_space.shape[0]
        self.obs, _ = self.env.reset(seed=cfg.seed)
        dims = {k: int(np.asarray(f(self.env.unwrapped)).size) for k, f in self.proprio_fns.items()}
        self.model = WorldModel(obs_dim, act_dim, c, {k: dims[k] for k in c.proprio}, state_dim).to(
            self.device
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=c.lr, eps=c.adam_eps, foreach=True)
        # the stream holds one more step per episode (its first observation) than env steps
        capacity = min(c.buffer_size, cfg.total_steps + cfg.total_steps // 4 + 1000)
        self.replay = SequenceReplay(
            capacity, obs_dim, act_dim, dims, seed=cfg.seed, state_dim=state_dim
        )
        self.holdout = SequenceReplay(
            capacity // c.holdout_every + 1000,
            obs_dim,
            act_dim,
            dims,
            seed=cfg.seed + 1,
            state_dim=state_dim,
        )
        self.np_rng = np.random.default_rng(cfg.seed + 2)
        self.episode, self.episode_return, self.completed_returns = 0, 0.0, []
        self.updates, self.update_time = 0, 0.0
        self._record(np.zeros(act_dim, np.float32), 0.0, first=True, terminal=False)

    def networks(self) -> dict[str, nn.Module]:
        return {"world_model": self.model}

    # --- the loop ------------------------------------------------------------------------------
    def _buffer(self) -> SequenceReplay:
        return self.holdout if self.episode % self.c.holdout_every == 0 else self.replay

    def _episode_ended(self) -> None:
        self.episode += 1
        self.behaviour = None  # mixed: the next episode draws its own

    BEHAVIOURS = ("uniform", "constant", "sine", "walk")

    def explore_action(self) -> np.ndarray:
        """The data-collecting action in [-1, 1]. ``policy: random``: uniform. ``mixed``: the
        episode's behaviour, drawn when it starts (:meth:`_new_behaviour`): uniform; a constant
        action plus small noise; a sine gait a_i = sin(2 pi f t + phi_i) (f in [0.5, 3] cycles
        per second of env time); or a random walk a <- clip(0.9 a + 0.3 noise)."""
        rng, shape = self.np_rng, self.low.shape
        if self.c.policy == "random":
            return rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        if getattr(self, "behaviour", None) is None:
            self._new_behaviour()
        kind, p = self.behaviour
        p["t"] += 1
        if kind == "uniform":
            a = rng.uniform(-1.0, 1.0, shape)
        elif kind == "constant":
            a = p["level"] + 0.1 * rng.standard_normal(shape)
        elif kind == "sine":
            a = np.sin(2 * np.pi * p["freq"] * p["t"] * p["dt"] + p["phase"])
        else:
            p["a"] = 0.9 * p["a"] + 0.3 * rng.standard_normal(shape)
            a = p["a"]
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def _new_behaviour(self) -> None:
        rng, shape = self.np_rng, self.low.shape
        kind = self.BEHAVIOURS[int(rng.integers(len(self.BEHAVIOURS)))]
        self.behaviour = (
            kind,
            {
                "t": 0,
                "level": rng.uniform(-1.0, 1.0, shape),
                "freq": rng.uniform(0.5, 3.0),
                "phase": rng.uniform(0, 2 * np.pi, shape),
                "a": np.zeros(shape),
                "dt": float(getattr(self.env.unwrapped, "dt", 0.05))
                * self.env_spec.observation.action_repeat,
            },
        )

    def train(self, until: int) -> dict[str, float]:
        c = self.c
        sums: dict[str, Tensor] = {}
        n, t_updates = 0, 0.0
        while self.env_steps < until:
            self._real_step(self.explore_action())
            if (
                self.env_steps >= c.prefill
                and self.env_steps % c.train_every == 0
                and self.replay.can_sample(c.seq_len)
            ):
                t0 = time.perf_counter()
                for _ in range(c.updates):
                    batch = batch_to(self.replay.sample(c.batch_size, c.seq_len), self.device)
                    metrics, _ = model_update(self.model, self.opt, batch, c.grad_clip)
                    for k, v in metrics.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n += 1
                t_updates += time.perf_counter() - t0
        self.updates += n
        out = {k: float(v) / n for k, v in sums.items()} if n else {}
        if n:
            out["perf/model_updates_per_s"] = n / max(t_updates, 1e-9)
        out.update(self.evaluate_model())
        if self.completed_returns:
            out["train/return"] = float(np.mean(self.completed_returns[-10:]))
        out["train/updates"] = float(self.updates)
        return out

    def evaluate_model(self) -> dict[str, float]:
        """Open-loop errors on a fixed draw of held-out sequences, and the probe's R^2 ({} until
        there are enough; the probe once each half of the held-out steps holds a sequence)."""
        c = self.c
        length = min(c.seq_len, self.holdout.size)
        if length <= max(c.eval_horizons):
            return {}
        batch = self.holdout.sample(c.eval_batch, length, rng=np.random.default_rng(12345))
        out = self.model.open_loop_errors(batch_to(batch, self.device), c.eval_horizons)
        if self.probe and self.holdout.size >= 2 * c.seq_len:
            # the held-out steps cut into sequences end to end (no step twice), alternately
            # for fitting and for scoring the probe: two disjoint sets from the same episodes
            tiles = self.holdout.sample(2 * c.probe_sequences, c.seq_len, tiled=True)
            fit, score = (
                batch_to(_sequences(tiles, slice(k, None, 2)), self.device) for k in (0, 1)
            )
            out.update(probe_scores(self.model, fit, score, c.eval_horizons, c.probe_alpha))
        return out

    # --- acting, diagnostics, checkpoints ------------------------------------------------------
    def act(self, obs: Any, state: Any) -> tuple[np.ndarray, Any]:
        """Zero actions: this agent learns no policy (eval/return is the zero-action return)."""
        n = len(obs["state"] if isinstance(obs, dict) else obs)
        return np.zeros((n, *self.low.shape), np.float32), state

    def init_probe(self, obs: np.ndarray) -> dict[str, Any]:
        """The data-collecting policy: uniform in [-1, 1]^A."""
        rng = np.random.default_rng(self.cfg.seed + 3)  # leaves the data's generator alone
        n = len(obs["state"] if isinstance(obs, dict) else obs)
        a = rng.uniform(-1.0, 1.0, (n, *self.low.shape))
        return {
            "actions": a,
            "entropy": float(np.log(2.0) * a.shape[1]),
            "mean_abs_mean": 0.0,
            "std": float(1.0 / np.sqrt(3.0)),
            "critic_scale": None,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "replay": self.replay.state_dict(),
            "holdout": self.holdout.state_dict(),
            "env": snapshot(self.env),
            "obs": self.obs,
            "episode": self.episode,
            "episode_return": self.episode_return,
            "completed_returns": self.completed_returns,
            "np_rng": self.np_rng.bit_generator.state,
            "updates": self.updates,
            "behaviour": getattr(self, "behaviour", None),
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        self.replay.load_state_dict(s["replay"])
        self.holdout.load_state_dict(s["holdout"])
        restore(self.env, s["env"])
        self.obs, self.episode = s["obs"], s["episode"]
        self.episode_return = s["episode_return"]
        self.completed_returns = list(s["completed_returns"])
        self.np_rng.bit_generator.state = s["np_rng"]
        self.updates = s["updates"]
        self.behaviour = s.get("behaviour")
