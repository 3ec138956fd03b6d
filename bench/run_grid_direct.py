"""Run a sweep's trials in a plain process pool (no Ray), in the results layout.

Used to produce shipped results while the Ray runner is busy elsewhere, and as the plain-loop
peer of bench/ray_overhead.py. Usage: python bench/run_grid_direct.py OUT_DIR PROCS
"""

from __future__ import annotations

import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

GRID = {
    "init.scheme": ["fanin", "orthogonal", "kaiming"],
    "init.scenario": ["small_outputs", "small_critic_std", "small_std", "small_mean_critic",
                      "no_small"],
}
BASE = {"agent": "sac", "env": "Pendulum-v1", "total_steps": 4000, "eval_every": 500,
        "eval_episodes": 3, "sac.lr": 1e-3, "sac.learning_starts": 500, "diag_states": 1000}
SEEDS = [0, 1]


def trials():
    out = []
    for i, vals in enumerate(itertools.product(*GRID.values(), SEEDS)):
        *grid_vals, seed = vals
        combo = dict(zip(GRID, grid_vals))
        tid = f"t{i:03d}_{combo['init.scheme']}_{combo['init.scenario']}_s{seed}"
        out.append((tid, {**BASE, **combo, "seed": seed}))
    return out


def run_one(args):
    tid, values, root = args
    from agent import build_config, run_trial

    cfg = build_config(values)
    try:
        run_trial(cfg, Path(root) / "trials" / tid)
    except Exception as err:  # recorded in status.json by run_trial
        return tid, f"failed: {err}"
    return tid, "finished"


def main() -> None:
    root, procs = Path(sys.argv[1]), int(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)
    from agent import build_config

    ts = trials()
    resolved = {"name": root.name, "budget": "quick", "metric": "eval/return", "seeds": SEEDS,
                "grid": GRID, "varying_keys": list(GRID),
                "trials": [{"trial_id": t, "config": build_config(v).to_dict()} for t, v in ts]}
    (root / "sweep_resolved.json").write_text(json.dumps(resolved, indent=1))
    with ProcessPoolExecutor(procs) as pool:
        for tid, state in pool.map(run_one, [(t, v, str(root)) for t, v in ts]):
            print(tid, state, flush=True)


if __name__ == "__main__":
    main()
