"""One report over the long SAC runs on Walker2d-v5 in results/benchmarks/.

    python bench/walker2d_report.py            # -> results/benchmarks/walker2d_sac_report/

The runs there are single ``sweep train`` runs (ours) and ``bench/sb3_walker2d.py`` runs
(Stable-Baselines3's SAC), not one sweep. This script lays copies of them out as one sweep
directory (docs/results_layout.md, written with sweeps/trialdir.py) under runs/ (git-ignored),
one trial per run with a ``variant`` key naming its configuration, and runs the analysis
package's report on it:
learning curves with bootstrap bands, final IQM (mean of the evaluations at 85k-100k by
default), probability of improvement between the variants and steps to the issue's bar (1000).
The run directories are only read; ``sweep report runs/walker2d_sac_100k ...`` (the command the
report names) redoes the report from the copies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from analysis.report import write_report
from sweeps.trialdir import (
    CONFIG_FILE,
    INIT_DIAGNOSTICS_FILE,
    INIT_RECORD_FILE,
    METRICS_FILE,
    RESOLVED_FILE,
    STATUS_FILE,
    atomic_write_json,
    atomic_write_text,
    read_status,
    trial_path,
)

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "results" / "benchmarks"
MARK = "ASSEMBLED_BY_walker2d_report"  # a sweep directory this script may replace
# variant: (glob of run directories under results/benchmarks, how the runs were made)
VARIANTS = {
    "ours_default": ("walker2d_sac_100k", "walker2d_sac_100k_s[0-9]"),
    "ours_sb3_init_joint": ("walker2d_sac_100k_sb3like_s[0-9]",),
    "ours_sb3_init_after_critic": ("walker2d_sac_100k_sb3like_after_critic_s[0-9]",),
    "sb3": ("sb3_walker2d_sac_100k", "sb3_walker2d_sac_100k_s[0-9]"),
}


def run_dirs(variant: str) -> list[Path]:
    return sorted(
        p
        for pattern in VARIANTS[variant]
        for p in ROOT.glob(pattern)
        if (p / METRICS_FILE).is_file()
    )


def seed_of(run: Path) -> int:
    """The run's seed: its config's, else the directory's ``_s<seed>`` suffix (seed 0 without)."""
    if (run / CONFIG_FILE).is_file():
        return int(json.loads((run / CONFIG_FILE).read_text())["seed"])
    tail = run.name.rsplit("_s", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def assemble(sweep: Path) -> dict[str, int]:
    """Write the sweep layout into ``sweep``; returns the number of runs per variant."""
    runs = {variant: run_dirs(variant) for variant in VARIANTS}
    # the SB3 runs have no status.json: they get our runs' env scores (same env)
    reference = next(
        read_status(r).get("env_scores")
        for rs in runs.values()
        for r in rs
        if (r / STATUS_FILE).is_file()
    )
    trials = []
    for variant, dirs in runs.items():
        for run in dirs:
            seed, trial_id = seed_of(run), run.name
            out = trial_path(sweep, trial_id)
            out.mkdir(parents=True)
            metrics = pd.read_csv(run / METRICS_FILE)
            if "seed" not in metrics.columns:
                metrics.insert(1, "seed", seed)
            atomic_write_text(out / METRICS_FILE, metrics.to_csv(index=False))
            config = {"agent": "sac", "env": "Walker2d-v5", "seed": seed, "variant": variant}
            atomic_write_json(out / CONFIG_FILE, config)
            status = read_status(run)
            if not status:  # an SB3 run: finished at its last evaluation
                last = int(metrics["env_step"].max())
                status = {
                    "state": "finished",
                    "error": None,
                    "env_steps": last,
                    "planned_steps": last,
                    "env_scores": reference,
                }
            atomic_write_json(out / STATUS_FILE, status)
            for name in (INIT_DIAGNOSTICS_FILE, INIT_RECORD_FILE):
                if (run / name).is_file():
                    shutil.copy(run / name, out / name)
            trials.append({"trial_id": trial_id, "config": config})
    resolved = {
        "name": "walker2d_sac_100k",
        "budget": "benchmark",
        "metric": "eval/return",
        "mode": "max",
        "seeds": sorted({t["config"]["seed"] for t in trials}),
        "grid": {"variant": list(VARIANTS)},
        "varying_keys": ["variant"],
        "trials": trials,
    }
    atomic_write_json(sweep / RESOLVED_FILE, resolved)
    return {variant: len(dirs) for variant, dirs in runs.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "walker2d_sac_report")
    p.add_argument(
        "--sweep-dir",
        type=Path,
        default=REPO / "runs" / "walker2d_sac_100k",
        help="where the assembled copies go (replaced if this script made it)",
    )
    p.add_argument("--last-k", type=int, default=4, help="final = mean of the last K evals")
    p.add_argument("--threshold", type=float, default=1000.0)
    args = p.parse_args()
    sweep = args.sweep_dir
    if sweep.exists():
        if not (sweep / MARK).is_file():
            sys.exit(
                f"error: {sweep} exists and was not made by this script; pass another "
                "--sweep-dir (nothing was written)"
            )
        shutil.rmtree(sweep)
    sweep.mkdir(parents=True)
    (sweep / MARK).write_text("copies of results/benchmarks runs; safe to delete\n")
    counts = assemble(sweep)
    print(f"{sum(counts.values())} runs: " + ", ".join(f"{v} {n}" for v, n in counts.items()))
    path = write_report(
        sweep,
        group=["variant"],
        threshold=args.threshold,
        last_k=args.last_k,
        out_dir=args.out,
        formats=("png",),
        html_images="link",
    )
    print(f"report: {path}")


if __name__ == "__main__":
    main()
