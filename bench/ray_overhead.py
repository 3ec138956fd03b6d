"""Ray overhead: the same trials through `sweep run` vs a plain loop of worker processes.

    python bench/ray_overhead.py                  # 8 trials of ~30 s each, 2 processes
    python bench/ray_overhead.py --seconds 10     # shorter trials (more overhead, relatively)

Both sides run the very same resolved trial configs (SAC on Pendulum-v1, one seed each) through
`agent.trial.run_trial`. The plain side is a spawn-started pool of N processes (imports paid once
per process); the Ray side is the real command line, `sweep run FILE --max-concurrent N`, timed
from process start to exit (Python start, imports, Ray start-up and shutdown, per-trial actors,
checkpoint copies at every evaluation, experiment-state snapshots). Prints wall times and their
ratio (target <= 1.15), and the ratio of wall times each divided by that side's mean training time
per trial, which cancels a change of the machine's other load between the two sides (on a shared
machine the raw ratio is noise). ``--repeat`` alternates the sides and prints medians.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = {
    "agent": "sac",
    "env": "Pendulum-v1",
    "eval_episodes": 2,
    "diag_states": 200,
    "sac.learning_starts": 500,
}


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
    base = "\n".join(
        f"  {k}: {v}" for k, v in {**BASE, "total_steps": steps, "eval_every": eval_every}.items()
    )
    return f"name: ray_overhead\nbase:\n{base}\nseeds: {trials}\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0, help="target length of one trial")
    p.add_argument("--steps", type=int, help="env steps per trial (default: from --seconds)")
    p.add_argument("--procs", type=int, default=2, help="trials at once on both sides")
    p.add_argument("--evals", type=int, default=5, help="evaluations (= checkpoints) per trial")
    p.add_argument("--repeat", type=int, default=1, help="rounds of plain then Ray")
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
    ratios, normalised = [], []
    try:
        yaml_path = root / "ray_overhead.yaml"
        yaml_path.write_text(_sweep_yaml(steps, eval_every, args.trials))
        sweep = load_sweep(yaml_path)
        for rep in range(args.repeat):  # alternate the sides: slow drifts of load hit both
            out = root / f"rep{rep}"
            jobs = [(t.config, str(out / "plain" / t.trial_id)) for t in sweep.trials]
            t0 = time.perf_counter()
            with mp.get_context("spawn").Pool(args.procs) as pool:
                pool.map(_run_one, jobs, chunksize=1)
            plain = time.perf_counter() - t0
            plain_trial = _mean_trial_seconds(out / "plain")
            print(
                f"plain loop, {args.procs} processes: {plain:7.1f} s  ({args.trials} trials of "
                f"{steps} steps, training {plain_trial:.1f} s each)",
                flush=True,
            )

            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sweeps.cli",
                    "run",
                    str(yaml_path),
                    "--storage",
                    str(out / "ray"),
                    "--max-concurrent",
                    str(args.procs),
                ],
                capture_output=True,
                text=True,
            )
            ray = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(f"sweep run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
            ray_trial = _mean_trial_seconds(out / "ray" / "trials")
            print(
                f"sweep run on Ray Tune:          {ray:7.1f} s  (training {ray_trial:.1f} s each)",
                flush=True,
            )
            ratios.append(ray / plain)
            # wall time in units of one trial's training time on that side: what is left is the
            # overhead, whatever the machine's other load did to the training itself
            normalised.append((ray / ray_trial) / (plain / plain_trial))
            print(
                f"ratio ray / plain: {ratios[-1]:.3f} (wall), {normalised[-1]:.3f} (wall per "
                f"trial-training time); overhead {ray - plain:+.1f} s",
                flush=True,
            )
        if args.repeat > 1:
            print(
                f"median ratio over {args.repeat} rounds: {statistics.median(ratios):.3f} "
                f"(wall), {statistics.median(normalised):.3f} (normalised); target <= 1.15"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _mean_trial_seconds(trials_dir: Path) -> float:
    """Mean training wall time of the trials (metrics.csv's last wall_time), the same clock on
    both sides."""
    times = []
    for metrics in trials_dir.glob("*/metrics.csv"):
        with open(metrics, newline="") as f:
            rows = list(csv.DictReader(f))
        times.append(float(rows[-1]["wall_time"]))
    return sum(times) / max(len(times), 1)


if __name__ == "__main__":
    main()
