"""Our PPO against Stable-Baselines3's PPO, same hyper-parameters, one after the other in one run.

    nice python bench/ppo_vs_sb3.py                   # 100k steps on Pendulum-v1, seed 0
    nice python bench/ppo_vs_sb3.py --steps 200000 --seeds 0 1
    nice python bench/ppo_vs_sb3.py --steps 200000 --seeds 0 1 2 --set init.scheme=orthogonal
    nice python bench/ppo_vs_sb3.py --env Walker2d-v5 --steps 200000 --seeds 0 1 2 \
        --set init.scheme=orthogonal

Prints, per library: env steps per second of CPU time (``time.process_time``; on a shared
machine wall-clock rates mostly measure the neighbours, so wall-clock rates are shown too)
over the whole training run (rollouts and updates), the
milliseconds of one rollout's update phase alone (``epochs`` passes of minibatch steps), and the
final deterministic eval return on the same seeded eval envs (``agent.common.evaluation``).
Then the ratios (ours / SB3; the target is >= 1x throughput at an equal or better return).

Settings shared by both: our PPO preset for the env (``agent/presets/ppo.yaml``, rl-zoo3's tuned
hyper-parameters). Pendulum-v1 (rl-zoo3's Pendulum PPO without gSDE): 4 envs, 1024 steps per env
per rollout, minibatch 64, 10 epochs, lr 1e-3, gamma 0.9, GAE lambda 0.95, clip 0.2, no entropy
bonus. Walker2d-v5 (rl-zoo3's MuJoCo Walker2d PPO): 1 env, 512 steps per rollout, minibatch 32,
20 epochs, lr 5.05e-5, gamma 0.99, GAE lambda 0.95, clip 0.1, ent_coef 5.85e-4, vf_coef 0.87, max
grad norm 1. Both: [64, 64] tanh nets with a state-independent log-std starting at 0, observation
and reward normalisation (SB3: VecNormalize).
Inits differ: SB3 uses orthogonal init (gain sqrt 2 hidden, 0.01 policy mean, 1 value), ours
the trial's init spec (default fanin + small outputs; ``--set init.scheme=orthogonal`` for
orthogonal hidden layers with small outputs, the closest to SB3's).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from agent import build_config
from agent.common.evaluation import evaluate
from agent.ppo import PPOConfig
from agent.presets import lookup
from agent.registry import agents
from sweeps.overrides import parse_or_exit


class SB3Policy:
    """Adapter so ``evaluate`` runs an SB3 PPO: normalised obs in, mean action in [-1, 1] out."""

    def __init__(self, model, vec_normalize, env_spec):
        self.model, self.norm, self.env_spec = model, vec_normalize, env_spec
        space = model.action_space
        self.low, self.high = space.low, space.high

    def eval_state(self, n):
        return None

    @torch.inference_mode()
    def act(self, obs, state):
        o = torch.as_tensor(self.norm.normalize_obs(obs), dtype=torch.float32)
        a = np.clip(self.model.policy._predict(o, deterministic=True).numpy(), self.low, self.high)
        return 2.0 * (a - self.low) / (self.high - self.low) - 1.0, state


def ours(args, seed: int, extra: dict):
    cfg = build_config({"agent": "ppo", "env": args.env, "seed": seed,
                        "total_steps": args.steps, **settings(args.env), **extra})
    torch.manual_seed(seed)
    agent = agents.get("ppo")(cfg)
    agent.initialise()
    rates = timed(lambda: agent.train(args.steps), args.steps)

    def update():  # the update phase alone, on the last full rollout
        agent.update()

    return agent, rates, update


def sb3(args, seed: int):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    c = {**PPOConfig().model_dump(),
         **{k.removeprefix("ppo."): v for k, v in settings(args.env).items()}}
    venv = VecNormalize(make_vec_env(args.env, n_envs=c["num_envs"], seed=seed),
                        norm_obs=c["normalize_obs"], norm_reward=c["normalize_reward"],
                        gamma=c["gamma"])
    model = PPO("MlpPolicy", venv, learning_rate=c["lr"], n_steps=c["n_steps"],
                batch_size=c["minibatch_size"], n_epochs=c["epochs"], gamma=c["gamma"],
                gae_lambda=c["gae_lambda"], clip_range=c["clip"], ent_coef=c["ent_coef"],
                vf_coef=c["vf_coef"], max_grad_norm=c["max_grad_norm"], use_sde=False,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]},
                               "activation_fn": torch.nn.Tanh, "log_std_init": 0.0},
                seed=seed, device="cpu", verbose=0)
    rates = timed(lambda: model.learn(args.steps), args.steps)
    venv.training = False
    return model, venv, rates, model.train


def settings(env: str) -> dict:
    """Our PPO preset for ``env`` (the settings both libraries get)."""
    found = lookup("ppo", env)
    if not found:
        raise SystemExit(f"no PPO preset for {env} in agent/presets/ppo.yaml")
    return found


def timed(fn, steps: int) -> tuple[float, float]:
    """(env steps per CPU second, env steps per wall-clock second) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def report(seed: int, name: str, rates: tuple[float, float], returns: np.ndarray) -> None:
    print(f"seed {seed} {name:4s}: {rates[0]:7.1f} env steps per CPU s ({rates[1]:7.1f} per wall "
          f"s), eval {returns.mean():8.1f} +- {returns.std():5.1f}", flush=True)


def update_ms(updates: dict, reps: int = 3) -> dict[str, float]:
    """Median CPU ms of one rollout's update phase per library, interleaved."""
    times: dict[str, list[float]] = {k: [] for k in updates}
    for _ in range(reps):
        for name, fn in updates.items():
            t0 = time.thread_time()
            fn()
            times[name].append((time.thread_time() - t0) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra overrides for our PPO, e.g. init.scheme=orthogonal")
    args = p.parse_args()
    torch.set_num_threads(1)
    extra = parse_or_exit(p, args.set)
    print(f"PPO on {args.env}, {args.steps} env steps, settings {settings(args.env)}, "
          f"extra {extra}", flush=True)
    for seed in args.seeds:
        agent, our_sps, our_update = ours(args, seed, extra)
        our_ret = evaluate(agent, args.eval_episodes, seed=10_000 + seed)
        report(seed, "ours", our_sps, our_ret)
        model, venv, sb3_sps, sb3_update = sb3(args, seed)
        sb3_ret = evaluate(SB3Policy(model, venv, agent.env_spec), args.eval_episodes,
                           seed=10_000 + seed)
        report(seed, "SB3", sb3_sps, sb3_ret)
        ms = update_ms({"ours": our_update, "sb3": sb3_update})
        print(f"seed {seed} one update phase: ours {ms['ours']:.0f} "
              f"ms, SB3 {ms['sb3']:.0f} ms (ratio {ms['sb3'] / ms['ours']:.2f}x)", flush=True)
        print(f"seed {seed} RATIO env steps per CPU s ours/SB3 = {our_sps[0] / sb3_sps[0]:.2f}x "
              f"(wall clock {our_sps[1] / sb3_sps[1]:.2f}x); eval return ours "
              f"{our_ret.mean():.1f} vs SB3 {sb3_ret.mean():.1f}", flush=True)


if __name__ == "__main__":
    main()
