"""``sweep diagnose``: early-exploration statistics of freshly initialised policies.

For every combination of the given values (``init.scheme=fanin,orthogonal``) and every seed,
build the agent, apply the init spec, feed the initial policy states from random-policy rollouts
of the real env and record what its sampled actions look like.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np


def run_diagnose(values: dict[str, Any], seeds: int, out: Path, states: int = 1000) -> Path:
    import pandas as pd
    import torch

    from agent import agents, build_config
    from agent.base import seed_everything
    from agent.trial import init_diagnostics

    torch.set_num_threads(1)
    multi = {k: v for k, v in values.items() if isinstance(v, list) and k != "sac.hidden"}
    fixed = {k: v for k, v in values.items() if k not in multi}
    combos = [dict(zip(multi, vals)) for vals in itertools.product(*multi.values())] or [{}]
    rows, hists = [], {}
    for combo in combos:
        label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in combo.items()) or "default"
        per_seed = []
        for seed in range(seeds):
            cfg = build_config(
                {"total_steps": 1000, **fixed, **combo, "seed": seed, "diag_states": states}
            )
            seed_everything(seed)
            agent = agents.get(cfg.agent)(cfg)
            agent.initialise()
            d = init_diagnostics(agent, states, seed)
            per_seed.append(np.asarray(d["hist"]))
            for dim, (cov, clip) in enumerate(zip(d["coverage"], d["clip_frac"])):
                rows.append(
                    {
                        **combo,
                        "seed": seed,
                        "action_dim": dim,
                        "coverage": cov,
                        "clip_frac": clip,
                        "entropy": d["entropy"],
                        "mean_abs_mean": d["mean_abs_mean"],
                        "std": d["std"],
                        "critic_scale": d["critic_scale"],
                    }
                )
        hists[label] = (np.asarray(d["edges"]), np.mean(per_seed, axis=0))
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "init_diagnostics.csv", index=False)
    _plot(hists, out / "init_action_histograms.png")
    return out / "init_diagnostics.csv"


def _plot(hists: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(hists)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True
    )
    for ax, (label, (edges, mass)) in zip(axes.flat, hists.items()):
        centers = 0.5 * (edges[1:] + edges[:-1])
        for dim, m in enumerate(mass):
            ax.bar(centers, m, width=edges[1] - edges[0], alpha=0.6, label=f"dim {dim}")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("action (normalised)")
        ax.set_xlim(-1, 1)
    for ax in axes[:, 0]:
        ax.set_ylabel("share of actions")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
