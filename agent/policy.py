"""A trial's final policy: a small weights-only file, and an object you can act with.

Every trial keeps ``policy.pt`` next to its results (written at each evaluation, so it is the
last evaluated policy; it stays when training checkpoints are deleted). It holds only tensors and
plain values, so ``torch.load(path, weights_only=True)`` reads it::

    {"format": 1, "agent": "ppo", "env": "Walker2d-v5", "env_steps": 100000,
     "networks": {"actor": state_dict},   # agent.networks() but the critic (not needed to act)
     "obs_norm": {"mean": tensor, "var": tensor, "count": tensor}}   # agents that normalise obs

:func:`load_policy` rebuilds the agent from the trial's ``config.json``, loads the weights and
returns a :class:`Policy`::

    from agent.policy import load_policy
    policy = load_policy("runs/ppo_walker")
    action = policy.act(obs)   # obs [O] or [N, O] -> actions in the env's bounds
    returns = policy.evaluate(episodes=10, seed=0)
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweeps.trialdir import CONFIG_FILE, POLICY_FILE, TRIALS_DIR, atomic_write_bytes

FORMAT = 1
#: networks the file leaves out: value/Q estimates are not needed to act (SAC's [256, 256] twin
#: critic would triple the file; a model-based agent keeps its world model, which it acts through)
NOT_FOR_ACTING = frozenset({"critic"})


class PolicyError(ValueError):
    """A directory that is not a trial, or a trial without a usable policy file."""


def policy_state(agent: Any) -> dict[str, Any]:
    """The weights-only contents of ``policy.pt`` for ``agent``."""
    state: dict[str, Any] = {
        "format": FORMAT,
        "agent": agent.cfg.agent,
        "env": agent.cfg.env,
        "env_steps": int(agent.env_steps),
        "networks": {
            name: {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            for name, net in agent.networks().items()
            if name not in NOT_FOR_ACTING
        },
    }
    norm = getattr(agent, "obs_norm", None)
    if norm is not None and getattr(norm, "enabled", False):
        rms = norm.rms
        state["obs_norm"] = {
            "mean": torch.as_tensor(np.asarray(rms.mean, dtype=np.float64)),
            "var": torch.as_tensor(np.asarray(rms.var, dtype=np.float64)),
            "count": torch.tensor(float(rms.count), dtype=torch.float64),
        }
    return state


def save_policy(agent: Any, out_dir: str | Path) -> Path | None:
    """Write ``out_dir/policy.pt`` atomically (nothing for a seed-batched agent: its networks
    stack K seeds; each seed's policy is not separable by this file format yet)."""
    if getattr(agent.cfg, "seed_batched", False):
        return None
    path = Path(out_dir) / POLICY_FILE
    buf = io.BytesIO()
    torch.save(policy_state(agent), buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


class Policy:
    """A trained agent, ready to act: ``act(obs)`` returns actions in the env's own bounds."""

    def __init__(self, agent: Any, info: dict[str, Any], trial_dir: Path):
        self.agent, self.info, self.trial_dir = agent, info, trial_dir
        self.env_spec = agent.env_spec
        env = agent.env_spec.make()
        self.low, self.high = env.action_space.low, env.action_space.high
        self.obs_shape = tuple(env.observation_space.shape or ())
        env.close()
        self._state: Any = None

    @property
    def env_steps(self) -> int:
        return int(self.info["env_steps"])

    def reset(self, n: int = 1) -> None:
        """Start ``n`` new episodes (agents with memory, e.g. a world model's latent)."""
        self._state = self.agent.eval_state(n)

    @torch.inference_mode()
    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Actions for ``obs`` ([O] or [N, O]) in the env's bounds, scaled from [-1, 1].

        ``deterministic=False`` samples from the policy's distribution (PPO: Gaussian, clipped;
        SAC: squashed Gaussian). Agents with memory keep it across calls until :meth:`reset`.
        """
        single = isinstance(obs, np.ndarray) and obs.ndim == len(self.obs_shape)
        batch = np.asarray(obs, dtype=np.float32)[None] if single else obs
        n = len(batch["state"] if isinstance(batch, dict) else batch)
        if self._state is None:
            self.reset(n)
        unit, self._state = (
            self.agent.act(batch, self._state) if deterministic else self._sample(batch)
        )
        scaled = self.low + (np.clip(unit, -1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)
        return scaled[0] if single else scaled

    def _sample(self, obs: np.ndarray) -> tuple[np.ndarray, Any]:
        name = self.info["agent"]
        actor = getattr(self.agent, "actor", None)
        if name == "ppo":
            mean, log_std = actor(self.agent.obs_norm(obs))
            return (mean + log_std.exp() * torch.randn_like(mean)).clamp(-1, 1).numpy(), None
        if name == "sac":
            mean, log_std = actor(torch.as_tensor(obs, dtype=torch.float32))
            return torch.tanh(mean + log_std.exp() * torch.randn_like(mean)).numpy(), None
        raise PolicyError(
            f"--stochastic: agent '{name}' has no stochastic policy here (ppo "
            "and sac do); evaluate it deterministically"
        )

    def evaluate(
        self,
        episodes: int = 10,
        seed: int = 0,
        deterministic: bool = True,
        frames: list | None = None,
    ) -> np.ndarray:
        """Returns of ``episodes`` episodes (episode i reset with ``seed + i``), shape [episodes].

        ``frames``: a list that receives the first episode's rendered frames (the env made with
        ``render_mode="rgb_array"``).
        """
        returns = np.zeros(episodes)
        for i in range(episodes):
            record = frames is not None and i == 0
            env = make_render_env(self.env_spec) if record else self.env_spec.make()
            obs, _ = env.reset(seed=seed + i)
            self.reset(1)
            done = False
            while not done:
                if record:
                    frames.append(env.render())
                obs, r, term, trunc, _ = env.step(self.act(obs, deterministic))
                returns[i] += float(r)
                done = bool(term or trunc)
            if record:
                frames.append(env.render())
            env.close()
        return returns


def make_render_env(env_spec: Any) -> Any:
    """The env of ``env_spec`` with ``render_mode="rgb_array"``. MuJoCo renders offscreen through
    EGL when there is no display, with the fast settings: no multisampling, shadows,
    reflections or skybox (what a video of proprioceptive control needs)."""
    import os

    import gymnasium as gym

    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    env = gym.make(env_spec.id, render_mode="rgb_array")
    model = getattr(env.unwrapped, "model", None)
    if model is not None:  # a MuJoCo env
        import mujoco

        model.vis.quality.offsamples = 0
        renderer = env.unwrapped.mujoco_renderer
        viewer = renderer._get_viewer("rgb_array")
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
        ):
            viewer.scn.flags[flag] = 0
    return env


def load_policy(trial_dir: str | Path) -> Policy:
    """The final policy of a trial directory (``sweep train --out`` or ``<sweep>/trials/<id>``).

    Raises :class:`PolicyError` naming the problem: not a trial directory, no ``policy.pt``, or
    a policy file of another format.
    """
    from agent.config import ConfigError, build_config
    from agent.registry import agents

    trial = Path(trial_dir)
    config_path = trial / CONFIG_FILE
    if not trial.is_dir():
        raise PolicyError(f"{trial}: no such directory")
    if not config_path.is_file():
        hint = (
            " (a sweep directory: pass one of its trials/<trial_id>)"
            if (trial / TRIALS_DIR).is_dir()
            else ""
        )
        raise PolicyError(f"{trial} is not a trial directory: it has no config.json{hint}")
    path = trial / POLICY_FILE
    if not path.is_file():
        raise PolicyError(
            f"{trial} has no {POLICY_FILE}: the trial wrote no policy (it was run "
            "before final-policy files existed, is seed-batched, or never reached "
            "its first evaluation)"
        )
    try:
        info = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PolicyError(
            f"{path}: not a readable policy file ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise PolicyError(f"{path}: not a policy file of format {FORMAT}")
    try:
        cfg = build_config(json.loads(config_path.read_text()))
    except (ConfigError, json.JSONDecodeError) as err:
        raise PolicyError(f"{config_path}: {err}") from err
    agent = agents.get(cfg.agent)(cfg)
    if hasattr(agent, "to_device"):  # all its networks on the config's device (auto: a GPU)
        agent.to_device()
    nets = agent.networks()
    nets = {name: net for name, net in nets.items() if name not in NOT_FOR_ACTING}
    missing = sorted(set(nets) - set(info["networks"]))
    if missing:
        raise PolicyError(f"{path}: no weights for network(s) {', '.join(missing)}")
    for name, net in nets.items():
        net.load_state_dict(info["networks"][name])
        net.eval()
    if "obs_norm" in info and getattr(agent, "obs_norm", None) is not None:
        rms = agent.obs_norm.rms
        rms.mean = info["obs_norm"]["mean"].numpy()
        rms.var = info["obs_norm"]["var"].numpy()
        rms.count = float(info["obs_norm"]["count"])
    return Policy(agent, info, trial)
