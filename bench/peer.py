"""Plumbing shared by the "ours vs Stable-Baselines3" benches (sac_vs_sb3, td3_vs_sb3,
ppo_vs_sb3): their common options, training with CPU/wall-clock rates, the SB3 policy adapter
for ``evaluate``, interleaved update timing and the printed per-seed lines and ratios.

The benches import it as a sibling (``bench/`` is on ``sys.path`` when one runs as a script).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agent import build_config
from agent.common.evaluation import evaluate
from agent.registry import agents
from sweeps.overrides import parse_or_exit

#: a seed's eval envs are seeded with EVAL_SEED + seed, the same for both libraries
EVAL_SEED = 10_000


class SB3Policy:
    """Adapter so ``evaluate`` runs an SB3 model: its deterministic actions, in [-1, 1]."""

    def __init__(self, model, env_spec):
        self.model, self.env_spec = model, env_spec

    def eval_state(self, n):
        return None

    @torch.inference_mode()
    def act(self, obs, state):
        return self.model.policy._predict(torch.as_tensor(obs), deterministic=True).numpy(), state


@dataclass
class Side:
    """One library's trained run: (CPU, wall-clock) env steps per second, its update call and
    its eval returns."""

    rates: tuple[float, float]
    update: Callable[[], Any]
    returns: np.ndarray


def parse_args(
    doc: str,
    *,
    steps: int,
    set_help: str,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, dict]:
    """The bench's arguments and its ``--set`` overrides; torch runs on one thread.

    Every bench has ``--env --steps --seeds``, then its own ``options(parser)`` if any, then
    ``--eval-episodes --set``.
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    if options is not None:
        options(p)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help=set_help)
    args = p.parse_args()
    torch.set_num_threads(1)
    return args, parse_or_exit(p, args.set)


def off_policy_options(p: argparse.ArgumentParser) -> None:
    """The settings SAC and TD3 pass to both libraries."""
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    p.add_argument("--learning-starts", type=int, default=1000)


def timed(fn: Callable[[], Any], steps: int) -> tuple[float, float]:
    """(env steps per CPU second, env steps per wall-clock second) of ``fn()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def train_ours(name: str, env: str, seed: int, steps: int, overrides: dict):
    """Our agent ``name`` trained for ``steps`` env steps: (agent, rates from :func:`timed`)."""
    cfg = build_config({"agent": name, "env": env, "seed": seed, "total_steps": steps, **overrides})
    torch.manual_seed(seed)
    agent = agents.get(name)(cfg)
    agent.initialise()
    return agent, timed(lambda: agent.train(steps), steps)


def train_sb3(cls, args: argparse.Namespace, seed: int, env_spec, **kwargs: Any):
    """SB3's off-policy ``cls`` (SAC, TD3) with the settings both libraries share (the
    :func:`off_policy_options`, tau 0.005, gamma 0.99, one gradient step per env step, CPU) and
    its own ``kwargs``, trained for ``args.steps``: (its :class:`SB3Policy`, rates from
    :func:`timed`, one update: a gradient step on a batch)."""
    model = cls(
        "MlpPolicy",
        args.env,
        learning_rate=args.lr,
        batch_size=args.batch,
        buffer_size=args.steps,
        learning_starts=args.learning_starts,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        **kwargs,
        policy_kwargs={"net_arch": args.hidden},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    rates = timed(lambda: model.learn(args.steps), args.steps)
    return (
        SB3Policy(model, env_spec),
        rates,
        lambda: model.train(gradient_steps=1, batch_size=args.batch),
    )


def train_both(seed: int, episodes: int, ours: Callable, sb3: Callable) -> tuple[Any, Side, Side]:
    """Train, evaluate and report ours, then SB3, for one seed: (our agent, ours, SB3).

    ``ours()`` -> (agent, rates, update); ``sb3(env_spec)`` -> (policy for ``evaluate``, rates,
    update). Both are evaluated for ``episodes`` episodes on the same seeded eval envs.
    """
    agent, rates, update = ours()
    our_side = Side(rates, update, evaluate(agent, episodes, seed=EVAL_SEED + seed))
    report(seed, "ours", our_side.rates, our_side.returns)
    policy, rates, update = sb3(agent.env_spec)
    sb3_side = Side(rates, update, evaluate(policy, episodes, seed=EVAL_SEED + seed))
    report(seed, "SB3", sb3_side.rates, sb3_side.returns)
    return agent, our_side, sb3_side


def update_ms(updates: dict, reps: int = 6, n: int = 25) -> dict[str, float]:
    """Median CPU ms of one update per library, measured in interleaved blocks of ``n``."""
    times: dict[str, list[float]] = {k: [] for k in updates}
    for _ in range(reps):
        for name, fn in updates.items():
            t0 = time.thread_time()
            for _ in range(n):
                fn()
            times[name].append((time.thread_time() - t0) / n * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def report(seed: int, name: str, rates: tuple[float, float], returns: np.ndarray) -> None:
    """One library's line: its rates and eval return (mean +- std over episodes)."""
    print(
        f"seed {seed} {name:4s}: {rates[0]:7.1f} env steps per CPU s ({rates[1]:7.1f} per wall "
        f"s), eval {returns.mean():8.1f} +- {returns.std():5.1f}",
        flush=True,
    )


def report_ratio(seed: int, ours: Side, sb3: Side) -> float:
    """The seed's RATIO line (throughput ours / SB3 and both returns); the CPU-time ratio."""
    ratio = ours.rates[0] / sb3.rates[0]
    print(
        f"seed {seed} RATIO env steps per CPU s ours/SB3 = {ratio:.2f}x "
        f"(wall clock {ours.rates[1] / sb3.rates[1]:.2f}x); eval return ours "
        f"{ours.returns.mean():.1f} vs SB3 {sb3.returns.mean():.1f}",
        flush=True,
    )
    return ratio


def report_updates(seed: int, ms: dict[str, float], what: str = "one update", digits: int = 2):
    """The seed's update-timing line: ours and SB3 in ms (``digits`` decimals), SB3 / ours."""
    print(
        f"seed {seed} {what}: ours {ms['ours']:.{digits}f} ms, SB3 {ms['sb3']:.{digits}f} ms "
        f"(ratio {ms['sb3'] / ms['ours']:.2f}x)",
        flush=True,
    )
