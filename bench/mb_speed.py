"""Wall seconds per 1k env steps of the model-based agents vs our model-free SAC.

    nice python bench/mb_speed.py                    # Pendulum-v1, 2000 timed steps per agent
    nice python bench/mb_speed.py --steps 1000 --agents mb_ppo sac
    nice python bench/mb_speed.py --env Walker2d-v5 --steps 500 --agents mb_ppo sac --profile
    nice python bench/mb_speed.py --env Walker2d-v5 --steps 1000 --agents mb_ppo \
        --variant fast=mb_ppo,mb_ppo.model_updates=20 --versus mb_ppo     # before/after ratio

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

``--variant LABEL=AGENT,key=value,...`` adds a run of AGENT with those trial-config overrides
under LABEL (repeatable), and ``--versus LABEL`` picks the run the ratio columns divide by
(default ``sac``, else the first run): e.g. a cheaper setting measured against the shipped
one in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import time
from pathlib import Path

import torch
import yaml

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


def parse_variant(text: str) -> tuple[str, str, dict]:
    """``LABEL=AGENT,key=value,...`` -> (label, agent, overrides); values parsed as YAML."""
    label, sep, rest = text.partition("=")
    name, *pairs = rest.split(",")
    if not sep or not label or name not in agents:
        raise argparse.ArgumentTypeError(
            f"'{text}': expected LABEL=AGENT,key=value,... with AGENT one of {agents.names()}"
        )
    extra = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"'{pair}' in '{text}': expected key=value")
        extra[key.strip()] = yaml.safe_load(value)
    return label, name, extra


def build(name: str, total: int, env: str = "Pendulum-v1", extra: dict | None = None):
    extra = {**overrides(name, env), **(extra or {})}
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
    p.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="LABEL=AGENT,key=value,...",
        help="also time AGENT with these config overrides under LABEL (repeatable)",
    )
    p.add_argument(
        "--versus",
        default=None,
        help="run the ratio columns divide by (default: sac, else the first)",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    names = args.agents or ["sac", *[n for n in MODEL_BASED if n in agents]]
    plan = [(name, name, {}) for name in names] + args.variant
    labels = [label for label, _, _ in plan]
    args.versus = args.versus or ("sac" if "sac" in labels else labels[0])
    if args.versus not in labels:
        p.error(f"--versus {args.versus}: not among the runs {labels}")
    runs = {}
    for label, name, variant in plan:
        agent, warmup, extra = build(name, 100_000, args.env, variant)
        t0 = time.perf_counter()
        agent.train(warmup)
        print(
            f"{label}: warm-up {warmup} steps in {time.perf_counter() - t0:.1f}s, "
            f"overrides {extra or 'none'}",
            flush=True,
        )
        runs[label] = [agent, 0.0, 0, 0.0]
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
    vs = f"x {args.versus}"[:9]
    print(f"{'run':<10} {'wall s/1k':>10} {vs:>9} {'CPU s/1k':>10} {vs:>9}")
    for name in runs:
        ratios = [f"{d[name] / d[args.versus]:9.2f}" for d in (wall, cpu)]
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
