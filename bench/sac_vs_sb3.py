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

import functools

import peer

from agent.common.allocator import keep_freed_memory
from agent.common.cpu import native_bf16


def ours(args, seed: int, extra: dict):
    agent, rates = peer.train_ours(
        "sac",
        args.env,
        seed,
        args.steps,
        {
            "sac.lr": args.lr,
            "sac.batch_size": args.batch,
            "sac.hidden": args.hidden,
            "sac.learning_starts": args.learning_starts,
            "sac.warmup": "uniform",
            **extra,
        },
    )
    return agent, rates, agent.update


def sb3(args, seed: int, env_spec):
    from stable_baselines3 import SAC

    return peer.train_sb3(SAC, args, seed, env_spec, ent_coef="auto_1.0")


def autograd_update(agent) -> None:
    agent.c.manual_grad = False
    agent.update()
    agent.c.manual_grad = True


def float32_update(agent) -> None:
    agent.c.bf16 = False
    agent.update()
    agent.c.bf16 = True


def main() -> None:
    args, extra = peer.parse_args(
        __doc__,
        steps=10_000,
        options=peer.off_policy_options,
        set_help="extra overrides for our SAC, e.g. sac.bf16=true",
    )
    keep_freed_memory()
    print(
        f"SAC on {args.env}, {args.steps} env steps, batch {args.batch}, nets {args.hidden}, "
        f"lr {args.lr}, learning_starts {args.learning_starts}, extra {extra}; CPU bf16 "
        f"matmul flags: {native_bf16() or 'none'}",
        flush=True,
    )
    for seed in args.seeds:
        agent, our, their = peer.train_both(
            seed,
            args.eval_episodes,
            functools.partial(ours, args, seed, extra),
            functools.partial(sb3, args, seed),
        )
        updates = {"ours": our.update, "sb3": their.update}
        if agent.manual:  # our update through autograd too (sac.manual_grad=false)
            updates["autograd"] = functools.partial(autograd_update, agent)
        if agent.c.bf16:  # and with float32 matmuls
            updates["float32"] = functools.partial(float32_update, agent)
        ms = peer.update_ms(updates)
        peer.report_updates(seed, ms)
        if "autograd" in ms:
            print(
                f"seed {seed} one update of ours through autograd: {ms['autograd']:.2f} ms "
                f"(hand-written backward {ms['autograd'] / ms['ours']:.2f}x faster)",
                flush=True,
            )
        if "float32" in ms:
            print(
                f"seed {seed} one update of ours in float32: {ms['float32']:.2f} ms (bf16 "
                f"matmuls {ms['float32'] / ms['ours']:.2f}x faster)",
                flush=True,
            )
        peer.report_ratio(seed, our, their)


if __name__ == "__main__":
    main()
