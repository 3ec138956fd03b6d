"""Wall seconds per 1k env steps of the model-based agents vs our model-free SAC.

    nice python bench/mb_speed.py                    # Pendulum-v1, 2000 timed steps per agent
    nice python bench/mb_speed.py --steps 1000 --agents mb_ppo sac
    nice python bench/mb_speed.py --env Walker2d-v5 --steps 500 --agents mb_ppo sac --profile

On Pendulum-v1 every agent runs with its shipped defaults plus its module's ``PENDULUM``
overrides, if it has them (printed); on another env with its preset for that env
(agent/presets/), e.g. Dreamer's 200-unit RSSM on Walker2d-v5; one torch thread. Each is first
trained through its warm-up (SAC's
``learning_starts``, the model-based ``prefill``: not timed, no learning happens there), then
the timed steps run in chunks of ``--chunk`` steps, the agents taking turns, so a change in the
machine's load hits every agent alike. Printed: seconds per 1k env steps in the learning phase
(acting, model and behaviour updates; no evaluation) and the ratio to SAC measured in the same
run, wall-clock and CPU time (``time.process_time``, which a neighbour's load changes far less).
The model-based agents registered at the time (``agent.registry.agents``) are all measured.

``--profile`` runs the timed steps under cProfile and prints, per agent, where the time goes
among the project's own functions (world-model update, imagination, behaviour update, acting),
as shares of the agent's profiled time; cProfile inflates Python-heavy code, so read the shares
as a map, not as timings.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import time
from pathlib import Path

import torch

from agent import build_config
from agent.base import seed_everything
from agent.registry import agents

MODEL_BASED = ("mb_ppo", "dreamer", "mb_sac")


def overrides(name: str, env: str) -> dict:
    """The agent module's Pendulum settings (``PENDULUM``) on Pendulum-v1, else none (the env's
    preset applies)."""
    if env != "Pendulum-v1":
        return {}
    module = importlib.import_module(agents.get(name).__module__)
    return dict(getattr(module, "PENDULUM", {}))


def build(name: str, total: int, env: str = "Pendulum-v1"):
    extra = overrides(name, env)
    cfg = build_config({"agent": name, "env": env, "seed": 0, "total_steps": total, **extra})
    extra = extra or ({"preset": cfg.preset} if getattr(cfg, "preset", None) else {})
    seed_everything(0)
    agent = agents.get(name)(cfg)
    agent.initialise()
    section = cfg.section(name)
    warmup = getattr(section, "prefill", getattr(section, "learning_starts", 0))
    return agent, warmup, extra


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--agents",
        nargs="+",
        default=None,
        help="default: sac and every registered model-based agent",
    )
    p.add_argument("--steps", type=int, default=2000, help="timed env steps per agent")
    p.add_argument("--chunk", type=int, default=500, help="steps per turn")
    p.add_argument("--env", default="Pendulum-v1", help="env id (default Pendulum-v1)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile the timed steps; print each agent's top functions",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    names = args.agents or ["sac", *[n for n in MODEL_BASED if n in agents]]
    runs = {}
    for name in names:
        agent, warmup, extra = build(name, 100_000, args.env)
        t0 = time.perf_counter()
        agent.train(warmup)
        print(
            f"{name}: warm-up {warmup} steps in {time.perf_counter() - t0:.1f}s, "
            f"overrides {extra or 'none'}",
            flush=True,
        )
        runs[name] = [agent, 0.0, 0, 0.0]
    profiles = {name: cProfile.Profile() for name in runs} if args.profile else {}
    while any(r[2] < args.steps for r in runs.values()):
        for name, run in runs.items():
            agent, _, done, _ = run
            if done >= args.steps:
                continue
            n = min(args.chunk, args.steps - done)
            t0, c0 = time.perf_counter(), time.process_time()
            if profiles:
                profiles[name].runcall(agent.train, agent.env_steps + n)
            else:
                agent.train(agent.env_steps + n)
            run[1] += time.perf_counter() - t0
            run[3] += time.process_time() - c0
            run[2] += n
    wall = {name: 1000 * r[1] / r[2] for name, r in runs.items()}
    cpu = {name: 1000 * r[3] / r[2] for name, r in runs.items()}
    print(
        f"\n{args.env}, {args.steps} timed env steps each (learning phase), 1 thread"
        + (" (under cProfile)" if profiles else "")
    )
    print(f"{'agent':<10} {'wall s/1k':>10} {'x SAC':>7} {'CPU s/1k':>10} {'x SAC':>7}")
    for name in runs:
        ratios = [f"{d[name] / d['sac']:7.2f}" if "sac" in d else "      -" for d in (wall, cpu)]
        print(f"{name:<10} {wall[name]:10.1f} {ratios[0]} {cpu[name]:10.1f} {ratios[1]}")
    for name, prof in profiles.items():
        print(f"\n{name}: top functions of the project by cumulative time")
        print(top_functions(prof))


def top_functions(prof: cProfile.Profile, n: int = 10) -> str:
    """The ``n`` project functions (agent/ package) with the most cumulative time, as shares."""
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    root = Path(__file__).resolve().parents[1] / "agent"
    total = max((v[3] for v in stats.values()), default=0.0) or 1.0
    rows = sorted(
        (
            (v[3], v[1], f"{Path(k[0]).name}:{k[2]}")
            for k, v in stats.items()
            if Path(k[0]).resolve().is_relative_to(root)
        ),
        reverse=True,
    )
    return "\n".join(
        f"  {ct / total:6.1%}  {calls:8d} calls  {where}" for ct, calls, where in rows[:n]
    )


if __name__ == "__main__":
    main()
