"""Ray overhead: the same trials through `sweep run` vs a plain loop of worker processes.

    python bench/ray_overhead.py                  # 8 trials of ~30 s each, 2 processes
    python bench/ray_overhead.py --seconds 10     # shorter trials (more overhead, relatively)

Both sides run the very same resolved trial configs (SAC on Pendulum-v1, one seed each) through
`agent.trial.run_trial`. The plain side is a spawn-started pool of N processes (imports paid once
per process); the Ray side is the real command line, `sweep run FILE --max-concurrent N`, timed
from process start to exit (Python start, imports, Ray start-up and shutdown, per-trial actors,
checkpoint copies at every evaluation, experiment-state snapshots). Prints wall times and their
ratio (target <= 1.15). The machine's other load counts on both sides alike only if it is steady:
run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = {"agent": "sac", "env": "Pendulum-v1", "eval_episodes": 2, "diag_states": 200,
        "sac.learning_starts": 500}


def _run_one(job: tuple[dict, str]) -> float:
    config, out = job
    from agent.config import build_config
    from agent.trial import run_trial

    t0 = time.perf_counter()
    run_trial(build_config(config), out)
    return time.perf_counter() - t0


def _steps_per_second(probe_steps: int = 1500) -> float:
    """SAC's speed here: a probe trial past learning_starts, in this process (1 thread)."""
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        cfg = {**BASE, "total_steps": probe_steps, "eval_every": probe_steps, "diag_states": 0}
        seconds = _run_one((cfg, d))
    return probe_steps / seconds


def _sweep_yaml(steps: int, eval_every: int, trials: int) -> str:
    base = "\n".join(f"  {k}: {v}" for k, v in {**BASE, "total_steps": steps,
                                                 "eval_every": eval_every}.items())
    return f"name: ray_overhead\nbase:\n{base}\nseeds: {trials}\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0, help="target length of one trial")
    p.add_argument("--steps", type=int, help="env steps per trial (default: from --seconds)")
    p.add_argument("--procs", type=int, default=2, help="trials at once on both sides")
    p.add_argument("--evals", type=int, default=5, help="evaluations (= checkpoints) per trial")
    args = p.parse_args()

    steps = args.steps
    if steps is None:
        sps = _steps_per_second()
        steps = int(args.seconds * sps)
        print(f"SAC runs {sps:.0f} env steps/s here: {steps} steps ~ {args.seconds:.0f} s a trial")
    eval_every = max(1, steps // args.evals)
    steps = eval_every * args.evals

    from sweeps.schema import load_sweep

    root = Path(tempfile.mkdtemp(prefix="ray_overhead_"))
    try:
        yaml_path = root / "ray_overhead.yaml"
        yaml_path.write_text(_sweep_yaml(steps, eval_every, args.trials))
        sweep = load_sweep(yaml_path)
        jobs = [(t.config, str(root / "plain" / t.trial_id)) for t in sweep.trials]

        t0 = time.perf_counter()
        with mp.get_context("spawn").Pool(args.procs) as pool:
            per_trial = pool.map(_run_one, jobs, chunksize=1)
        plain = time.perf_counter() - t0
        print(f"plain loop, {args.procs} processes: {plain:7.1f} s  ({args.trials} trials of "
              f"{steps} steps, {sum(per_trial) / len(per_trial):.1f} s each)", flush=True)

        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "sweeps.cli", "run", str(yaml_path),
                               "--storage", str(root / "ray"), "--max-concurrent",
                               str(args.procs)], capture_output=True, text=True)
        ray = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"sweep run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        print(f"sweep run on Ray Tune:          {ray:7.1f} s", flush=True)
        print(f"ratio ray / plain: {ray / plain:.3f}  (target <= 1.15; "
              f"overhead {ray - plain:+.1f} s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
