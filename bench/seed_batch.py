"""Seed-batched SAC (K seeds as one stacked model) against K separate plain SAC runs.

    nice python bench/seed_batch.py                          # K = 1 2 5 10, two network sizes
    nice python bench/seed_batch.py --ks 5 --sizes 256x256 --steps 300
    nice python bench/seed_batch.py --layers              # stacked layers vs torch.func.vmap

For each network size and K, one process times, interleaved, a plain SAC agent and a
seed-batched agent of K seeds, both past ``learning_starts`` (so every env step is an action, an
env step, a replay sample and one gradient update per seed; evaluations are not included).

Throughput is env steps per second summed over seeds, from CPU time of this single-threaded
process (``time.process_time``; on a shared machine wall-clock rates mostly measure the
neighbours, so wall-clock rates are printed too). K separate runs on the 2 cores run 2 at a time,
each at the plain rate, so their total is 2 x plain; K seeds batched run as 2 batched trials at
a time, so their total is 2 x K x batched. The ratio batched / separate is the speed-up of
running an ablation grid's seeds batched, whatever the number of cores.

``--layers`` times the two ways to batch seeds on the twin-Q critic (forward + backward on a
replay batch, and a forward on one state as when acting): stacked ``EnsembleLinear`` layers
(one ``baddbmm`` per layer; what ``agent.common.seed_batch`` uses) against ``torch.func``
(``functional_call`` + ``vmap`` over the stacked parameters of K plain critics), with K
separate critics as the reference.
"""

from __future__ import annotations

import argparse
import time

import torch

from agent import build_config
from agent.base import seed_everything
from agent.registry import agents
from agent.sac import SeedBatchedSAC


def make(k: int | None, hidden: list[int], batch: int, steps: int):
    """A plain SAC agent (``k=None``) or a seed-batched one of seeds 0..k-1 (k=1 included)."""
    seeds = {} if k is None else {"seeds": list(range(k))}
    cfg = build_config(
        {
            "agent": "sac",
            "env": "Pendulum-v1",
            "seed": 0,
            **seeds,
            "total_steps": 10**7,
            "sac.hidden": hidden,
            "sac.batch_size": batch,
            "sac.learning_starts": batch,
            "sac.lr": 1e-3,
        }
    )
    if k is None:
        seed_everything(0)
        agent = agents.get("sac")(cfg)
    else:
        agent = SeedBatchedSAC(cfg)
    agent.initialise()
    agent.train(batch + steps)  # warm-up: past learning_starts, caches and allocator warm
    return agent


def timed(agent, steps: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``steps`` env steps (each seed's)."""
    c0, w0 = time.process_time(), time.perf_counter()
    agent.train(agent.env_steps + steps)
    return time.process_time() - c0, time.perf_counter() - w0


def bench_layers(k: int, hidden: list[int], batch: int, reps: int = 200) -> str:
    """Milliseconds (CPU) of stacked layers, torch.func vmap and K separate twin-Q critics."""
    from torch.func import functional_call, stack_module_state, vmap

    from agent.common.networks import mlp
    from agent.common.seed_batch import seed_stack

    d = 4  # Pendulum: 3 obs + 1 action
    members = [mlp(d, hidden, 1, out_role="q", ensemble=2) for _ in range(k)]
    stacked = seed_stack(members[0], k)
    params, buffers = stack_module_state(members)
    template = members[0]  # the layout; vmap supplies each member's parameters

    def one(p, b, x):
        return functional_call(template, (p, b), (x,))

    vmapped = vmap(one)
    out = []
    for b in (batch, 1):
        xs = torch.randn(k * 2, b, d)
        xv = xs.view(k, 2, b, d)
        grad = b > 1  # a replay batch: forward + backward; one state: forward only
        cases = {
            "stacked": lambda xs=xs: stacked(xs),
            "vmap": lambda xv=xv: vmapped(params, buffers, xv),
            "separate": lambda xv=xv: [m(xv[i]) for i, m in enumerate(members)],
        }
        for name, fn in cases.items():

            def step(fn=fn, grad=grad):
                y = fn()
                if grad:
                    sum(t.sum() for t in (y if isinstance(y, list) else [y])).backward()

            with torch.set_grad_enabled(b > 1):
                for _ in range(10):
                    step()
                c0 = time.process_time()
                for _ in range(reps):
                    step()
            out.append(f"{name} {(time.process_time() - c0) / reps * 1e3:.3f}")
    half = len(out) // 2
    return (
        f"fwd+bwd B={batch}: "
        + ", ".join(out[:half])
        + " ms | act B=1: "
        + ", ".join(out[half:])
        + " ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10])
    p.add_argument(
        "--sizes",
        nargs="+",
        default=["64x64", "256x256"],
        help="hidden sizes, e.g. 64x64 (batch size: --batch)",
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=200, help="env steps per timed segment")
    p.add_argument("--reps", type=int, default=3, help="interleaved segments per agent")
    p.add_argument("--layers", action="store_true", help="stacked layers vs torch.func vmap")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.layers:
        for size in args.sizes:
            hidden = [int(h) for h in size.split("x")]
            for k in args.ks:
                print(
                    f"twin-Q critic {size}, K={k}: {bench_layers(k, hidden, args.batch)}",
                    flush=True,
                )
        return
    print(
        f"SAC on Pendulum-v1, batch {args.batch}, 1 update per env step, torch threads 1; "
        f"{args.reps} x {args.steps} timed env steps per agent, interleaved\n"
    )
    header = (
        f"{'hidden':>9} {'K':>3} {'plain st/s':>11} {'batched st/s':>13} "
        f"{'sum/seeds':>10} {'ratio cpu':>10} {'ratio wall':>11}"
    )
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        hidden = [int(h) for h in size.split("x")]
        for k in args.ks:
            plain = make(None, hidden, args.batch, args.steps)
            batched = make(k, hidden, args.batch, args.steps)
            cpu = {"plain": 0.0, "batched": 0.0}
            wall = {"plain": 0.0, "batched": 0.0}
            for _ in range(args.reps):
                for name, agent in (("plain", plain), ("batched", batched)):
                    c, w = timed(agent, args.steps)
                    cpu[name] += c
                    wall[name] += w
            n = args.reps * args.steps
            plain_rate = n / cpu["plain"]  # one seed's steps per CPU second
            batched_rate = n / cpu["batched"]  # each seed's steps per CPU second
            total = k * batched_rate  # summed over the K seeds
            ratio_wall = (k * n / wall["batched"]) / (n / wall["plain"])
            print(
                f"{size:>9} {k:>3} {plain_rate:11.0f} {batched_rate:13.0f} {total:10.0f} "
                f"{total / plain_rate:9.2f}x {ratio_wall:10.2f}x",
                flush=True,
            )
    print(
        "\nplain st/s: env steps per CPU second of one plain run (K separate runs: K x the "
        "time); batched st/s: per seed; sum/seeds: K x batched;\nratio = batched trial's "
        "summed throughput / K separate plain runs' (cpu: CPU time, wall: wall clock)"
    )


if __name__ == "__main__":
    main()
