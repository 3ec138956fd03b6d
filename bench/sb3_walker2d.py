"""Stable-Baselines3 SAC on Walker2d-v5 with our SAC's Walker2d settings: the peer curve for the
100k-step learning bar (``sweep train agent=sac env=Walker2d-v5 sac.lr=3e-4 total_steps=100000
eval_every=5000 eval_episodes=5 seed=S``, results/benchmarks/walker2d_sac_100k*).

    nohup python bench/sb3_walker2d.py --seed 0 --out results/benchmarks/sb3_walker2d_sac_100k &

Same settings as ours: [256, 256] ReLU nets, batch 256, lr 3e-4, gamma 0.99, tau 0.005, one
gradient step per env step after 1000 steps, automatic entropy from alpha 1 with target -|A|.
(SB3 warms up with uniform random actions; ours with its initial policy, the default here.)
Every ``--eval-every`` steps the deterministic policy is evaluated on the same seeded eval
envs as our trial of that seed (``evaluate``, seed 10000 + 1000 * seed); the curve goes to
``--out``/metrics.csv (env_step, wall_time, seed, eval/return, eval/episode_returns) as it
runs, written the way a trial writes it (sweeps/trialdir.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from peer import SB3Policy  # bench/ is on sys.path when run as a script

from agent.common.envs import get_env
from agent.common.evaluation import evaluate
from sweeps.trialdir import METRICS_FILE, atomic_write_csv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if (args.out / METRICS_FILE).exists():
        raise SystemExit(f"{args.out / METRICS_FILE} exists; pick another --out")
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    env_spec = get_env("Walker2d-v5")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []  # metrics.csv as a trial writes it (sweeps/trialdir.py)
    start = time.perf_counter()

    def log(model, step: int) -> None:
        ret = evaluate(
            SB3Policy(model, env_spec), args.eval_episodes, seed=10_000 + 1000 * args.seed
        )
        rows.append(
            {
                "env_step": step,
                "wall_time": round(time.perf_counter() - start, 1),
                "seed": args.seed,
                "eval/return": float(ret.mean()),
                "eval/episode_returns": json.dumps([round(float(r), 3) for r in ret]),
            }
        )
        atomic_write_csv(args.out / METRICS_FILE, rows)
        print(
            f"SB3 SAC Walker2d-v5 seed {args.seed}: {step} steps, eval {ret.mean():.1f}, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                log(self.model, self.num_timesteps)
            return True

    model = SAC(
        "MlpPolicy",
        "Walker2d-v5",
        learning_rate=3e-4,
        batch_size=256,
        buffer_size=args.steps,
        learning_starts=1000,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        ent_coef="auto_1.0",
        policy_kwargs={"net_arch": [256, 256]},
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    log(model, 0)
    model.learn(args.steps, callback=Eval())


if __name__ == "__main__":
    main()
