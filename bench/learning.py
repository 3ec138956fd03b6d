"""Learning bars on real envs, several seeds: prints each seed's final eval return and pass/fail.

    nice python bench/learning.py                 # both bars, 5 seeds each
    nice python bench/learning.py --agents sac --seeds 0 1

Bars (from the issue):
  SAC on Pendulum-v1 (sac.lr=1e-3): eval return >= -250 at 10k env steps, for >= 4 of 5 seeds
  PPO on Pendulum-v1 (agent.ppo.PENDULUM settings): eval return >= -300 at 200k env steps,
      for >= 4 of 5 seeds
  TD3 on Pendulum-v1 (TD3Config defaults): eval return >= -250 at 10k env steps, for >= 4 of 5
      seeds
Each run is a real ``run_trial`` (10 deterministic eval episodes on the separate seeded eval
envs), written under ``--out`` so the curves can be inspected afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from agent import build_config, run_trial
from agent.ppo import PENDULUM
from sweeps.overrides import parse_or_exit

BARS = {
    # agent: (overrides, total_steps, eval_every, bar, seeds needed out of 5)
    "sac": ({"sac.lr": 1e-3}, 10_000, 2_000, -250.0, 4),
    "ppo": (PENDULUM, 200_000, 20_000, -300.0, 4),
    "td3": ({}, 10_000, 2_000, -250.0, 4),  # agent.td3.TD3Config's defaults are the tuned ones
}


def run_bar(agent: str, seeds: list[int], out: Path, extra: dict) -> bool:
    overrides, steps, every, bar, needed = BARS[agent]
    finals = []
    print(
        f"{agent} on Pendulum-v1, {steps} env steps, bar {bar} for {needed}/5 seeds "
        f"(scaled to {len(seeds)} seeds), overrides {overrides | extra}",
        flush=True,
    )
    for seed in seeds:
        cfg = build_config(
            {
                "agent": agent,
                "env": "Pendulum-v1",
                "seed": seed,
                "total_steps": steps,
                "eval_every": every,
                "eval_episodes": 10,
                "checkpoint_every": 0,
                **overrides,
                **extra,
            }
        )
        t0 = time.perf_counter()
        rows = run_trial(cfg, out / f"{agent}_seed{seed}")
        final = rows[-1]["eval/return"]
        finals.append(final)
        curve = " ".join(f"{r['eval/return']:.0f}" for r in rows)
        print(
            f"  seed {seed}: final {final:8.1f}  {'pass' if final >= bar else 'FAIL'}  "
            f"({time.perf_counter() - t0:.0f}s; curve {curve})",
            flush=True,
        )
    passed = sum(f >= bar for f in finals)
    required = -(-needed * len(seeds) // 5)  # 4 of 5, scaled up for other seed counts
    ok = passed >= required
    print(
        f"{agent}: {passed}/{len(seeds)} seeds >= {bar} -> {'PASS' if ok else 'FAIL'}\n", flush=True
    )
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", nargs="+", default=list(BARS), choices=list(BARS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--out", type=Path, default=None, help="trial dirs (default: a temp dir)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra config overrides, e.g. sac.bf16=true",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    out = args.out or Path(tempfile.mkdtemp(prefix="learning_"))
    extra = parse_or_exit(p, args.set)
    results = {agent: run_bar(agent, args.seeds, out, extra) for agent in args.agents}
    print("summary:", ", ".join(f"{a} {'PASS' if ok else 'FAIL'}" for a, ok in results.items()))
    print(f"trial dirs: {out}")


if __name__ == "__main__":
    main()
