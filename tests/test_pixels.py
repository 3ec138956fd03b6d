"""Pixel observations, body-state targets checked against the simulator, pixel world models and
model-based agents on pixels, and the device switch."""

import copy

import mujoco
import numpy as np
import pytest
import torch

from agent import build_config
from agent.base import resolve_device
from agent.common.envs import EnvError, ObservationConfig, get_env
from agent.common.probe import probe_scores
from agent.common.sequence_replay import SequenceReplay
from agent.config import ConfigError
from agent.registry import agents
from agent.trial import run_trial
from agent.world_model import WorldModel, WorldModelConfig, model_update
from init_schemes import apply_init


def pixel_env(env_id="Walker2d-v5", **obs):
    return get_env(env_id).with_observation(ObservationConfig(mode="pixels", **obs)).make()


# --- observations ----------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["Walker2d-v5", "InvertedPendulum-v5"])
def test_pixel_observations_are_uint8_frames_that_follow_the_state(env_id):
    env = pixel_env(env_id, size=32)
    assert env.observation_space.shape == (3, 32, 32) and env.observation_space.dtype == np.uint8
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 32, 32) and obs.dtype == np.uint8 and obs.std() > 5
    frames = [obs]
    for _ in range(5):
        obs, *_ = env.step(env.action_space.high)
        frames.append(obs)
    assert any(np.abs(f.astype(int) - frames[0]).sum() > 0 for f in frames[1:])  # it moves
    # the frame shows the current qpos: re-rendering the same state gives the same frame
    wrapper = env
    while not hasattr(wrapper, "render_frame"):
        wrapper = wrapper.env
    assert np.array_equal(wrapper.render_frame(), frames[-1])


def test_pixels_plus_state_and_action_repeat():
    spec = get_env("Walker2d-v5")
    both = spec.with_observation(ObservationConfig(mode="pixels+state", size=16, action_repeat=3))
    env, plain = both.make(), spec.make()
    obs, _ = env.reset(seed=3)
    ref, _ = plain.reset(seed=3)
    assert set(obs) == {"pixels", "state"} and obs["pixels"].shape == (3, 16, 16)
    np.testing.assert_allclose(obs["state"], ref, rtol=1e-6)
    a = np.full(6, 0.3)
    obs, reward, *_ = env.step(a)
    total = sum(plain.step(a)[1] for _ in range(3))  # three plain steps of the same action
    assert reward == pytest.approx(total)
    np.testing.assert_allclose(obs["state"], plain.unwrapped._get_obs(), rtol=1e-5)


def test_clear_errors_for_envs_that_cannot_render():
    with pytest.raises(EnvError, match=r"Pendulum-v1.*not a MuJoCo env"):
        get_env("Pendulum-v1").with_observation(ObservationConfig(mode="pixels")).make()
    with pytest.raises(EnvError, match=r"camera .nope. not in the model.*track"):
        pixel_env(camera="nope")
    with pytest.raises(ConfigError, match=r"observation: .*Pendulum-v1"):
        build_config({"agent": "world_model", "env": "Pendulum-v1", "observation.mode": "pixels"})
    with pytest.raises(ConfigError, match=r"observation\.mode: agent .sac. takes only state"):
        build_config({"agent": "sac", "env": "Walker2d-v5", "observation.mode": "pixels"})
    with pytest.raises(ConfigError, match=r"observation\.size"):
        build_config({"agent": "dreamer", "observation.size": 48})


def test_device_switch():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", ("cpu", "cuda")).type == expected
    assert resolve_device("auto", ("cpu",)).type == "cpu"  # a CPU-only agent stays on CPU
    with pytest.raises(ValueError, match="not supported by this agent"):
        resolve_device("cuda", ("cpu",))
    with pytest.raises(ConfigError, match="device: agent 'sac' runs on CPU only"):
        build_config({"agent": "sac", "device": "cuda"})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda", ("cpu", "cuda"))


# --- body-state targets ----------------------------------------------------------------------


def _rollout(env_id, steps, seed=0):
    """Random-action rollout; per step (after env.step): targets, a copy of the sim data, and
    the unwrapped env."""
    spec = get_env(env_id)
    env = spec.make()
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        _, _, _, trunc, _ = env.step(
            rng.uniform(-1, 1, env.action_space.shape) * env.action_space.high
        )
        out.append(
            (
                {k: f(env.unwrapped) for k, f in spec.proprio.items()},
                copy.copy(env.unwrapped.data),
                env.unwrapped,
            )
        )
        if trunc:  # past a termination the physics goes on, and so do the targets
            break
    return out


@pytest.mark.parametrize("env_id", ["Walker2d-v5", "InvertedPendulum-v5"])
def test_every_target_matches_the_simulators_own_arrays(env_id):
    for targets, data, u in _rollout(env_id, 30)[::3]:
        m = u.model
        mujoco.mj_forward(m, data)  # the copy's derived arrays, recomputed from its qpos, qvel
        np.testing.assert_allclose(targets["joint_pos"], data.qpos, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(targets["joint_vel"], data.qvel, rtol=1e-5, atol=1e-5)
        if env_id == "Walker2d-v5":  # the root's pose: x, z, pitch
            np.testing.assert_allclose(targets["joint_pos"][:3], data.qpos[:3], atol=1e-6)
            bodies = [m.body(b).id for b in ("foot", "foot_left")]
            offsets = [np.zeros(3)] * 2
        else:
            bodies, offsets = [m.body("pole").id], [np.array([0.001, 0.0, 0.6])]
        vel = np.zeros(6)
        for i, (b, off) in enumerate(zip(bodies, offsets, strict=True)):
            point = data.xpos[b] + data.xmat[b].reshape(3, 3) @ off
            np.testing.assert_allclose(targets["ee_pos"][3 * i : 3 * i + 3], point, atol=1e-5)
            # the velocity of that same point: MuJoCo's own at the body frame (XBODY), moved by
            # omega x offset
            mujoco.mj_objectVelocity(m, data, mujoco.mjtObj.mjOBJ_XBODY, b, vel, 0)
            expected = vel[3:] + np.cross(vel[:3], point - data.xpos[b])
            np.testing.assert_allclose(targets["ee_vel"][3 * i : 3 * i + 3], expected, atol=1e-4)
            if "ee_quat" in targets:
                q = data.xquat[b] * np.sign(data.xquat[b][0] or 1.0)
                np.testing.assert_allclose(targets["ee_quat"][4 * i : 4 * i + 4], q, atol=1e-5)


@pytest.mark.parametrize("env_id", ["Walker2d-v5", "InvertedPendulum-v5"])
def test_ee_vel_is_the_derivative_of_ee_pos_along_a_rollout(env_id):
    """Finite differences of ee_pos between env steps match the mean of ee_vel at both ends
    (the centre-of-mass velocity the targets used to give misses by up to metres per second)."""
    roll = _rollout(env_id, 200, seed=1)
    assert len(roll) == 200
    dt = roll[0][2].dt
    pos = np.stack([t["ee_pos"] for t, _, _ in roll])
    vel = np.stack([t["ee_vel"] for t, _, _ in roll])
    fd = (pos[1:] - pos[:-1]) / dt
    mid = 0.5 * (vel[1:] + vel[:-1])
    err = np.abs(fd - mid)
    scale = np.abs(fd).mean()
    assert np.median(err) < 0.02 * scale + 1e-3, (np.median(err), scale)
    # the old centre-of-mass velocity (mjOBJ_BODY) is measurably not d ee_pos / dt on Walker2d
    if env_id == "Walker2d-v5":
        com = []
        for _, data, u in roll:
            mujoco.mj_forward(u.model, data)
            v = np.zeros(6)
            parts = []
            for b in ("foot", "foot_left"):
                mujoco.mj_objectVelocity(
                    u.model, data, mujoco.mjtObj.mjOBJ_BODY, u.model.body(b).id, v, 0
                )
                parts.append(v[3:].copy())
            com.append(np.concatenate(parts))
        com = np.stack(com)
        com_err = np.abs(fd - 0.5 * (com[1:] + com[:-1]))
        assert np.median(com_err) > 3 * np.median(err)


# --- pixel world models and agents -------------------------------------------------------------

TINY = {
    "world_model.deter": 16,
    "world_model.stoch": 4,
    "world_model.hidden": 16,
    "world_model.depth": 4,
    "world_model.batch_size": 4,
    "world_model.seq_len": 8,
    "observation.size": 16,
    "eval_episodes": 1,
    "diag_states": 20,
    "eval_every": 60,
}


@pytest.mark.parametrize("mode", ["pixels", "pixels+state"])
def test_world_model_agent_on_pixels_runs_probes_and_resumes(tmp_path, mode):
    def config(total):
        return build_config(
            {
                "agent": "world_model",
                "env": "InvertedPendulum-v5",
                "total_steps": total,
                "observation.mode": mode,
                **TINY,
                "world_model.seq_len": 10,
                "eval_every": 50,
                "world_model.prefill": 30,
                "world_model.train_every": 10,
                "world_model.holdout_every": 2,
                "world_model.policy": "mixed",
                "world_model.eval_horizons": [1, 3],
                "world_model.probe_sequences": 4,
                "world_model.proprio": ["ee_vel"],
                "device": "cpu",
            }
        )

    rows = run_trial(config(100), tmp_path / "full")
    last = rows[-1]
    assert last["env_step"] == 100
    for key in (
        "model/loss_obs",
        "model/recon/obs",
        "model/open_loop/obs_h3",
        "model/open_loop/ee_vel_h1",
        "model/probe/post/joint_pos",
        "model/probe/prior_h3/ee_vel",
    ):
        assert np.isfinite(last[key]), key
    if mode == "pixels+state":
        assert np.isfinite(last["model/loss_state"]) and "model/open_loop/state_h1" in last
        return  # one resume check is enough
    record = (tmp_path / "full" / "init_record.json").read_text()
    assert '"role": "encoder"' in record and '"role": "decoder"' in record
    # the agent's own replay keeps uint8 frames
    cfg = config(100)
    agent = agents.get("world_model")(cfg)
    assert agent.replay.obs.dtype == np.uint8 and agent.replay.obs.shape[1:] == (3, 16, 16)
    # the data depend on the seed only: another arm (no targets) sees the same frames
    other = agents.get("world_model")(
        build_config(
            {**cfg.to_dict(), "world_model": {**cfg.to_dict()["world_model"], "proprio": []}}
        )
    )
    for a in (agent, other):
        a.initialise()
        a.train(50)
    n = agent.replay.size
    assert n == other.replay.size and np.array_equal(agent.replay.obs[:n], other.replay.obs[:n])
    # stopped at 50 and resumed: the same curve as the uninterrupted run
    run_trial(config(50), tmp_path / "half")
    resumed = run_trial(config(100), tmp_path / "half")
    drop = ("wall_time",)
    assert [
        {k: v for k, v in r.items() if k not in drop and not k.startswith("perf/")} for r in resumed
    ] == [{k: v for k, v in r.items() if k not in drop and not k.startswith("perf/")} for r in rows]


@pytest.mark.parametrize("agent_name", ["dreamer", "mb_ppo", "mb_sac"])
def test_model_based_agents_train_and_act_on_pixels(tmp_path, agent_name):
    cfg = build_config(
        {
            "agent": agent_name,
            "env": "InvertedPendulum-v5",
            "total_steps": 60,
            "observation.mode": "pixels",
            "observation.action_repeat": 2,
            **TINY,
            f"{agent_name}.prefill": 20,
            f"{agent_name}.explore_steps": 20,
            f"{agent_name}.model_updates": 2,
            "device": "auto",
        }
    )
    rows = run_trial(cfg, tmp_path)
    assert rows[-1]["env_step"] == 60 and rows[-1]["train/model_updates"] > 0
    assert np.isfinite(rows[-1]["loss/model"]) and np.isfinite(rows[-1]["eval/return"])


def _collect(spec, env, steps, seed, buf_seed):
    """Uniform-random Walker2d steps with every body quantity, into a fresh SequenceReplay."""
    dims = {q: int(np.asarray(f(env.unwrapped)).size) for q, f in spec.proprio.items()}
    buf = SequenceReplay(2 * steps, env.observation_space.shape, 6, dims, seed=buf_seed)
    rng = np.random.default_rng(seed)

    def body():
        return {q: f(env.unwrapped) for q, f in spec.proprio.items()}

    obs, _ = env.reset(seed=seed)
    buf.add(obs, np.zeros(6), 0.0, True, False, body())
    for _ in range(steps):
        a = rng.uniform(-1, 1, 6)
        obs, r, term, trunc, _ = env.step(a)
        buf.add(obs, a, r, False, term, body())
        if term or trunc:
            obs, _ = env.reset()
            buf.add(obs, np.zeros(6), 0.0, True, False, body())
    return buf


@pytest.mark.slow
def test_pixel_world_model_learns_its_body():
    """16x16 Walker2d frames, 500 updates: held-out reconstruction beats the best constant
    image (the per-pixel variance) and the probe reads the joints far above a constant
    predictor (R^2 0) and above the same model untrained. ``obs_weight`` 16 = (64 / 16)^2 gives
    the image term the weight it has at Dreamer's 64x64 (the loss sums over pixels)."""
    spec = get_env("Walker2d-v5").with_observation(ObservationConfig(mode="pixels", size=16))
    env = spec.make()
    train = _collect(spec, env, 2000, seed=0, buf_seed=0)
    fit = _collect(spec, env, 500, seed=1, buf_seed=1).sample(24, 16, rng=np.random.default_rng(1))
    score = _collect(spec, env, 500, seed=2, buf_seed=2).sample(
        24, 16, rng=np.random.default_rng(2)
    )
    cfg = WorldModelConfig(deter=32, stoch=8, hidden=32, depth=8, seq_len=16, obs_weight=16.0)
    model = WorldModel((3, 16, 16), 6, cfg, {})
    apply_init(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-5)
    before = probe_scores(model, fit, score, (1, 5))["model/probe/post/joint_pos"]
    for _ in range(500):
        model_update(model, opt, train.sample(8, 16), 100.0)
    errors = model.open_loop_errors(score, (1, 5))
    probe = probe_scores(model, fit, score, (1, 5))
    assert errors["model/recon/obs"] < 0.9 * errors["model/const/obs"], errors
    assert errors["model/open_loop/obs_h1"] < errors["model/const/obs"], errors
    assert probe["model/probe/post/joint_pos"] > 0.3, probe
    assert probe["model/probe/post/joint_pos"] > before + 0.1, (before, probe)
