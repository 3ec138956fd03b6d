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
import functools

import numpy as np
import peer

from agent.common.allocator import keep_freed_memory


def settings(args) -> dict:
    """The shared hyper-parameters as our ``td3.*`` keys."""
    return {
        "td3.actor_lr": args.lr,
        "td3.critic_lr": args.lr,
        "td3.batch_size": args.batch,
        "td3.hidden": args.hidden,
        "td3.learning_starts": args.learning_starts,
        "td3.gamma": 0.99,
        "td3.tau": 0.005,
        "td3.policy_delay": 2,
        "td3.target_noise": 0.2,
        "td3.target_noise_clip": 0.5,
        "td3.exploration_noise": args.noise,
        "td3.warmup": "uniform",
    }


def ours(args, seed: int, extra: dict):
    agent, rates = peer.train_ours("td3", args.env, seed, args.steps, {**settings(args), **extra})
    return agent, rates, agent.update


def sb3(args, seed: int, env_spec):
    import gymnasium as gym
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    n_act = gym.make(args.env).action_space.shape[0]
    noise = NormalActionNoise(np.zeros(n_act), args.noise * np.ones(n_act))
    return peer.train_sb3(
        TD3,
        args,
        seed,
        env_spec,
        policy_delay=2,
        target_policy_noise=0.2,
        target_noise_clip=0.5,
        action_noise=noise,
    )


def options(p: argparse.ArgumentParser) -> None:
    """The off-policy settings and TD3's exploration noise."""
    peer.off_policy_options(p)
    p.add_argument("--noise", type=float, default=0.1, help="exploration noise std in [-1, 1]")


def main() -> None:
    set_help = "extra overrides for our TD3, e.g. init.scheme=orthogonal"
    args, extra = peer.parse_args(__doc__, steps=10_000, options=options, set_help=set_help)
    keep_freed_memory()
    print(
        f"TD3 on {args.env}, {args.steps} env steps, batch {args.batch}, nets {args.hidden}, "
        f"lr {args.lr}, learning_starts {args.learning_starts}, exploration noise "
        f"{args.noise}, extra {extra}",
        flush=True,
    )
    ratios, returns = [], []
    for seed in args.seeds:
        _, our, their = peer.train_both(
            seed,
            args.eval_episodes,
            functools.partial(ours, args, seed, extra),
            functools.partial(sb3, args, seed),
        )
        updates = {"ours": our.update, "sb3": their.update}
        ms = peer.update_ms(updates, n=26)  # even: same actor-step share
        peer.report_updates(seed, ms)
        ratios.append(peer.report_ratio(seed, our, their))
        returns.append((our.returns.mean(), their.returns.mean()))
    if len(args.seeds) > 1:
        ours_mean, sb3_mean = np.mean(returns, 0)
        print(
            f"all seeds: RATIO {' / '.join(f'{r:.2f}x' for r in ratios)} (mean "
            f"{np.mean(ratios):.2f}x); mean eval return ours {ours_mean:.1f} vs SB3 "
            f"{sb3_mean:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
