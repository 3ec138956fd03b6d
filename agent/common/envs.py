"""Environment registry: how to build each env, its score range, and its proprio targets.

An entry says how to make the gymnasium env, the random and reference returns used to normalise
scores in reports, and (for the world model's auxiliary heads) functions reading the robot's own
body state from the simulator. Any other gymnasium id with a Box action space also works, with no
proprio targets and no normalisation.

Add the targets of another MuJoCo env with ``register_env``::

    register_env(EnvSpec("Hopper-v5", random_score=-20.0, reference_score=3234.0,
                         proprio=mujoco_proprio(feet=("foot",))))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from init_schemes import Registry, RegistryError, suggest

ProprioFn = Callable[[Any], np.ndarray]  # unwrapped env -> 1-D float array


@dataclass(frozen=True)
class EnvSpec:
    id: str
    random_score: float | None = None
    reference_score: float | None = None
    #: target name -> function of the unwrapped env. Names: joint_pos, joint_vel, ee_pos, ee_vel.
    proprio: dict[str, ProprioFn] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, **kwargs: Any) -> gym.Env:
        try:
            env = gym.make(self.id, **{**self.kwargs, **kwargs})
        except Exception as err:
            msg = f"could not create env '{self.id}': {type(err).__name__}: {err}"
            raise EnvError(msg) from err
        if not isinstance(env.action_space, gym.spaces.Box):
            raise EnvError(
                f"env '{self.id}' has a {type(env.action_space).__name__} action space; "
                "these agents need a continuous (Box) action space"
            )
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise EnvError(f"env '{self.id}' needs a Box (vector) observation space")
        return env

    def proprio_dims(self) -> dict[str, int]:
        env = self.make()
        env.reset(seed=0)
        dims = {k: int(np.asarray(f(env.unwrapped)).size) for k, f in self.proprio.items()}
        env.close()
        return dims


class EnvError(RuntimeError):
    """An environment that cannot be built or that crashed."""


envs: Registry[EnvSpec] = Registry("environment")


def register_env(spec: EnvSpec, description: str = "", *, override: bool = False) -> EnvSpec:
    envs.add(spec.id, spec, description, override=override)
    return spec


_checked: set[str] = set()


def check_env(spec: EnvSpec) -> None:
    """Build the env once (cached per id) so a bad id or action space fails at config time."""
    if spec.id not in _checked:
        spec.make().close()
        _checked.add(spec.id)


def get_env(env_id: str) -> EnvSpec:
    """The registered spec, or a plain spec for any other gymnasium id; a clear error otherwise."""
    if env_id in envs:
        return envs.get(env_id)
    if env_id in gym.registry:
        return EnvSpec(env_id)
    known = envs.names()
    hint = suggest(env_id, known + list(gym.registry))
    raise RegistryError(
        f"unknown environment '{env_id}'{hint} (registered: {', '.join(known)}; any gymnasium id "
        "with a Box action space also works)"
    )


# --- proprio targets ---------------------------------------------------------------------------

def _pendulum_angle(u) -> np.ndarray:
    return np.array([np.cos(u.state[0]), np.sin(u.state[0])], dtype=np.float32)


def _pendulum_ang_vel(u) -> np.ndarray:
    return np.array([u.state[1]], dtype=np.float32)


def _pendulum_tip_pos(u) -> np.ndarray:
    th = u.state[0]  # length 1, angle from upright
    return np.array([np.sin(th), np.cos(th)], dtype=np.float32)


def _pendulum_tip_vel(u) -> np.ndarray:
    th, thdot = u.state
    return np.array([thdot * np.cos(th), -thdot * np.sin(th)], dtype=np.float32)


def mujoco_proprio(feet: tuple[str, ...]) -> dict[str, ProprioFn]:
    """Targets read from MuJoCo's data: qpos (including the root x), qvel, and the world
    position and linear velocity of each named end-effector body."""

    def joint_pos(u) -> np.ndarray:
        return u.data.qpos.astype(np.float32).copy()

    def joint_vel(u) -> np.ndarray:
        return u.data.qvel.astype(np.float32).copy()

    def ee_pos(u) -> np.ndarray:
        return np.concatenate([u.data.body(b).xpos for b in feet]).astype(np.float32)

    def ee_vel(u) -> np.ndarray:
        import mujoco

        out = []
        vel = np.zeros(6)
        for b in feet:
            body_id = u.model.body(b).id
            mujoco.mj_objectVelocity(u.model, u.data, mujoco.mjtObj.mjOBJ_BODY, body_id, vel, 0)
            out.append(vel[3:].copy())  # linear part, world frame
        return np.concatenate(out).astype(np.float32)

    return {"joint_pos": joint_pos, "joint_vel": joint_vel, "ee_pos": ee_pos, "ee_vel": ee_vel}


register_env(
    EnvSpec(
        "Pendulum-v1",
        random_score=-1230.0,
        reference_score=-150.0,
        proprio={
            "joint_pos": _pendulum_angle,
            "joint_vel": _pendulum_ang_vel,
            "ee_pos": _pendulum_tip_pos,
            "ee_vel": _pendulum_tip_vel,
        },
    ),
    "swing-up pendulum, 1-D torque, 200-step episodes",
)
register_env(
    EnvSpec("Walker2d-v5", random_score=1.6, reference_score=4592.3,
            proprio=mujoco_proprio(feet=("foot", "foot_left"))),
    "MuJoCo planar biped, 6-D torques, 1000-step episodes",
)


# --- exact env snapshots for checkpoints -------------------------------------------------------

def snapshot(env: gym.Env) -> dict:
    """The state an env needs to continue exactly where it was (physics, time limit, RNG)."""
    u = env.unwrapped
    snap: dict[str, Any] = {"np_random": u.np_random.bit_generator.state}
    if hasattr(u, "data") and hasattr(u.data, "qpos"):  # MuJoCo
        snap["mujoco"] = {k: getattr(u.data, k).copy()
                          for k in ("qpos", "qvel", "act", "qacc_warmstart")}
        snap["mujoco"]["time"] = float(u.data.time)
    elif hasattr(u, "state"):
        snap["state"] = None if u.state is None else np.array(u.state, copy=True)
        if hasattr(u, "last_u"):
            snap["last_u"] = u.last_u
    else:
        raise EnvError(f"cannot snapshot env '{env.spec.id if env.spec else u}' for checkpointing")
    snap["elapsed"] = _time_limit(env)._elapsed_steps if _time_limit(env) else None
    return snap


def restore(env: gym.Env, snap: dict) -> None:
    u = env.unwrapped
    u.np_random.bit_generator.state = snap["np_random"]
    if "mujoco" in snap:
        import mujoco

        for k in ("qpos", "qvel", "act", "qacc_warmstart"):
            getattr(u.data, k)[:] = snap["mujoco"][k]
        u.data.time = snap["mujoco"]["time"]
        mujoco.mj_forward(u.model, u.data)
    else:
        u.state = snap["state"]
        if "last_u" in snap:
            u.last_u = snap["last_u"]
    tl = _time_limit(env)
    if tl is not None:
        tl._elapsed_steps = snap["elapsed"]


def _time_limit(env: gym.Env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def scale_action(a: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [low, high], elementwise."""
    return low + (np.asarray(a) + 1.0) * 0.5 * (high - low)


def step_env(env: Any, action: np.ndarray, low: np.ndarray, high: np.ndarray, name: str,
             step: int | None = None) -> tuple:
    """``env.step`` of ``action`` in [-1, 1] rescaled to [low, high] (a single or vector env).

    An exception from the simulator becomes an :class:`EnvError` "<name> crashed at step
    <step>: <error>" (``name`` e.g. "env 'Walker2d-v5'"), so a trial fails with a message naming
    the env and the step instead of a simulator traceback.
    """
    try:
        return env.step(scale_action(action, low, high))
    except Exception as err:
        at = "" if step is None else f" at step {step}"
        raise EnvError(f"{name} crashed{at}: {err}") from err
