"""The statistics of ``sweep report``: interval tables, thresholds, probabilities of improvement.

Part of :mod:`analysis.report`: each function fills fields of a
:class:`~analysis.report_context.ReportContext` from its runs (:mod:`analysis.stats` does the
bootstrap); the figures and the sections only read them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis import stats
from analysis.report_context import AGG_ENV, ReportContext
from analysis.report_render import num


def compute_intervals(ctx: ReportContext, threshold: float | None) -> None:
    """Final-score and AUC intervals per scope, thresholds and steps to them, the ranking."""
    runs = ctx.runs
    ctx.envs = sorted(runs["env"].unique().tolist())
    refs = runs.groupby("env")["env_score_reference"].first()
    ctx.normalised = bool(runs["score_norm"].notna().all())
    _interval_tables(ctx, refs)
    _thresholds(ctx, threshold, refs)
    if ctx.thresholds:
        ctx.steps = stats.threshold_table(
            ctx.df,
            ctx.metric,
            ctx.group,
            ctx.thresholds,
            mode=ctx.mode,
            reps=max(ctx.reps // 2, 200),
            seed=ctx.seed,
        )
    for scope in ctx.scopes:
        scoped = ctx.intervals[ctx.intervals["env"] == scope]
        order = stats.rank_groups(scoped, "iqm", mode=ctx.mode)
        ctx.order[scope] = order
        ctx.best[scope] = order[0]


def _interval_tables(ctx: ReportContext, refs: pd.Series) -> None:
    """``ctx.intervals``, ``ctx.auc`` and ``ctx.auc_norm``: per env, then across envs."""
    runs = ctx.runs
    tables, aucs, norm_aucs = [], [], []
    for env in ctx.envs:
        sub = runs[runs["env"] == env]
        ref = refs.get(env, np.nan) if ctx.reference_is_target else np.nan
        # one env: the median over envs of per-env means is the mean, so it is left out
        metrics = ("iqm", "mean") + (("optimality_gap",) if np.isfinite(ref) else ())
        kwargs: dict[str, Any] = {"reps": ctx.reps, "seed": ctx.seed, "mode": ctx.mode}
        tables.append(
            stats.interval_table(
                sub, ctx.group, metrics=metrics, gamma=float(ref), **kwargs
            ).assign(env=env)
        )
        aucs.append(
            stats.interval_table(sub, ctx.group, value="auc", metrics=("iqm",), **kwargs).assign(
                env=env
            )
        )
        if ctx.returns and sub["auc_norm"].notna().any():
            norm_aucs.append(
                stats.interval_table(
                    sub, ctx.group, value="auc_norm", metrics=("iqm",), **kwargs
                ).assign(env=env)
            )
    if AGG_ENV in ctx.scopes:
        kwargs = {"reps": ctx.reps, "seed": ctx.seed, "mode": ctx.mode}
        agg_metrics = ("iqm", "mean", "median")
        agg_metrics += ("optimality_gap",) if ctx.reference_is_target else ()
        tables.append(
            stats.interval_table(
                runs, ctx.group, value="score_norm", metrics=agg_metrics, gamma=1.0, **kwargs
            ).assign(env=AGG_ENV)
        )
        aucs.append(
            stats.interval_table(
                runs, ctx.group, value="auc_norm", metrics=("iqm",), **kwargs
            ).assign(env=AGG_ENV)
        )
    ctx.intervals = pd.concat(tables, ignore_index=True)
    ctx.auc = pd.concat(aucs, ignore_index=True)
    if norm_aucs:
        ctx.auc_norm = pd.concat(norm_aucs, ignore_index=True)


def _thresholds(ctx: ReportContext, threshold: float | None, refs: pd.Series) -> None:
    """``ctx.thresholds`` per env for steps-to-threshold, and the rule that set them."""
    if threshold is not None:
        ctx.thresholds = {env: float(threshold) for env in ctx.envs}
        ctx.threshold_rule = f"set by `--threshold {num(threshold)}`"
    elif ctx.reference_is_target:
        ctx.thresholds = {env: float(refs[env]) for env in ctx.envs if np.isfinite(refs.get(env))}
        ctx.threshold_rule = "by default the env's reference score"
    else:
        iqm = ctx.intervals[ctx.intervals["metric"] == "iqm"]
        medians = iqm.groupby("env")["estimate"].median()
        ctx.thresholds = {env: float(medians[env]) for env in ctx.envs if env in medians.index}
        ctx.thresholds = {env: v for env, v in ctx.thresholds.items() if np.isfinite(v)}
        ctx.threshold_rule = (
            "by default the median over groups of the final IQM in that env, so that roughly "
            "the better half of the groups reach it"
        )


def compute_improvement(ctx: ReportContext) -> None:
    """All pairs stratified over envs (matrix), and each group vs the best per scope.

    Paired by seed where the groups share seeds (:func:`analysis.stats.paired_poi_table`), the
    unpaired numbers beside; the same for the learning-curve AUC.
    """
    kwargs: dict[str, Any] = {
        "reps": ctx.reps,
        "seed": ctx.seed,
        "mode": ctx.mode,
        "match": ctx.match_keys,
    }
    multi = AGG_ENV in ctx.scopes
    score, auc = ("score_norm", "auc_norm") if multi else ("score", "auc")
    ctx.poi = stats.paired_poi_table(ctx.runs, ctx.group, value=score, **kwargs)
    ctx.poi_auc = stats.paired_poi_table(ctx.runs, ctx.group, value=auc, **kwargs)
    for scope in ctx.scopes:
        best = ctx.best[scope]
        others = [g for g in ctx.order[scope] if g != best]
        for value, full, target in (
            (score, ctx.poi, ctx.vs_best),
            (auc, ctx.poi_auc, ctx.vs_best_auc),
        ):
            if scope == AGG_ENV or len(ctx.envs) == 1:
                table = full[(full["a"] == best) & full["b"].isin(others)]
            else:
                sub = ctx.runs[ctx.runs["env"] == scope]
                value = "score" if value == "score_norm" else "auc"
                table = stats.paired_poi_table(
                    sub, ctx.group, value=value, pairs=[(best, g) for g in others], **kwargs
                )
            target[scope] = table.set_index("b").reindex(others).reset_index()
