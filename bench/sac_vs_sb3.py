"""Our SAC against Stable-Baselines3's SAC, same hyper-parameters, one after the other in one run.

    nice python bench/sac_vs_sb3.py                       # 10k steps on Pendulum-v1, seed 0
    nice python bench/sac_vs_sb3.py --steps 5000 --seeds 0 1 --set sac.bf16=true  # AMX CPUs

Prints, per library: env steps per second of CPU time (``time.process_time``; on a shared
machine wall-clock rates mostly measure the neighbours, so wall-clock rates are shown too)
over the whole training run (acting, env stepping and one
update per step after ``learning_starts``), the milliseconds of one update measured alone on the
trained agents' buffers (interleaved, CPU time of this thread; ours also through autograd,
``sac.manual_grad=false``, to show what the hand-written backward pass saves, and in float32
when ``sac.bf16=true``), and the final
deterministic eval return on the same seeded eval envs (``agent.common.evaluation.evaluate``).
Then the ratios (ours / SB3; the target is >= 2x throughput at an equal or better return).

Settings shared by both: [256, 256] ReLU nets, batch 256, lr 1e-3 (rl-zoo3's Pendulum value),
gamma 0.99, tau 0.005, automatic entropy with initial alpha 1 and target -|A|, uniform random
actions for the first ``learning_starts`` steps (SB3's warm-up; ours via ``sac.warmup=uniform``),
one gradient step per env step, torch threads 1. SB3 runs on CPU. Both run under the same
allocator settings (``agent.common.allocator.keep_freed_memory``, as every trial does), and the
header says whether the CPU has native bf16 matmuls (for ``--set sac.bf16=true``).
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

from agent import build_config
from agent.common.allocator import keep_freed_memory
from agent.common.cpu import native_bf16
from agent.common.evaluation import evaluate
from agent.registry import agents
from sweeps.overrides import parse_or_exit


class SB3Policy:
    """Adapter so ``evaluate`` runs an SB3 SAC: deterministic squashed actions in [-1, 1]."""

    def __init__(self, model, env_spec):
        self.model, self.env_spec = model, env_spec

    def eval_state(self, n):
        return None

    @torch.inference_mode()
    def act(self, obs, state):
        return self.model.policy._predict(torch.as_tensor(obs), deterministic=True).numpy(), state


def ours(args, seed: int, extra: dict):
    cfg = build_config({"agent": "sac", "env": args.env, "seed": seed, "total_steps": args.steps,
                        "sac.lr": args.lr, "sac.batch_size": args.batch,
                        "sac.hidden": args.hidden, "sac.learning_starts": args.learning_starts,
                        "sac.warmup": "uniform", **extra})
    torch.manual_seed(seed)
    agent = agents.get("sac")(cfg)
    agent.initialise()
    rates = timed(lambda: agent.train(args.steps), args.steps)
    return agent, rates, agent.update


def sb3(args, seed: int):
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", args.env, learning_rate=args.lr, batch_size=args.batch,
                buffer_size=args.steps, learning_starts=args.learning_starts, tau=0.005,
                gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto_1.0",
                policy_kwargs={"net_arch": args.hidden}, seed=seed, device="cpu", verbose=0)
    rates = timed(lambda: model.learn(args.steps), args.steps)
    return model, rates, lambda: model.train(gradient_steps=1, batch_size=args.batch)


def autograd_update(agent) -> None:
    agent.c.manual_grad = False
    agent.update()
    agent.c.manual_grad = True


def float32_update(agent) -> None:
    agent.c.bf16 = False
    agent.update()
    agent.c.bf16 = True


def timed(fn, steps: int) -> tuple[float, float]:
    """(env steps per CPU second, env steps per wall-clock second) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def update_ms(updates: dict, reps: int = 6, n: int = 25) -> dict[str, float]:
    """Median CPU ms of one update per library, measured in interleaved blocks."""
    times: dict[str, list[float]] = {k: [] for k in updates}
    for _ in range(reps):
        for name, fn in updates.items():
            t0 = time.thread_time()
            for _ in range(n):
                fn()
            times[name].append((time.thread_time() - t0) / n * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def report(seed: int, name: str, rates: tuple[float, float], returns: np.ndarray) -> None:
    print(f"seed {seed} {name:4s}: {rates[0]:7.1f} env steps per CPU s ({rates[1]:7.1f} per wall "
          f"s), eval {returns.mean():8.1f} +- {returns.std():5.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra overrides for our SAC, e.g. sac.bf16=true")
    args = p.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    extra = parse_or_exit(p, args.set)
    print(f"SAC on {args.env}, {args.steps} env steps, batch {args.batch}, nets {args.hidden}, "
          f"lr {args.lr}, learning_starts {args.learning_starts}, extra {extra}; CPU bf16 "
          f"matmul flags: {native_bf16() or 'none'}", flush=True)
    for seed in args.seeds:
        agent, our_sps, our_update = ours(args, seed, extra)
        our_ret = evaluate(agent, args.eval_episodes, seed=10_000 + seed)
        report(seed, "ours", our_sps, our_ret)
        model, sb3_sps, sb3_update = sb3(args, seed)
        sb3_ret = evaluate(SB3Policy(model, agent.env_spec), args.eval_episodes,
                           seed=10_000 + seed)
        report(seed, "SB3", sb3_sps, sb3_ret)
        updates = {"ours": our_update, "sb3": sb3_update}
        if agent.manual:  # our update through autograd too (sac.manual_grad=false)
            updates["autograd"] = functools.partial(autograd_update, agent)
        if agent.c.bf16:  # and with float32 matmuls
            updates["float32"] = functools.partial(float32_update, agent)
        ms = update_ms(updates)
        print(f"seed {seed} one update: ours {ms['ours']:.2f} ms, SB3 {ms['sb3']:.2f} ms "
              f"(ratio {ms['sb3'] / ms['ours']:.2f}x)", flush=True)
        if "autograd" in ms:
            print(f"seed {seed} one update of ours through autograd: {ms['autograd']:.2f} ms "
                  f"(hand-written backward {ms['autograd'] / ms['ours']:.2f}x faster)",
                  flush=True)
        if "float32" in ms:
            print(f"seed {seed} one update of ours in float32: {ms['float32']:.2f} ms (bf16 "
                  f"matmuls {ms['float32'] / ms['ours']:.2f}x faster)", flush=True)
        print(f"seed {seed} RATIO env steps per CPU s ours/SB3 = {our_sps[0] / sb3_sps[0]:.2f}x "
              f"(wall clock {our_sps[1] / sb3_sps[1]:.2f}x); eval return ours "
              f"{our_ret.mean():.1f} vs SB3 {sb3_ret.mean():.1f}", flush=True)


if __name__ == "__main__":
    main()
