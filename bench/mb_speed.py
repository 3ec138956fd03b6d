"""Wall seconds per 1k env steps of the model-based agents vs our model-free SAC, Pendulum-v1.

    nice python bench/mb_speed.py                    # 2000 timed steps per agent
    nice python bench/mb_speed.py --steps 1000 --agents mb_ppo sac

Every agent runs with its shipped defaults plus its module's ``PENDULUM`` overrides, if it has
them (printed), on one torch thread. Each is first trained through its warm-up (SAC's
``learning_starts``, the model-based ``prefill``: not timed, no learning happens there), then
the timed steps run in chunks of ``--chunk`` steps, the agents taking turns, so a change in the
machine's load hits every agent alike. Printed: seconds per 1k env steps in the learning phase
(acting, model and behaviour updates; no evaluation) and the ratio to SAC measured in the same
run. The model-based agents registered at the time (``agent.registry.agents``) are all measured.
"""

from __future__ import annotations

import argparse
import importlib
import time

import torch

from agent import build_config
from agent.base import seed_everything
from agent.registry import agents

MODEL_BASED = ("mb_ppo", "dreamer", "mb_sac")


def overrides(name: str) -> dict:
    """The agent module's Pendulum settings (``PENDULUM``), or none."""
    module = importlib.import_module(agents.get(name).__module__)
    return dict(getattr(module, "PENDULUM", {}))


def build(name: str, total: int):
    extra = overrides(name)
    cfg = build_config({"agent": name, "env": "Pendulum-v1", "seed": 0, "total_steps": total,
                        **extra})
    seed_everything(0)
    agent = agents.get(name)(cfg)
    agent.initialise()
    section = cfg.section(name)
    warmup = getattr(section, "prefill", getattr(section, "learning_starts", 0))
    return agent, warmup, extra


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", nargs="+", default=None,
                   help="default: sac and every registered model-based agent")
    p.add_argument("--steps", type=int, default=2000, help="timed env steps per agent")
    p.add_argument("--chunk", type=int, default=500, help="steps per turn")
    args = p.parse_args()
    torch.set_num_threads(1)
    names = args.agents or ["sac", *[n for n in MODEL_BASED if n in agents]]
    runs = {}
    for name in names:
        agent, warmup, extra = build(name, 100_000)
        t0 = time.perf_counter()
        agent.train(warmup)
        print(f"{name}: warm-up {warmup} steps in {time.perf_counter() - t0:.1f}s, "
              f"overrides {extra or 'none'}", flush=True)
        runs[name] = [agent, 0.0, 0]
    while any(r[2] < args.steps for r in runs.values()):
        for _name, run in runs.items():
            agent, _, done = run
            if done >= args.steps:
                continue
            n = min(args.chunk, args.steps - done)
            t0 = time.perf_counter()
            agent.train(agent.env_steps + n)
            run[1] += time.perf_counter() - t0
            run[2] += n
    per_k = {name: 1000 * r[1] / r[2] for name, r in runs.items()}
    ref = per_k.get("sac")
    print(f"\nPendulum-v1, {args.steps} timed env steps each (learning phase), 1 thread")
    print(f"{'agent':<10} {'s / 1k steps':>13} {'x SAC':>7}")
    for name, s in per_k.items():
        ratio = f"{s / ref:7.2f}" if ref else "      -"
        print(f"{name:<10} {s:13.1f} {ratio}")


if __name__ == "__main__":
    main()
