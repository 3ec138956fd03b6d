"""What one ``sweep report`` computes, in one object, and the few facts every part reads from it.

Part of :mod:`analysis.report`: :class:`ReportContext` is filled stage by stage
(:mod:`analysis.report_pipeline`) and read by the figures and the sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import stats

AGG_ENV = "all envs (normalised)"
"""``env`` value of the rows that aggregate over envs with normalised scores."""
INIT_KEYS = ("init.scheme", "init.scenario")
STATE_WORDS = ("finished", "running", "failed", "pending")
DIAG_COLUMNS = ("coverage", "clip_frac", "entropy", "mean_abs_mean", "std", "critic_scale")


@dataclass
class ReportContext:
    """Everything computed for one report."""

    sweep_dir: Path
    info: Any
    trials: pd.DataFrame
    df: pd.DataFrame
    metric: str
    group: list[str]
    last_k: int
    reps: int
    seed: int
    mode: str = "max"
    up_to: float | None = None
    formats: tuple[str, ...] = ("png", "svg")
    dpi: int = 150
    inline_images: bool = True
    command: str = "sweep report"
    written: list[Path] = field(default_factory=list)
    runs_all: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    envs: list[str] = field(default_factory=list)
    normalised: bool = False
    intervals: pd.DataFrame = field(default_factory=pd.DataFrame)
    auc: pd.DataFrame = field(default_factory=pd.DataFrame)
    thresholds: dict[str, float] = field(default_factory=dict)
    threshold_rule: str = ""
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    poi: pd.DataFrame = field(default_factory=pd.DataFrame)
    vs_best: dict[str, pd.DataFrame] = field(default_factory=dict)
    best: dict[str, str] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # (section, name, caption)
    diag_table: pd.DataFrame | None = None
    diag_figures: list[tuple[str, str]] = field(default_factory=list)
    scoring: Any = None  # Scoring: the declared score and what this view changes
    notes: list[str] = field(default_factory=list)  # identical runs, runs without a group key
    match_keys: list[str] = field(default_factory=list)  # pooled keys runs are matched on
    auc_norm: pd.DataFrame = field(default_factory=pd.DataFrame)
    poi_auc: pd.DataFrame = field(default_factory=pd.DataFrame)
    vs_best_auc: dict[str, pd.DataFrame] = field(default_factory=dict)
    other: pd.DataFrame = field(default_factory=pd.DataFrame)  # --also: other_metrics.csv
    tuning: Any = None  # analysis.tuning_report.TuningResult (sweeps with `search:`)
    diag_note: str = ""  # why there is no init-diagnostics section

    @property
    def lower(self) -> bool:
        """Lower values of the metric are better (``mode: min``)."""
        return not stats.higher_is_better(self.mode)

    @property
    def returns(self) -> bool:
        """The metric is an episode return, so env scores (random / reference) apply to it."""
        return stats.is_return_metric(self.metric)

    @property
    def reference_is_target(self) -> bool:
        """The env's reference score is a target to reach: a return, higher is better."""
        return self.returns and not self.lower

    @property
    def cmp(self) -> str:
        """The comparison that means "better": ``>`` or ``<``."""
        return "<" if self.lower else ">"

    @property
    def direction(self) -> str:
        return "lower is better" if self.lower else "higher is better"

    @property
    def scopes(self) -> list[str]:
        """Envs, then the normalised aggregate when there are several envs with scores."""
        return [*self.envs, AGG_ENV] if self.normalised and len(self.envs) > 1 else self.envs


def n_trials(ctx: ReportContext, state: str) -> int:
    """How many trials are in ``state`` (``finished``, ``running``, ...)."""
    return int((ctx.trials["state"] == state).sum())


def is_paired(ctx: ReportContext) -> bool:
    """Some pair of groups was compared paired by seed (they share seeds)."""
    return bool(len(ctx.poi)) and bool((ctx.poi["analysis"] == "paired").any())


def report_title(ctx: ReportContext) -> str:
    """Sweep name, budget and env steps per run, e.g. "model_based (budget pendulum, 15,000
    env steps)"."""
    budget = ctx.info.budget  # a named budget ("quick"); a mapping is shown as env steps
    parts = [f"budget {budget}"] if isinstance(budget, str) else []
    steps = pd.to_numeric(ctx.trials.get("planned_steps"), errors="coerce")
    if steps is not None and np.isfinite(steps).any():
        lo, hi = int(np.nanmin(steps)), int(np.nanmax(steps))
        parts.append(f"{lo:,} env steps" if lo == hi else f"{lo:,}-{hi:,} env steps")
    if ctx.up_to is not None:
        parts.append(f"cut at {ctx.up_to:,.0f}")
    return ctx.info.name + (f" ({', '.join(parts)})" if parts else "")
