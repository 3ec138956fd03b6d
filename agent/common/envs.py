"""Environment registry: how to build each env, its score range, and its proprio targets.

An entry says how to make the gymnasium env, the random and reference returns used to normalise
scores in reports, and (for the world model's auxiliary heads) functions reading the robot's own
body state from the simulator. Any other gymnasium id with a Box action space also works, with no
proprio targets and no normalisation.

Add the targets of another MuJoCo env with ``register_env``::

    register_env(EnvSpec("Hopper-v5", random_score=-20.0, reference_score=3234.0,
                         proprio=mujoco_proprio(feet=("foot",))))

Observations (``observation.mode`` of a trial, :class:`ObservationConfig`): ``state`` is the
env's own vector; ``pixels`` a uint8 image [3, size, size] rendered by MuJoCo from a camera that
tracks the robot's root body (the env entry's ``camera``); ``pixels+state`` a dict
``{"pixels": image, "state": vector}``. ``action_repeat`` k repeats each action k times and sums
the rewards. Rendering uses MuJoCo's offscreen renderer with multisampling, shadows,
reflections and the skybox off (~700 frames/s instead of ~20 for Walker2d with EGL), and
``MUJOCO_GL=egl`` when there is no display.

Proprio targets are functions of the simulator's current state (qpos, qvel) only: they are
computed on a private ``MjData`` after ``mj_kinematics`` (``env.step`` leaves ``xpos`` one
physics substep behind ``qpos``), so ``ee_vel`` is exactly the time derivative of ``ee_pos``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from initablate.registry import Registry, RegistryError, suggest

ProprioFn = Callable[[Any], np.ndarray]  # unwrapped env -> 1-D float array


class ObservationConfig(BaseModel):
    """What an agent observes (the trial's ``observation`` section)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["state", "pixels", "pixels+state"] = Field(
        "state",
        description="state: the env's vector; pixels: a rendered uint8 image "
        "[3, size, size]; pixels+state: {'pixels': image, 'state': vector}",
    )
    size: int = Field(64, description="image height and width (16, 32, 64 or 128)")
    action_repeat: int = Field(1, ge=1, description="repeat each action k times, sum rewards")
    camera: str | None = Field(
        None,
        description="a named camera of the model; None: the env "
        "entry's camera (tracks the root body)",
    )

    @field_validator("size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v not in (16, 32, 64, 128):
            raise ValueError(
                f"image size must be 16, 32, 64 or 128 (the conv stack halves it "
                f"down to 4), got {v}"
            )
        return v

    @property
    def pixels(self) -> bool:
        return self.mode != "state"


@dataclass(frozen=True)
class CameraSpec:
    """How to film an env: a named model camera, or a free camera whose look-at point follows
    ``body`` (raised by ``height``; ``"world"``: a fixed camera) from ``distance`` at
    ``elevation``/``azimuth`` degrees."""

    name: str | None = None
    body: str | None = None
    distance: float = 3.0
    elevation: float = 0.0
    azimuth: float = 90.0
    height: float = 0.0


@dataclass(frozen=True)
class EnvSpec:
    id: str
    random_score: float | None = None
    reference_score: float | None = None
    #: target name -> function of the unwrapped env. Names: joint_pos, joint_vel, ee_pos, ee_vel
    #: (and ee_quat where registered).
    proprio: dict[str, ProprioFn] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: how ``pixels`` observations film the env (None: a free camera on the first body)
    camera: CameraSpec | None = None
    observation: ObservationConfig = field(default_factory=ObservationConfig)

    def with_observation(self, observation: ObservationConfig) -> EnvSpec:
        """This spec with ``observation`` (what ``make`` wraps the env into)."""
        return replace(self, observation=observation)

    def make(self, **kwargs: Any) -> gym.Env:
        obs = self.observation
        if obs.pixels:
            ensure_gl_backend()
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
        if obs.action_repeat > 1:
            env = ActionRepeat(env, obs.action_repeat)
        if obs.pixels:
            env = PixelObservation(
                env, obs.size, obs.mode == "pixels+state", camera_spec(self, obs.camera)
            )
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
    """Build the env once (cached per id and observation) so a bad id, action space or an env
    that cannot render fails at config time (a pixel env renders one frame)."""
    key = f"{spec.id}|{spec.observation.model_dump_json()}"
    if key not in _checked:
        env = spec.make()
        if spec.observation.pixels:
            env.reset(seed=0)
        env.close()
        _checked.add(key)


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


# --- rendering ---------------------------------------------------------------------------------


def ensure_gl_backend() -> None:
    """``MUJOCO_GL=egl`` when neither it nor a display is set (headless Linux). MuJoCo picks its
    GL backend when it is first imported, so this runs when this module is imported too."""
    if os.environ.get("MUJOCO_GL") or os.environ.get("DISPLAY"):
        return
    if os.name == "posix" and os.uname().sysname != "Darwin":
        os.environ["MUJOCO_GL"] = "egl"


ensure_gl_backend()


def camera_spec(spec: EnvSpec, name: str | None) -> CameraSpec:
    """The camera of ``observation.camera`` (a model camera's name), else the entry's own."""
    if name is not None:
        return CameraSpec(name=name)
    return spec.camera or CameraSpec()


def _mujoco_parts(env: gym.Env, what: str) -> tuple[Any, Any]:
    u = env.unwrapped
    if not (hasattr(u, "model") and hasattr(u, "data") and hasattr(u.data, "qpos")):
        env_id = env.spec.id if env.spec else type(u).__name__
        raise EnvError(
            f"env '{env_id}' cannot give {what}: it is not a MuJoCo env (pixel "
            "observations use MuJoCo's renderer); use observation.mode: state"
        )
    return u.model, u.data


def kinematics(u: Any) -> Any:
    """A private ``MjData`` of the unwrapped MuJoCo env ``u`` holding its current qpos and qvel
    with positions, frames, centres of mass and cameras computed (mj_kinematics, mj_comPos,
    mj_camlight). The env's own ``data.xpos`` lags ``qpos`` by one substep after ``step``."""
    import mujoco

    d = getattr(u, "_initablate_kinematics", None)
    if d is None:
        d = mujoco.MjData(u.model)
        u._initablate_kinematics = d
    d.qpos[:] = u.data.qpos
    d.qvel[:] = u.data.qvel
    d.time = u.data.time
    mujoco.mj_kinematics(u.model, d)
    mujoco.mj_comPos(u.model, d)
    mujoco.mj_camlight(u.model, d)
    return d


class PixelObservation(gym.ObservationWrapper):
    """Replace a MuJoCo env's observation with a rendered uint8 image [3, size, size] (or, with
    ``with_state``, ``{"pixels": image, "state": the env's vector}``).

    Fast settings: no multisampling (``model.vis.quality.offsamples = 0``), no shadows,
    reflections or skybox. The frame shows the current qpos (rendered from :func:`kinematics`).
    """

    def __init__(self, env: gym.Env, size: int, with_state: bool, camera: CameraSpec):
        super().__init__(env)
        import mujoco

        model, _ = _mujoco_parts(env, "pixel observations")
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
        try:
            self.renderer = mujoco.Renderer(model, size, size)
        except Exception as err:
            backend = getattr(mujoco, "GLContext", type).__module__.rsplit(".", 1)[-1]
            raise EnvError(
                f"env '{env.spec.id if env.spec else env}' cannot render: MuJoCo's offscreen "
                f"renderer failed (MUJOCO_GL={os.environ.get('MUJOCO_GL', 'unset')}, backend "
                f"loaded: {backend}; MuJoCo fixes its backend when first imported, so set "
                f"MUJOCO_GL=egl before that on a machine without a display): "
                f"{type(err).__name__}: {err}"
            ) from err
        flags = self.renderer.scene.flags
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
        ):
            flags[flag] = 0
        self.camera = self._camera(model, camera)
        self.track = camera
        self.with_state = with_state
        image = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
        self.observation_space = (
            gym.spaces.Dict({"pixels": image, "state": env.observation_space})
            if with_state
            else image
        )

    @staticmethod
    def _camera(model: Any, cam: CameraSpec) -> Any:
        import mujoco

        if cam.name is not None:
            names = [model.camera(i).name for i in range(model.ncam)]
            if cam.name not in names:
                raise EnvError(
                    f"camera '{cam.name}' not in the model (its cameras: "
                    f"{', '.join(names) or 'none'})"
                )
            return names.index(cam.name)
        free = mujoco.MjvCamera()
        free.type = mujoco.mjtCamera.mjCAMERA_FREE
        free.distance, free.elevation, free.azimuth = cam.distance, cam.elevation, cam.azimuth
        return free

    def render_frame(self) -> np.ndarray:
        """The current frame, uint8 [3, size, size]."""
        u = self.env.unwrapped
        d = kinematics(u)
        if not isinstance(self.camera, int):
            track = self.track.body
            body = u.model.body(track).id if track else min(1, u.model.nbody - 1)
            self.camera.lookat[:] = d.xpos[body] + np.array([0.0, 0.0, self.track.height])
        self.renderer.update_scene(d, self.camera)
        return np.ascontiguousarray(self.renderer.render().transpose(2, 0, 1))

    def observation(self, observation: np.ndarray) -> Any:
        frame = self.render_frame()
        if self.with_state:
            return {"pixels": frame, "state": np.asarray(observation, np.float32)}
        return frame

    def close(self) -> None:
        self.renderer.close()
        super().close()


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``k`` times (fewer if the episode ends); the reward is their sum."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self.k = k

    def step(self, action: Any) -> tuple:
        total = 0.0
        for _ in range(self.k):
            obs, reward, term, trunc, info = self.env.step(action)
            total += float(reward)
            if term or trunc:
                break
        return obs, total, term, trunc, info


def stack_obs(observations: list[Any]) -> Any:
    """Stack a list of observations (arrays, or dicts of arrays) along a new first axis."""
    if isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


def set_obs(batch: Any, i: int, obs: Any) -> None:
    """``batch[i] = obs`` for a stacked batch of arrays or of dicts."""
    if isinstance(batch, dict):
        for k, v in obs.items():
            batch[k][i] = v
    else:
        batch[i] = obs


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


EndEffector = str | tuple[str, tuple[float, float, float]]


def mujoco_proprio(
    feet: tuple[EndEffector, ...],
    orientations: bool = False,
) -> dict[str, ProprioFn]:
    """Targets read from MuJoCo's state (see :func:`kinematics`):

    joint_pos  qpos, the root's pose included (Walker2d: root x, z, pitch, then the joints)
    joint_vel  qvel
    ee_pos     world position of each end-effector point: a body's frame origin (``"foot"``) or
               a point fixed in a body's frame (``("pole", (0, 0, 0.6))``)
    ee_vel     the world linear velocity of those same points (d ee_pos / dt, via the
               translational Jacobian: J(q) qvel)
    ee_quat    with ``orientations``: each end-effector body's world orientation as a unit
               quaternion (w, x, y, z) with w >= 0
    """
    points = [(f, (0.0, 0.0, 0.0)) if isinstance(f, str) else f for f in feet]

    def joint_pos(u) -> np.ndarray:
        return u.data.qpos.astype(np.float32).copy()

    def joint_vel(u) -> np.ndarray:
        return u.data.qvel.astype(np.float32).copy()

    def _point(u, d, body: str, offset) -> tuple[int, np.ndarray]:
        b = u.model.body(body).id
        return b, d.xpos[b] + d.xmat[b].reshape(3, 3) @ np.asarray(offset, np.float64)

    def ee_pos(u) -> np.ndarray:
        d = kinematics(u)
        return np.concatenate([_point(u, d, b, o)[1] for b, o in points]).astype(np.float32)

    def ee_vel(u) -> np.ndarray:
        import mujoco

        d = kinematics(u)
        jacp = np.zeros((3, u.model.nv))
        out = []
        for body, offset in points:
            b, p = _point(u, d, body, offset)
            mujoco.mj_jac(u.model, d, jacp, None, p, b)
            out.append(jacp @ d.qvel)
        return np.concatenate(out).astype(np.float32)

    def ee_quat(u) -> np.ndarray:
        d = kinematics(u)
        qs = [d.xquat[u.model.body(b).id] for b, _ in points]
        return np.concatenate([q if q[0] >= 0 else -q for q in qs]).astype(np.float32)

    out = {"joint_pos": joint_pos, "joint_vel": joint_vel, "ee_pos": ee_pos, "ee_vel": ee_vel}
    if orientations:
        out["ee_quat"] = ee_quat
    return out


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
    "swing-up pendulum, 1-D torque, 200-step episodes (no pixels: use InvertedPendulum-v5)",
)
register_env(
    EnvSpec(
        "Walker2d-v5",
        random_score=1.6,
        reference_score=4592.3,
        proprio=mujoco_proprio(feet=("foot", "foot_left"), orientations=True),
        camera=CameraSpec(name="track"),
    ),
    "MuJoCo planar biped, 6-D torques, 1000-step episodes; pixels from its torso-tracking camera",
)
register_env(
    EnvSpec(
        "InvertedPendulum-v5",
        random_score=5.0,
        reference_score=1000.0,
        proprio=mujoco_proprio(feet=(("pole", (0.001, 0.0, 0.6)),)),
        camera=CameraSpec(body="world", distance=1.6, elevation=0.0, azimuth=90.0, height=0.3),
    ),
    "MuJoCo cart-pole, balance from upright, 1-D force, ends when the pole tilts past 0.2 rad; "
    "pixels from a fixed camera on the rail's centre, close enough that the pole spans ~40% of "
    "the frame (the cart stays in view within +-0.65 m; a cart-following camera would hide the "
    "cart's position)",
)


# --- exact env snapshots for checkpoints -------------------------------------------------------


def snapshot(env: gym.Env) -> dict:
    """The state an env needs to continue exactly where it was (physics, time limit, RNG)."""
    u = env.unwrapped
    snap: dict[str, Any] = {"np_random": u.np_random.bit_generator.state}
    if hasattr(u, "data") and hasattr(u.data, "qpos"):  # MuJoCo
        snap["mujoco"] = {
            k: getattr(u.data, k).copy() for k in ("qpos", "qvel", "act", "qacc_warmstart")
        }
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


def step_env(
    env: Any,
    action: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    name: str,
    step: int | None = None,
) -> tuple:
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
