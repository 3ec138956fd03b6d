"""Our TD3 against Stable-Baselines3's TD3, same hyper-parameters, one after the other in one run.

    nice python bench/td3_vs_sb3.py                                  # Pendulum-v1, 10k, seed 0
    nice python bench/td3_vs_sb3.py --seeds 0 1 2
    nice python bench/td3_vs_sb3.py --env Walker2d-v5 --steps 5000
    nice python bench/td3_vs_sb3.py --set init.scheme=pytorch_default init.scenario=no_small

Prints, per library and seed: env steps per second of CPU time (``time.process_time``; on a
shared machine wall-clock rates mostly measure the neighbours, so they are shown too) over the
whole training run (acting, env stepping, one critic update per step after ``learning_starts``
and an actor update every second one), the CPU milliseconds of one update call measured alone on
the trained agents' buffers (interleaved blocks; an update call is a critic step plus, every
``policy_delay``-th call, the actor step and the Polyak updates, in both libraries), and the final
deterministic eval return on the same seeded eval envs (``agent.common.evaluation.evaluate``).
Then the ratios ours / SB3.

Settings shared by both (TD3Config's defaults, the tuned Pendulum ones): [256, 256] ReLU nets,
batch 256, actor and critic lr 1e-3, gamma 0.99, tau 0.005, policy delay 2, target smoothing
noise 0.2 clipped at 0.5, Gaussian exploration noise 0.1 (in the [-1, 1] action box, where SB3
adds its action noise too), uniform random actions for the first ``learning_starts`` (1000)
steps, one gradient step per env step, torch threads 1, SB3 on CPU. The inits differ unless
asked: ours is ``init.scheme=fanin, init.scenario=small_outputs``; SB3 keeps torch's default
Linear init (``--set init.scheme=pytorch_default init.scenario=no_small`` gives ours the same).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

# the same timing and printing as the SAC bench (this directory is on sys.path when run)
from sac_vs_sb3 import report, update_ms

from agent import build_config
from agent.common.allocator import keep_freed_memory
from agent.common.evaluation import evaluate
from agent.registry import agents
from sweeps.overrides import parse_or_exit


class SB3Policy:
    """Adapter so ``evaluate`` runs an SB3 TD3: its deterministic actor's actions in [-1, 1]."""

    def __init__(self, model, env_spec):
        self.model, self.env_spec = model, env_spec

    def eval_state(self, n):
        return None

    @torch.inference_mode()
    def act(self, obs, state):
        return self.model.policy._predict(torch.as_tensor(obs), deterministic=True).numpy(), state


def settings(args) -> dict:
    """The shared hyper-parameters as our ``td3.*`` keys."""
    return {"td3.actor_lr": args.lr, "td3.critic_lr": args.lr, "td3.batch_size": args.batch,
            "td3.hidden": args.hidden, "td3.learning_starts": args.learning_starts,
            "td3.gamma": 0.99, "td3.tau": 0.005, "td3.policy_delay": 2,
            "td3.target_noise": 0.2, "td3.target_noise_clip": 0.5,
            "td3.exploration_noise": args.noise, "td3.warmup": "uniform"}


def ours(args, seed: int, extra: dict):
    cfg = build_config({"agent": "td3", "env": args.env, "seed": seed,
                        "total_steps": args.steps, **settings(args), **extra})
    torch.manual_seed(seed)
    agent = agents.get("td3")(cfg)
    agent.initialise()
    rates = timed(lambda: agent.train(args.steps), args.steps)
    return agent, rates, agent.update


def sb3(args, seed: int):
    import gymnasium as gym
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    n_act = gym.make(args.env).action_space.shape[0]
    noise = NormalActionNoise(np.zeros(n_act), args.noise * np.ones(n_act))
    model = TD3("MlpPolicy", args.env, learning_rate=args.lr, batch_size=args.batch,
                buffer_size=args.steps, learning_starts=args.learning_starts, tau=0.005,
                gamma=0.99, train_freq=1, gradient_steps=1, policy_delay=2,
                target_policy_noise=0.2, target_noise_clip=0.5, action_noise=noise,
                policy_kwargs={"net_arch": args.hidden}, seed=seed, device="cpu", verbose=0)
    rates = timed(lambda: model.learn(args.steps), args.steps)
    return model, rates, lambda: model.train(gradient_steps=1, batch_size=args.batch)


def timed(fn, steps: int) -> tuple[float, float]:
    """(env steps per CPU second, env steps per wall-clock second) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--noise", type=float, default=0.1, help="exploration noise std in [-1, 1]")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra overrides for our TD3, e.g. init.scheme=orthogonal")
    args = p.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    extra = parse_or_exit(p, args.set)
    print(f"TD3 on {args.env}, {args.steps} env steps, batch {args.batch}, nets {args.hidden}, "
          f"lr {args.lr}, learning_starts {args.learning_starts}, exploration noise "
          f"{args.noise}, extra {extra}", flush=True)
    ratios, returns = [], []
    for seed in args.seeds:
        agent, our_sps, our_update = ours(args, seed, extra)
        our_ret = evaluate(agent, args.eval_episodes, seed=10_000 + seed)
        report(seed, "ours", our_sps, our_ret)
        model, sb3_sps, sb3_update = sb3(args, seed)
        sb3_ret = evaluate(SB3Policy(model, agent.env_spec), args.eval_episodes,
                           seed=10_000 + seed)
        report(seed, "SB3", sb3_sps, sb3_ret)
        ms = update_ms({"ours": our_update, "sb3": sb3_update}, n=26)  # even: same actor-step share
        print(f"seed {seed} one update: ours {ms['ours']:.2f} ms, SB3 {ms['sb3']:.2f} ms "
              f"(ratio {ms['sb3'] / ms['ours']:.2f}x)", flush=True)
        ratios.append(our_sps[0] / sb3_sps[0])
        returns.append((our_ret.mean(), sb3_ret.mean()))
        print(f"seed {seed} RATIO env steps per CPU s ours/SB3 = {ratios[-1]:.2f}x "
              f"(wall clock {our_sps[1] / sb3_sps[1]:.2f}x); eval return ours "
              f"{our_ret.mean():.1f} vs SB3 {sb3_ret.mean():.1f}", flush=True)
    if len(args.seeds) > 1:
        ours_mean, sb3_mean = np.mean(returns, 0)
        print(f"all seeds: RATIO {' / '.join(f'{r:.2f}x' for r in ratios)} (mean "
              f"{np.mean(ratios):.2f}x); mean eval return ours {ours_mean:.1f} vs SB3 "
              f"{sb3_mean:.1f}", flush=True)


if __name__ == "__main__":
    main()
