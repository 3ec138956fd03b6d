"""What every agent provides, and the shared pieces most of them use.

The trial loop (``agent.trial``) only talks to this interface, so model-free and model-based
agents run, evaluate, checkpoint and resume the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from agent.common.envs import EnvSpec, get_env, restore, snapshot
from agent.config import TrialConfig
from init_schemes import apply_init

#: the run every agent's ``smoke`` config starts from. Each agent class exports ``smoke``, dotted
#: overrides for a run of a few seconds on one CPU thread: the agent contract
#: (tests/test_agent_contract.py) runs, resumes and checkpoints every registered agent on it
SMOKE_RUN: dict[str, Any] = {
    "env": "Pendulum-v1",
    "preset": "none",
    "total_steps": 300,
    "eval_every": 100,
    "eval_episodes": 1,
    "diag_states": 20,
}


class Agent:
    """Base class. Subclasses set ``Config`` and ``sections`` and implement the methods below."""

    Config: type[BaseModel]
    sections: tuple[str, ...] = ()
    #: devices the agent's tensors can live on (``device: auto`` picks CUDA only if listed)
    devices: tuple[str, ...] = ("cpu",)
    #: whether it takes pixel observations (``observation.mode: pixels``, ``pixels+state``)
    pixels: bool = False

    def __init__(self, cfg: TrialConfig):
        self.cfg = cfg
        self.env_spec: EnvSpec = get_env(cfg.env).with_observation(cfg.observation)
        self.env_steps = 0
        self.device = resolve_device(cfg.device, self.devices)

    # --- construction ------------------------------------------------------------------------
    def open_env(self) -> tuple[int, int]:
        """The training env (``env``; action bounds ``low``, ``high``) reset with the trial's
        seed (``obs``), and the episode counters; returns (obs_dim, act_dim) of a vector env."""
        self.env = self.env_spec.make()
        self.low, self.high = self.env.action_space.low, self.env.action_space.high
        self.obs, _ = self.env.reset(seed=self.cfg.seed)
        self.episode_return, self.completed_returns = 0.0, []
        return self.env.observation_space.shape[0], self.env.action_space.shape[0]

    def env_state(self) -> dict[str, Any]:
        """The checkpoint's part of what :meth:`open_env` set up."""
        return {
            "env": snapshot(self.env),
            "obs": self.obs,
            "episode_return": self.episode_return,
            "completed_returns": self.completed_returns,
        }

    def load_env_state(self, s: dict[str, Any]) -> None:
        restore(self.env, s["env"])
        self.obs, self.episode_return = s["obs"], s["episode_return"]
        self.completed_returns = list(s["completed_returns"])

    def networks(self) -> dict[str, nn.Module]:
        """Every module whose layers the init spec applies to, by name."""
        raise NotImplementedError

    def after_init(self) -> None:
        """Called after the init spec was applied (e.g. copy weights into target networks)."""

    def initialise(self) -> list[dict]:
        """Apply the trial's init spec to every network; return the per-layer record."""
        records = []
        for name, net in self.networks().items():
            for rec in apply_init(net, self.cfg.init):
                records.append({**rec, "layer": f"{name}.{rec['layer']}"})
        self.after_init()
        return records

    # --- learning ----------------------------------------------------------------------------
    def train(self, until: int) -> dict[str, float]:
        """Interact with the env and learn until ``env_steps == until``; return mean metrics."""
        raise NotImplementedError

    # --- acting (evaluation) -----------------------------------------------------------------
    def eval_state(self, n: int) -> Any:
        """Recurrent state for ``n`` parallel eval episodes (None for memoryless policies)."""
        return None

    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """Deterministic actions in [-1, 1] for a batch of observations [n, obs_dim]."""
        raise NotImplementedError

    def init_probe(self, obs: np.ndarray) -> dict[str, Any]:
        """Sample the initial policy on real states [N, obs_dim]. Returns ``actions`` [N, A] in
        [-1, 1] (after squashing or clipping) and floats ``entropy``, ``mean_abs_mean``, ``std``,
        ``critic_scale`` (mean |critic output|, None without a critic)."""
        raise NotImplementedError

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def resolve_device(name: str, supported: tuple[str, ...] = ("cpu",)) -> torch.device:
    """``auto``: CUDA when it is available and in ``supported``, else CPU; ``cuda`` without a
    GPU (or for a CPU-only agent) is an error naming the key."""
    if name == "auto":
        return torch.device("cuda" if "cuda" in supported and torch.cuda.is_available() else "cpu")
    if name not in supported:
        raise ValueError(
            f"device: '{name}' is not supported by this agent (it runs on {', '.join(supported)})"
        )
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' but torch sees no CUDA device (use auto or cpu)")
    return torch.device(name)


def rng_state() -> dict[str, Any]:
    import random

    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # the GPU's own generators
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    # the GPU generators, when saved on a GPU machine and this one has as many GPUs; elsewhere
    # the resumed run draws from fresh GPU streams (a CPU machine has none to restore)
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def tensors_to(x: Any, device: torch.device) -> Any:
    """``x`` with every tensor in it (nested dicts, lists, tuples, dataclasses such as a
    ``Latent``) moved to ``device``: a checkpoint loaded on the CPU joins a GPU agent, and back."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict):
        return {k: tensors_to(v, device) for k, v in x.items()}
    if isinstance(x, list | tuple):
        moved = [tensors_to(v, device) for v in x]
        return type(x)(*moved) if hasattr(x, "_fields") else type(x)(moved)  # NamedTuple: fields
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.replace(
            x, **{f.name: tensors_to(getattr(x, f.name), device) for f in dataclasses.fields(x)}
        )
    return x


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
