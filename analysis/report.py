"""``sweep report DIR``: one command from a sweep directory to a readable, honest report.

Writes, next to the sweep's results::

    DIR/report.md                 the report (figure links relative to DIR)
    DIR/report.html               the same, self-contained (figures inlined as PNG)
    DIR/report/metrics.parquet    the tidy table the report was computed from
    DIR/report/*.csv              final scores per run, interval tables, P(improvement) pairs
    DIR/report/figures/*.png|svg  every figure

Works on a sweep that is still running: running trials are included up to their last
evaluation and the report says so at the top. The metric's direction is the sweep's ``mode``
(``sweep_resolved.json``; ``--mode`` overrides it): with ``min`` (lower is better, e.g. a world
model's open-loop prediction error) rankings, "best" groups, probabilities of improvement,
steps-to-threshold, performance profiles, axis labels and the text all read lower as better,
while every number stays in the metric's own units. Env scores (random / reference return)
are used only for episode-return metrics: normalisation and the cross-env aggregate, the
optimality gap and the default threshold (the reference score; for other metrics, or in min
mode, the median of the groups' final IQMs in each env). Failed trials are listed with their
errors and left out of the statistics. CLI wiring: :func:`add_subcommand` (the hook
``sweeps.cli`` looks for), or :func:`add_arguments` + :func:`main` on a parser of your own.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis import plots, stats, style, tuning_report
from analysis.load import (
    AnalysisError,
    config_columns,
    load_init_diagnostics,
    load_sweep,
    load_trials,
    read_sweep_info,
)
from analysis.report_cli import add_arguments
from analysis.stats import MODES

__all__ = ["add_arguments", "add_subcommand", "main", "write_report"]

log = logging.getLogger(__name__)

AGG_ENV = "all envs (normalised)"
"""``env`` value of the rows that aggregate over envs with normalised scores."""
_INIT_KEYS = ("init.scheme", "init.scenario")
STATE_WORDS = ("finished", "running", "failed", "pending")
_DIAG_COLUMNS = ("coverage", "clip_frac", "entropy", "mean_abs_mean", "std", "critic_scale")


def write_report(
    sweep_dir: str | Path,
    group: Sequence[str] | None = None,
    threshold: float | None = None,
    metric: str | None = None,
    progress: bool = True,
    *,
    mode: str | None = None,
    last_k: int | None = None,
    reps: int = 2000,
    curve_reps: int = 300,
    seed: int = 0,
    out_dir: str | Path | None = None,
    up_to: float | None = None,
    seeds: Sequence[int] | None = None,
    formats: Sequence[str] = ("png", "svg"),
    dpi: int = 150,
    html_images: str = "inline",
    strict: bool = False,
) -> Path:
    """Analyse a sweep directory and write ``report.md``, ``report.html`` and ``report/``.

    Args:
        sweep_dir: the sweep directory (``docs/results_layout.md``), finished or running.
        group: config keys whose unique combinations form the compared groups (default: every
            varying key except ``seed`` and ``env``; envs are strata, compared separately and
            aggregated with normalised scores).
        threshold: value of the metric for steps-to-threshold, applied to every env; reached
            when the group's IQM curve is at or above it (at or below it in min mode). Default:
            for an episode return in max mode each env's reference score from ``status.json``
            (envs without one are skipped); otherwise the median over groups of the final IQM
            in each env, so that roughly the better half of the groups reach it.
        metric: the metric column (default: ``metric`` of ``sweep_resolved.json``, else
            ``eval/return``).
        progress: show a progress bar on stderr.
        mode: ``"max"`` (higher is better) or ``"min"`` (lower is better); default: ``mode`` of
            ``sweep_resolved.json``, else ``"max"``.
        last_k: final performance of a run = mean of its last ``last_k`` evaluations
            (default: the score the sweep file declares under ``analysis.final``, else 3); a
            value other than the declared score makes the report exploratory.
        reps: bootstrap resamples for final-performance CIs and P(improvement).
        curve_reps: bootstrap resamples for learning-curve bands.
        seed: bootstrap seed (the report is deterministic for a given sweep state).
        out_dir: where ``report.md``, ``report.html`` and ``report/`` go (default: the sweep
            directory); e.g. a second report of the same sweep grouped differently.
        up_to: use only evaluations at env steps <= ``up_to``: "final" performance becomes
            performance at that budget (early learning, when every group ends solved).
        seeds: use only these seeds (an exploratory view, e.g. the seeds a first run lacked).
        formats: figure file formats; the first must be ``png`` (report.md and the HTML show
            the PNGs); ``svg`` adds vector copies linked from report.md.
        dpi: resolution of the PNG figures.
        html_images: ``"inline"`` embeds the PNGs in report.html (one self-contained file);
            ``"link"`` refers to them under ``report/figures/`` (a small file, e.g. to commit).

    Returns:
        The path of ``report.md``.

    Raises:
        AnalysisError: missing directory, no trials, unknown group key, unknown mode, no
            values of the metric, or no evaluation at or before ``up_to``; the message names
            the path. A bad ``formats`` or ``dpi``.
    """
    started = time.perf_counter()
    sweep_dir = Path(sweep_dir)
    formats = _check_formats(formats, dpi)
    if html_images not in HTML_IMAGES:
        raise AnalysisError(f"html_images must be one of {list(HTML_IMAGES)}, got {html_images!r}")
    command = _command_line(group, threshold, metric, mode, last_k, up_to, out_dir, seeds)
    stages = [
        "load",
        "final scores",
        "intervals",
        "probability of improvement",
        "learning curves",
        "figures",
        "init diagnostics",
        "write",
    ]
    bar = tqdm(
        total=len(stages),
        desc="sweep report",
        unit="stage",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )

    def stage(name: str) -> None:
        bar.set_postfix_str(name)
        log.info("sweep report: %s", name)

    try:
        stage("load")
        info = read_sweep_info(sweep_dir)
        trials = load_trials(sweep_dir, strict=strict)  # strict: a damaged trial is an error
        df = load_sweep(sweep_dir, trials=trials)
        if up_to is not None:
            df = df[df["env_step"].isna() | (df["env_step"] <= up_to)]
            if not (df["env_step"] <= up_to).any():
                raise AnalysisError(f"no evaluation at or before env step {up_to:g} in {sweep_dir}")
        scoring = _scoring(sweep_dir, info, last_k, up_to, threshold, metric, mode)
        if seeds is not None:
            df = df[df["seed"].isin(list(seeds))]
            if df.empty:
                raise AnalysisError(f"no runs of seeds {list(seeds)} in {sweep_dir}")
            scoring.exploratory.append(
                "only seeds " + ", ".join(str(x) for x in seeds) + " (`--seeds`)"
            )
        metric = metric or info.metric
        mode = _check_mode(mode or info.mode, sweep_dir)
        _check_metric(df, metric, sweep_dir)
        group = _group_keys(df, group, sweep_dir, info.varying_keys)
        match_keys = [k for k in config_columns(df) if k not in (*group, "env", "seed")]
        df, notes = _count_once(df, group, _init_records(sweep_dir, trials))
        ctx = _Context(
            sweep_dir,
            info,
            trials,
            df,
            metric,
            list(group),
            scoring.last_k or 0,
            reps,
            seed,
            mode=mode,
            up_to=up_to,
            formats=formats,
            dpi=dpi,
            inline_images=html_images == "inline",
            command=command,
        )
        ctx.scoring, ctx.notes, ctx.match_keys = scoring, notes, match_keys
        root = Path(out_dir) if out_dir is not None else sweep_dir
        root.mkdir(parents=True, exist_ok=True)
        out = root / "report"
        (out / "figures").mkdir(parents=True, exist_ok=True)
        df.to_parquet(out / "metrics.parquet", index=False)
        bar.update()

        stage("final scores")
        ctx.runs_all = stats.final_scores(
            df, metric, last_k=scoring.last_k or 3, window=scoring.window, include_failed=True
        )
        ctx.runs = ctx.runs_all[ctx.runs_all["state"] != "failed"].reset_index(drop=True)
        if ctx.runs.empty:
            raise AnalysisError(
                f"no usable runs in {sweep_dir}: every run with values of {metric!r} failed"
            )
        ctx.runs_all.to_csv(out / "final_scores.csv", index=False)
        bar.update()

        stage("intervals")
        _intervals(ctx, threshold if threshold is not None else scoring.threshold)
        if threshold is None and scoring.threshold is not None:
            ctx.threshold_rule = (
                f"declared in the sweep file (`analysis.threshold: {scoring.threshold:g}`)"
            )
        ctx.intervals.to_csv(out / "intervals.csv", index=False)
        bar.update()

        stage("probability of improvement")
        _improvement(ctx)
        ctx.poi.to_csv(out / "poi_pairs.csv", index=False)
        ctx.poi_auc.to_csv(out / "poi_pairs_auc.csv", index=False)
        bar.update()

        stage("learning curves")
        ctx.curves = stats.learning_curves(
            df, metric, ctx.group, reps=curve_reps, seed=seed, estimator="iqm"
        )
        bar.update()

        stage("figures")
        _figures(ctx, out / "figures")
        bar.update()

        stage("init diagnostics")
        _init_diagnostics(ctx, out / "figures")
        ctx.tuning = tuning_report.build(  # a sweep with `search:`: the tuning-cost section
            ctx.info, ctx.runs, mode=ctx.mode, reps=reps, seed=seed, out_dir=out,
            save=lambda fig, name: _write_figure(ctx, fig, out / "figures" / name))
        _drop_stale_figures(ctx, out / "figures")
        bar.update()

        stage("write")
        doc = _compose(ctx, time.perf_counter() - started)
        md_path = root / "report.md"
        md_path.write_text(doc.to_markdown())
        (root / "report.html").write_text(doc.to_html(root, title=_title(ctx)))
        bar.update()
    finally:
        bar.close()
    log.info("sweep report: wrote %s in %.1fs", md_path, time.perf_counter() - started)
    return md_path


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the ``sweep`` CLI's subparsers (``args.func`` is :func:`main`)."""
    parser = subparsers.add_parser(
        "report",
        help="statistics, figures, report.md/html of a sweep directory",
        description="Write DIR/report.md, DIR/report.html and DIR/report/ (figures, tidy table) "
        "for a finished or running sweep.",
    )
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run ``sweep report`` from parsed arguments (or an argv list); return the exit code.

    0 on success; 2 with the error message on stderr for an :class:`AnalysisError`.
    """
    if not isinstance(args, argparse.Namespace):
        parser = add_arguments(argparse.ArgumentParser(prog="sweep report"))
        args = parser.parse_args(args)
    import matplotlib

    matplotlib.use("Agg")
    try:
        path = write_report(
            args.dir,
            group=args.group,
            threshold=args.threshold,
            metric=getattr(args, "metric", None),
            progress=getattr(args, "progress", True),
            mode=getattr(args, "mode", None),
            last_k=getattr(args, "last_k", None),
            reps=getattr(args, "reps", 2000),
            out_dir=getattr(args, "out", None),
            up_to=getattr(args, "up_to", None),
            seeds=getattr(args, "seeds", None),
            formats=str(getattr(args, "formats", "png,svg")).split(","),
            dpi=getattr(args, "dpi", 150),
            html_images=getattr(args, "html_images", "inline"),
            strict=getattr(args, "strict", False),
        )
    except AnalysisError as err:
        print(f"sweep report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0


# --------------------------------------------------------------------------------------------
# computation


@dataclass
class _Context:
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
    scoring: Any = None  # _Scoring: the declared score and what this view changes
    notes: list[str] = field(default_factory=list)  # identical runs, runs without a group key
    match_keys: list[str] = field(default_factory=list)  # pooled keys runs are matched on
    auc_norm: pd.DataFrame = field(default_factory=pd.DataFrame)
    poi_auc: pd.DataFrame = field(default_factory=pd.DataFrame)
    vs_best_auc: dict[str, pd.DataFrame] = field(default_factory=dict)
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


def _check_mode(mode: str, sweep_dir: Path) -> str:
    if mode not in MODES:
        raise AnalysisError(
            f"unknown metric mode {mode!r} for {sweep_dir} (sweep_resolved.json or --mode): "
            "expected 'max' (higher is better) or 'min' (lower is better)"
        )
    return mode


def _check_metric(df: pd.DataFrame, metric: str, sweep_dir: Path) -> None:
    if metric not in df.columns or df[metric].notna().sum() == 0:
        found = [c for c in df.columns if "/" in c]
        raise AnalysisError(
            f"no values of metric {metric!r} in any metrics.csv under {sweep_dir / 'trials'}"
            + (f"; metrics found: {', '.join(found)}" if found else "; no metrics written yet")
        )


def _group_keys(
    df: pd.DataFrame, group: Sequence[str] | None, sweep_dir: Path, declared: Sequence[str] = ()
) -> list[str]:
    varying = config_columns(df)
    if group is None:
        # the sweep's own axes (grid keys, include keys) when it declares them: a key that only
        # some agents have (``mb_ppo.*`` in a sweep over agents) varies but is not a factor
        axes = [k for k in declared if k in varying] or varying
        return [k for k in axes if k not in ("seed", "env")]
    unknown = [k for k in group if k not in df.columns]
    if unknown:
        raise AnalysisError(
            f"cannot group {sweep_dir} by {', '.join(unknown)}: not a varying config key; "
            f"varying keys: {', '.join(varying) or '(none)'}"
        )
    # envs are always strata (compared separately, aggregated with normalised scores)
    return [k for k in dict.fromkeys(group) if k not in ("env", "seed")]


def _intervals(ctx: _Context, threshold: float | None) -> None:
    runs = ctx.runs
    ctx.envs = sorted(runs["env"].unique().tolist())
    refs = runs.groupby("env")["env_score_reference"].first()
    ctx.normalised = bool(runs["score_norm"].notna().all())
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
    if threshold is not None:
        ctx.thresholds = {env: float(threshold) for env in ctx.envs}
        ctx.threshold_rule = f"set by `--threshold {_num(threshold)}`"
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


def _improvement(ctx: _Context) -> None:
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
        for value, full, target in ((score, ctx.poi, ctx.vs_best), (auc, ctx.poi_auc,
                                                                       ctx.vs_best_auc)):
            if scope == AGG_ENV or len(ctx.envs) == 1:
                table = full[(full["a"] == best) & full["b"].isin(others)]
            else:
                sub = ctx.runs[ctx.runs["env"] == scope]
                value = "score" if value == "score_norm" else "auc"
                table = stats.paired_poi_table(
                    sub, ctx.group, value=value, pairs=[(best, g) for g in others], **kwargs
                )
            target[scope] = table.set_index("b").reindex(others).reset_index()


def _colours(ctx: _Context) -> tuple[str | None, dict[Any, Any], dict[str, Any]]:
    """(colour key, its value -> colour, group label -> colour), colour-blind safe if possible.

    Groups are coloured by ``init.scheme`` when grouped by it, else by the first group key with
    at most 10 values, else each group gets its own colour.
    """
    order = ctx.order[ctx.scopes[-1]]
    candidates = ["init.scheme", *ctx.group] if "init.scheme" in ctx.group else ctx.group
    for key in candidates:
        values = _grid_order(ctx.info.grid, key, ctx.runs)
        # a key some groups lack (``mb_ppo.*`` of dreamer trials) cannot colour every group
        if len(values) <= 10 and ctx.runs[key].notna().all():
            key_palette = plots.group_palette(values, key)
            labels = stats.group_labels(ctx.runs, ctx.group)
            by_group = dict(zip(labels, ctx.runs[key].map(key_palette), strict=True))
            return key, key_palette, by_group
    palette = plots.group_palette(order, "group")
    return None, palette, palette


def _figures(ctx: _Context, fig_dir: Path) -> None:
    group_order = ctx.order[ctx.scopes[-1]]
    key, key_palette, palette = _colours(ctx)
    partial = ""
    if _n(ctx, "running"):
        partial = " Running trials contribute up to their last evaluation."
    lower_note = "; lower is better" if ctx.lower else ""
    lower_sentence = f" Lower `{ctx.metric}` is better." if ctx.lower else ""

    init_grid = all(k in ctx.group for k in _INIT_KEYS)
    if init_grid and len(ctx.group) == 2:
        facet_kw: dict[str, Any] = {
            "hue": "init.scheme",
            "row": "init.scenario",
            "palette": key_palette,
        }
    elif key is not None and len(ctx.group) == 1:
        facet_kw = {"hue": key, "palette": key_palette}
    elif key is not None:
        # colour = the colour key, line style = the other keys (with 3+ keys, the first other
        # key gets its own panels): structured looks instead of one hue per group
        others = [k for k in ctx.group if k != key]
        facet_kw = {"hue": key, "palette": key_palette, "style": others[-1]}
        if len(others) >= 2:
            facet_kw["row"] = others[0]
        if len(others) >= 3:
            facet_kw["style"] = " / ".join(style.factor_name(k) for k in others[1:])
    else:
        facet_kw = {"hue": "group", "palette": plots.group_palette(group_order, "group")}
    ylabel = style.wrap_label(f"{style.metric_label(ctx.metric)} (IQM, 95% CI{lower_note})")
    fig, _ = plots.plot_learning_curves(
        _with_style_column(ctx.curves, ctx.group, facet_kw), ylabel=ylabel, col="env", **facet_kw
    )
    _save(
        ctx,
        fig,
        fig_dir,
        "learning_curves",
        "Learning curves",
        f"IQM of `{ctx.metric}` over runs at each evaluation, with 95% bootstrap CI bands."
        + lower_sentence
        + partial,
    )

    # a long metric name goes in the title: the panels are too narrow for it
    units = {env: "return" if ctx.returns else "" for env in ctx.envs} | {AGG_ENV: "normalised"}
    fig, _ = plots.plot_intervals(
        ctx.intervals,
        order=group_order,
        palette=palette,
        hue=key if key is not None and len(ctx.group) > 1 else None,
        units=units,
        mode=ctx.mode,
        title=None if ctx.returns else f"final {style.metric_label(ctx.metric)}",
    )
    panel_notes = " ".join(plots.interval_panels(ctx.intervals)[2])
    _save(
        ctx,
        fig,
        fig_dir,
        "final_intervals",
        "Final performance",
        f"Final performance ({ctx.scoring.final_text} of each run){ctx.scoring.tag}: point "
        "estimate (black tick) and 95% stratified bootstrap CI (bar). "
        + (
            f"Lower is better for every panel (`{ctx.metric}` is minimised)."
            if ctx.lower
            else "Higher is better, except for the optimality gap."
            if (ctx.intervals["metric"] == "optimality_gap").any()
            else "Higher is better."
        )
        + (f" {panel_notes}" if panel_notes else ""),
    )

    if init_grid:
        others = [k for k in ctx.group if k not in _INIT_KEYS]
        heat = ctx.intervals[ctx.intervals["metric"] == "iqm"].copy()
        heat["panel"] = heat["env"].astype(str)
        for key in others:
            heat["panel"] = heat["panel"] + f" | {key} = " + heat[key].astype(str)
        grid = ctx.info.grid
        labels = {
            p: (
                "IQM (normalised)"
                if p.startswith(AGG_ENV)
                else style.wrap_label(f"IQM of {style.metric_label(ctx.metric)}", 30)
            )
            + ("\n(lower is better)" if ctx.lower else "")
            for p in heat["panel"].unique()
        }
        fig, _ = plots.plot_heatmap(
            heat,
            facet="panel",
            value_label=labels,
            mode=ctx.mode,
            row_order=_grid_order(grid, "init.scheme", heat),
            col_order=_grid_order(grid, "init.scenario", heat),
        )
        _save(
            ctx,
            fig,
            fig_dir,
            "init_grid_heatmap",
            "Init scheme x scenario",
            "Final IQM per init scheme (rows) and output-layer scenario (columns); each cell "
            "shows the estimate and its 95% CI. Colour scales are per panel"
            + (
                "; the colour map is reversed so that bright cells are better."
                if ctx.lower
                else "."
            )
            + lower_sentence,
        )

    if len(group_order) > 1:
        fig, _ = plots.plot_probability_of_improvement(ctx.poi, order=group_order, mode=ctx.mode)
        strat = " averaged over envs (each env weighs the same)" if len(ctx.envs) > 1 else ""
        _save(
            ctx,
            fig,
            fig_dir,
            "probability_of_improvement",
            "Probability of improvement",
            f"P(row group's final score {ctx.cmp} column group's){strat}"
            + (f", i.e. the row group is better (lower `{ctx.metric}`)" if ctx.lower else "")
            + ". `*`: supported (the 95% CI excludes 0.5 and each group has at least 4 runs). "
            "Faded, hatched cells: a group has fewer than 4 runs (coarse values, no verdict); "
            "grey diagonal: a group against itself.",
        )

    if AGG_ENV in ctx.scopes:
        prof = stats.profile_table(
            ctx.runs, ctx.group, value="score_norm", mode=ctx.mode, reps=300, seed=ctx.seed
        ).assign(env=AGG_ENV)
        xlabel = r"normalised score $\tau$"
    else:
        prof = pd.concat(
            [
                stats.profile_table(
                    ctx.runs[ctx.runs["env"] == env],
                    ctx.group,
                    mode=ctx.mode,
                    reps=300,
                    seed=ctx.seed,
                ).assign(env=env)
                for env in ctx.envs
            ],
            ignore_index=True,
        )
        xlabel = style.wrap_label(f"final {style.metric_label(ctx.metric)}" + r" $\tau$", 50)
    fig, _ = plots.plot_performance_profiles(
        _with_style_column(prof, ctx.group, facet_kw),
        xlabel=xlabel,
        col="env",
        mode=ctx.mode,
        **facet_kw,
    )
    _save(
        ctx,
        fig,
        fig_dir,
        "performance_profiles",
        "Performance profiles",
        f"Fraction of runs whose final score {'is below' if ctx.lower else 'exceeds'} tau, "
        "with 95% CI bands; a curve that lies above another everywhere is stochastically "
        "better." + lower_sentence,
    )


def _init_diagnostics(ctx: _Context, fig_dir: Path) -> None:
    summary, hist = load_init_diagnostics(ctx.sweep_dir, trials=ctx.trials)
    if summary.empty:
        return
    if _uninformative_probe(summary):
        ctx.diag_note = (
            "No init diagnostics: every run's initial-policy probe recorded the uniform random "
            "policy (mean 0, std 1/sqrt(3), entropy ln 2 per action dim; e.g. the `world_model` "
            "agent collects data uniformly at random), which no init changes."
        )
        return
    key, key_palette, _ = _colours(ctx)
    keys = [k for k in ctx.group if k in summary.columns]
    summary = summary.assign(group=stats.group_labels(summary, keys))
    runs = summary.groupby(["env", "group", "trial_id", "seed"], dropna=False)[
        list(_DIAG_COLUMNS)
    ].mean()
    table = runs.groupby(["env", "group"]).agg(
        runs=("coverage", "size"), **{c: (c, "mean") for c in _DIAG_COLUMNS}
    )
    ctx.diag_table = table.reset_index()
    init_grid = all(k in summary.columns for k in _INIT_KEYS)
    grid = ctx.info.grid
    for env in sorted(hist["env"].unique()) if not hist.empty else []:
        sub = hist[hist["env"] == env]
        if init_grid:
            kw: dict[str, Any] = {
                "row": "init.scheme",
                "col": "init.scenario",
                "row_order": _grid_order(grid, "init.scheme", sub),
                "col_order": _grid_order(grid, "init.scenario", sub),
            }
        else:
            sub = sub.assign(group=stats.group_labels(sub, keys))
            kw = {"row": None, "col": "group"}
        fig, _ = plots.plot_action_histograms(sub, title=f"{env}: actions at init", **kw)
        name = f"init_action_hist_{_slug(env)}"
        _write_figure(ctx, fig, fig_dir / name)
        ctx.diag_figures.append(
            (
                name,
                f"{env}: histogram of actions sampled at initialisation, averaged over seeds "
                "and action dims. Mass in the outermost bins is clipping at the bounds.",
            )
        )
    if init_grid:
        kw = {"hue": "init.scheme", "style": "init.scenario", "palette": key_palette}
    elif key is not None:
        kw = {"hue": key, "style": None, "palette": key_palette}
    else:
        kw = {"hue": "group", "style": None}
    fig, _ = plots.plot_clip_vs_coverage(summary, col="env" if len(ctx.envs) > 1 else None, **kw)
    _write_figure(ctx, fig, fig_dir / "init_clip_vs_coverage")
    ctx.diag_figures.append(
        (
            "init_clip_vs_coverage",
            "Clip fraction vs action-space coverage at initialisation, one "
            "point per run. Better: right (broad coverage) and low "
            "(little clipping).",
        )
    )


def _with_style_column(
    frame: pd.DataFrame, group: Sequence[str], facet_kw: dict[str, Any]
) -> pd.DataFrame:
    """``frame`` with the combined line-style column ``facet_kw`` names, if it is not a key."""
    name = facet_kw.get("style")
    if name is None or name in frame.columns:
        return frame
    used = {facet_kw.get("hue"), facet_kw.get("row")}
    rest = [k for k in group if k not in used]
    return frame.assign(**{name: stats.group_labels(frame, rest)})


def _uninformative_probe(summary: pd.DataFrame) -> bool:
    """Every run's init probe is the uniform random policy on [-1, 1] (mean 0, std 1/sqrt(3),
    entropy ln 2 per dim, no critic): it does not depend on the init and says nothing about it."""
    cols = summary[["mean_abs_mean", "std", "entropy"]].to_numpy(dtype=float)
    return bool(
        np.all(np.abs(cols[:, 0]) < 1e-9)
        and np.allclose(cols[:, 1], 1 / np.sqrt(3), atol=1e-6)
        and np.allclose(cols[:, 2], np.log(2.0), atol=1e-6)
        and summary["critic_scale"].isna().all()
    )


def _title(ctx: _Context) -> str:
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


def _save(ctx: _Context, fig: Any, fig_dir: Path, name: str, section: str, caption: str) -> None:
    _write_figure(ctx, fig, fig_dir / name)
    ctx.figures.append((section, name, caption))


def _write_figure(ctx: _Context, fig: Any, stem: Path) -> None:
    ctx.written += plots.save_figure(fig, stem, formats=ctx.formats, dpi=ctx.dpi)


def _drop_stale_figures(ctx: _Context, fig_dir: Path) -> None:
    """Remove figure files an earlier report left in ``fig_dir`` that this one did not write."""
    keep = {p.resolve() for p in ctx.written}
    for path in fig_dir.iterdir():
        if path.suffix.lstrip(".") in FIGURE_FORMATS and path.resolve() not in keep:
            path.unlink()


FIGURE_FORMATS = ("png", "svg", "pdf")
HTML_IMAGES = ("inline", "link")


def _check_formats(formats: Sequence[str], dpi: int) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats or formats[0] != "png":
        raise AnalysisError(
            f"figure formats {list(formats)}: the first must be png (report.md and the HTML "
            f"show PNGs), the others any of {list(FIGURE_FORMATS)}"
        )
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 30 <= dpi <= 600:
        raise AnalysisError(f"dpi must be an integer in [30, 600], got {dpi!r}")
    return formats


def _command_line(
    group: Sequence[str] | None,
    threshold: float | None,
    metric: str | None,
    mode: str | None,
    last_k: int | None,
    up_to: float | None,
    out_dir: str | Path | None,
    seeds: Sequence[int] | None = None,
) -> str:
    """The ``sweep report`` options that shape the numbers (so a report says how it was made)."""
    parts = ["sweep report"]
    if group:
        parts.append("--group " + " ".join(group))
    if threshold is not None:
        parts.append(f"--threshold {threshold:g}")
    if metric:
        parts.append(f"--metric {metric}")
    if mode:
        parts.append(f"--mode {mode}")
    if last_k is not None:
        parts.append(f"--last-k {last_k}")
    if up_to is not None:
        parts.append(f"--up-to {up_to:g}")
    if seeds is not None:
        parts.append("--seeds " + " ".join(str(x) for x in seeds))
    if out_dir is not None:
        parts.append(f"--out {out_dir}")
    return " ".join(parts)


def _grid_order(grid: dict[str, list[Any]], key: str, frame: pd.DataFrame) -> list[Any]:
    present = frame[key].dropna().unique().tolist()
    declared = [v for v in grid.get(key, []) if v in present]
    return declared + sorted(v for v in present if v not in declared)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "env"


def _n(ctx: _Context, state: str) -> int:
    return int((ctx.trials["state"] == state).sum())


# --------------------------------------------------------------------------------------------
# the declared score, identical runs, paired tables


@dataclass
class _Scoring:
    """The score a sweep declares (``analysis:``) and what this view changes about it."""

    last_k: int | None  # final = mean of the last k evaluations ...
    window: tuple[float, float] | None  # ... or of those in [from, to] (env steps)
    threshold: float | None  # declared steps-to-threshold value
    auc: bool  # the AUC is a declared score
    declared_text: str  # what was declared, in words
    source_text: str  # where the declaration comes from
    after_runs: bool  # declared after the runs (only in the current sweep file)
    exploratory: list[str] = field(default_factory=list)  # what this view changes
    threshold_exploratory: bool = False

    @property
    def final_text(self) -> str:
        if self.window is not None:
            lo, hi = self.window
            return f"mean of its evaluations at {lo:,.0f}-{hi:,.0f} env steps"
        return f"mean of its last {self.last_k} evaluations"

    @property
    def tag(self) -> str:
        """Suffix for every table this view's final score touches."""
        return " (exploratory)" if self.exploratory else ""

    @property
    def auc_tag(self) -> str:
        return "" if self.auc else " (not a declared score)"


def _final_words(final: dict[str, Any]) -> str:
    if "last" in final:
        return f"mean of the last {final['last']} evaluations"
    return f"mean of the evaluations at {final['from']:,.0f}-{final['to']:,.0f} env steps"


def _declared_analysis(info: Any, sweep_dir: Path) -> tuple[dict[str, Any] | None, str, bool]:
    """``(analysis, where, after_runs)``: the declared score of a sweep directory.

    In order: ``sweep_resolved.json`` (what the run recorded), the sweep file the run was
    started with (``sweep.yaml``, copied at the start), and the sweep file named by ``source``
    (or the shipped ``sweeps/`` file of that name): a declaration found only there was added
    after the runs, and the report says so. Validated by ``sweeps.schema.parse_analysis`` (the
    same rules and messages as ``sweep validate``; imported lazily, torch- and Ray-free).
    """
    recorded = info.resolved.get("analysis")
    if recorded:
        return recorded, "recorded in `sweep_resolved.json` when the sweep started", False
    candidates = [(sweep_dir / "sweep.yaml", False)]
    source = info.resolved.get("source")
    if source:
        from sweeps.schema import SWEEPS_DIR

        candidates += [(Path(source), True), (SWEEPS_DIR / Path(source).name, True)]
    for path, after in candidates:
        if not path.is_file():
            continue
        parsed = _read_analysis(path, info.budget)
        if parsed is None:
            continue
        if after:
            where = (
                f"declared in `{path.parent.name}/{path.name}` after these runs (the sweep file "
                "they ran with has no `analysis:` block)"
            )
        else:
            where = "declared in the sweep file the runs were started with (`sweep.yaml`)"
        return parsed, where, after
    return None, "", False


def _read_analysis(path: Path, budget: str | None) -> dict[str, Any] | None:
    import yaml

    from sweeps.schema import parse_analysis

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise AnalysisError(f"cannot read the declared score in {path}: {err}") from None
    if not isinstance(data, dict):
        return None
    top_raw = data.get("analysis")
    budgets = data.get("budgets")
    entry = budgets.get(budget) if isinstance(budgets, dict) and isinstance(budget, str) else None
    budget_raw = entry.get("analysis") if isinstance(entry, dict) else None
    if top_raw is None and budget_raw is None:
        return None
    problems: list[Any] = []
    top = None
    if top_raw is not None:
        top, problems = parse_analysis(top_raw, ("analysis",))
    spec = top
    if budget_raw is not None and not problems:
        spec, problems = parse_analysis(budget_raw, ("budgets", budget, "analysis"), base=top)
    if problems:
        raise AnalysisError("; ".join(pr.format(str(path)) for pr in problems))
    return spec.resolved()


def _scoring(
    sweep_dir: Path,
    info: Any,
    last_k: int | None,
    up_to: float | None,
    threshold: float | None,
    metric: str | None,
    mode: str | None,
) -> _Scoring:
    declared, where, after = _declared_analysis(info, sweep_dir)
    if declared is None:
        final: dict[str, Any] = {"last": 3}
        declared_text = "default"
        where = "the default: the sweep file declares no `analysis:`"
    else:
        final = declared.get("final") or {"last": 3}
        declared_text = "declared"
    declared_threshold = declared.get("threshold") if declared else None
    k, window = final.get("last"), None
    if "from" in final:
        window = (float(final["from"]), float(final["to"]))
    reasons = []
    if last_k is not None and (window is not None or last_k != k):
        reasons.append(
            f"final score = mean of the last {last_k} evaluations (`--last-k {last_k}`), "
            f"not the {declared_text} {_final_words(final)}"
        )
        k, window = last_k, None
    if up_to is not None:
        reasons.append(
            f"`--up-to {up_to:g}`: performance at {up_to:,.0f} env steps, not the "
            f"{declared_text} final score"
        )
        if window is not None:  # the window lies beyond the cut: the last evaluations before it
            k, window = 3, None
    if metric and metric != info.metric:
        reasons.append(f"metric `{metric}` is not the sweep's metric `{info.metric}`")
    if mode and mode != info.mode:
        reasons.append(f"mode `{mode}` is not the sweep's mode `{info.mode}`")
    threshold_exploratory = threshold is not None and (
        declared_threshold is None or float(threshold) != float(declared_threshold)
    )
    if threshold_exploratory:
        reasons.append(
            f"steps-to-threshold at `--threshold {threshold:g}`, a value not declared in the "
            "sweep file"
        )
    return _Scoring(
        last_k=k if window is None else None,
        window=window,
        threshold=None if declared_threshold is None else float(declared_threshold),
        auc=bool(declared and declared.get("auc")),
        declared_text=f"{declared_text} score: {_final_words(final)}",
        source_text=where,
        after_runs=after,
        exploratory=reasons,
        threshold_exploratory=threshold_exploratory,
    )


def _init_records(sweep_dir: Path, trials: pd.DataFrame) -> dict[str, str]:
    """Trial id -> its ``init_record.json`` as text (trials without one are left out)."""
    out = {}
    for trial_id in trials["trial_id"]:
        path = sweep_dir / "trials" / str(trial_id) / "init_record.json"
        if path.is_file():
            try:
                out[str(trial_id)] = json.dumps(json.loads(path.read_text()), sort_keys=True)
            except (OSError, ValueError):
                continue
    return out


def _count_once(
    df: pd.DataFrame, group: Sequence[str], records: dict[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    """Drop runs that repeat another run exactly, and runs without a value of a group key."""
    notes = []
    twins = stats.identical_runs(df, records)
    if len(twins):
        dropped = set(zip(twins["trial_id"], twins["seed"], strict=True))
        mask = pd.Series(
            [(t, s) in dropped for t, s in zip(df["trial_id"], df["seed"], strict=True)],
            index=df.index,
        )
        first = twins.iloc[0]
        trials = sorted(set(twins["trial_id"]))
        notes.append(
            f"**Identical runs counted once:** {len(twins)} run(s) of {len(trials)} trial(s) "
            "repeat another run exactly (same env, seed and init record, every metric equal at "
            f"every evaluation), e.g. `{first['trial_id']}` seed {first['seed']} = "
            f"`{first['same_as_trial']}`: their settings change nothing for these runs. The "
            "repeats are left out of every statistic (the first trial by id is kept); left "
            f"out: {_list([f'`{t}`' for t in trials], 4)}."
        )
        df = df[~mask]
    if group:
        # a run with no value of any group key forms no group (dreamer's runs in a view grouped
        # by ``mb_ppo.return_estimator``); one that lacks only some keys keeps its group
        missing = df[list(group)].isna().all(axis=1)
        if missing.any():
            lacking = df[missing]
            n = lacking.groupby(["trial_id", "seed"], dropna=False).ngroups
            who = ""
            if "agent" in lacking:
                who = " (agent " + ", ".join(sorted(map(str, lacking["agent"].unique()))) + ")"
            notes.append(
                f"**Runs without a group value left out:** {n} run(s){who} have no value of "
                f"{_keys_text([k for k in group if lacking[k].isna().any()])}: the setting does "
                "not apply to them, so they form no group here."
            )
            df = df[~missing]
    return df, notes


def _paired(ctx: _Context) -> bool:
    return bool(len(ctx.poi)) and bool((ctx.poi["analysis"] == "paired").any())


def _score_lines(ctx: _Context) -> list[str]:
    sc = ctx.scoring
    lines = []
    if sc.exploratory:
        lines.append(
            "**Exploratory view** (not the declared score; read its verdicts as hypotheses): "
            + "; ".join(sc.exploratory)
            + "."
        )
    auc = (
        "the normalised AUC of the eval curve is a declared score too"
        if sc.auc
        else "the AUC is shown beside it but is not a declared score"
    )
    lines.append(
        f"**Score:** final score of a run = {sc.final_text}; {sc.source_text}"
        + (f"; this view replaces the {sc.declared_text}" if sc.exploratory else "")
        + f"; {auc}."
    )
    if _paired(ctx):
        seeds = ", ".join(str(s) for s in ctx.info.seeds) or "the same seeds"
        pooled = bool(len(ctx.intervals)) and bool(
            (ctx.intervals["n_clusters"] < ctx.intervals["n_runs"]).any()
        )
        text = (
            f"**Analysis: paired by seed.** The groups share seeds ({seeds}); a seed gives the "
            "same env seeds and evaluation start states in every arm, so comparisons use "
            "per-seed differences and CIs that resample seeds, not runs."
        )
        if pooled:
            text += (
                " Groups pool several runs per seed (other factors"
                + (f": {_keys_text(ctx.match_keys)}" if ctx.match_keys else "")
                + "): their CIs resample whole seeds, and runs are matched on seed and on the "
                "pooled factors' values."
            )
        n_disagree = int((~ctx.poi["agree"]).sum()) // 2 if "agree" in ctx.poi else 0
        text += (
            f" The unpaired analysis reaches another verdict for {n_disagree} pair(s); both "
            "are shown in the tables below."
            if n_disagree
            else " The unpaired analysis reaches the same verdicts."
        )
        lines.append(text)
    elif len(ctx.poi):
        lines.append(
            "**Analysis: unpaired**: the groups share fewer than two seeds, so runs are treated "
            "as independent and CIs resample runs."
        )
    lines += ctx.notes
    return lines


def _pair_headers(ctx: _Context, first: str, a: str, b: str) -> list[str]:
    auc = "AUC: " + f"P({a} {ctx.cmp} {b})" + ("" if ctx.scoring.auc else " (not declared)")
    if not _paired(ctx):
        return [first, f"P({a} {ctx.cmp} {b}) [95% CI]", auc, "Verdict"]
    return [
        first,
        f"P({a} {ctx.cmp} {b}), paired [95% CI]",
        f"Seeds where {a} is better",
        f"Mean difference {a} − {b} [95% CI]",
        f"Unpaired P({a} {ctx.cmp} {b}) [95% CI]",
        auc + ", paired",
        "Verdict",
    ]


def _pair_rows(
    ctx: _Context, table: pd.DataFrame, auc_table: pd.DataFrame, best: bool = False
) -> list[list[str]]:
    auc = auc_table.set_index(["a", "b"]) if len(auc_table) else None
    rows = []
    for r in table.itertuples():
        auc_cell = "-"
        if auc is not None and (r.a, r.b) in auc.index:
            q = auc.loc[(r.a, r.b)]
            auc_cell = _ci(q["p"], q["low"], q["high"], digits=2)
        verdict = _verdict(r.low, r.high, r.a, r.b, r.n_min, paired=r.analysis == "paired")
        if r.analysis == "paired" and verdict.startswith("supported") and not r.supported:
            verdict = (
                "not supported (P's CI excludes 0.5, but the mean difference's CI includes 0 "
                "or points the other way)"
            )
        if not _paired(ctx):
            rows.append([r.b, _ci(r.p, r.low, r.high, digits=2), auc_cell, verdict])
            continue
        if r.analysis != "paired":
            rows.append([r.b, _ci(r.p, r.low, r.high, digits=2), "-", "-", "(unpaired: no "
                         "shared seeds)", auc_cell, verdict])
            continue
        if not r.agree:
            other = _verdict(
                r.low_unpaired, r.high_unpaired, r.a, r.b, int(r.n_min_unpaired)
            )
            verdict += f" (unpaired: {other})"
        seeds = f"{int(r.wins)} of {int(r.n_seeds)}" + (
            f" (sign test p = {r.sign_p:.2g})" if r.wins + r.losses else ""
        )
        rows.append(
            [
                r.b,
                _ci(r.p, r.low, r.high, digits=2),
                seeds,
                _ci(r.diff, r.diff_low, r.diff_high),
                _ci(r.p_unpaired, r.low_unpaired, r.high_unpaired, digits=2),
                auc_cell,
                verdict,
            ]
        )
    return rows


# --------------------------------------------------------------------------------------------
# composition


def _compose(ctx: _Context, elapsed: float) -> _Doc:
    info, trials = ctx.info, ctx.trials
    doc = _Doc(svg="svg" in ctx.formats, inline_images=ctx.inline_images)
    n_total = len(trials)
    states = list(STATE_WORDS)
    states += sorted(set(trials["state"]) - set(states))  # e.g. "unknown": unreadable status
    counts = {s: _n(ctx, s) for s in states}
    doc.h(1, f"Sweep report: {_title(ctx)}")
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    doc.p(
        f"Generated {now} from `{ctx.sweep_dir}` by `{ctx.command}` in {elapsed:.0f} s. "
        f"Metric: `{ctx.metric}`, **{ctx.direction}** (mode `{ctx.mode}`)."
    )
    for line in _score_lines(ctx):
        doc.p(line)
    if ctx.up_to is not None:
        doc.p(
            f"**Budget cut:** only evaluations at env steps <= {ctx.up_to:,.0f} are used, so "
            f"final performance here is performance at {ctx.up_to:,.0f} env steps."
        )
    if ctx.lower:
        doc.p(
            f"Lower `{ctx.metric}` is better: groups are ranked lowest first, P(A < B) is the "
            "probability that A improves on B, and a threshold counts as reached at or below "
            "it. All numbers are in the metric's own units."
        )
    unfinished = n_total - counts["finished"] - counts["failed"]
    if unfinished:
        other = [f"{v} {k}" for k, v in counts.items() if v and k not in STATE_WORDS]
        doc.p(
            f"**Partial data: {counts['finished']} of {n_total} trials finished; running trials "
            f"included up to their last eval** ({counts['running']} running, "
            f"{counts['pending']} pending without data, {counts['failed']} failed and excluded"
            + "".join(f", {o} (status unreadable, treated as running)" for o in other)
            + "). Numbers will change as the sweep progresses."
        )
    elif counts["failed"]:
        doc.p(
            f"**{counts['finished']} of {n_total} trials finished; {counts['failed']} failed and "
            "are excluded from the statistics** (listed below)."
        )

    doc.h(2, "What ran")
    seeds = ", ".join(str(s) for s in info.seeds) or "(not recorded)"
    budget = json.dumps(info.budget) if info.budget is not None else "(not recorded)"
    items = [
        f"Trials: {n_total} ({', '.join(f'{v} {k}' for k, v in counts.items() if v)}); "
        f"runs with data (trial x seed): {len(ctx.runs_all)}.",
        f"Seeds: {seeds}. Budget: `{budget}`.",
        f"Compared groups: unique combinations of {_keys_text(ctx.group)}; "
        f"{len(ctx.order[ctx.scopes[-1]])} groups. Envs: {', '.join(ctx.envs)}.",
    ]
    doc.ul(items + ([ctx.diag_note] if ctx.diag_note else []))
    if info.grid:
        doc.table(
            ["Key", "Values"],
            [[f"`{k}`", ", ".join(str(v) for v in vals)] for k, vals in info.grid.items()],
        )
    env_rows = []
    for env in ctx.envs:
        sub = ctx.runs_all[ctx.runs_all["env"] == env]
        scores = [_num(sub[f"env_score_{k}"].iloc[0]) for k in ("random", "reference")]
        threshold = _num(ctx.thresholds[env]) if env in ctx.thresholds else "-"
        env_rows.append([env, *(scores if ctx.returns else []), threshold])
    score_headers = ["Random score", "Reference score"] if ctx.returns else []
    doc.table(["Env", *score_headers, "Threshold for steps-to-threshold"], env_rows)
    reached = "at or below" if ctx.lower else "at or above"
    if ctx.thresholds:
        doc.p(
            f"Threshold for steps-to-threshold: {ctx.threshold_rule}; reached when a group's "
            f"IQM learning curve is {reached} it."
        )
    failed = trials[trials["state"] == "failed"]
    if len(failed):
        doc.h(3, f"Failed trials ({len(failed)}, excluded from the statistics)")
        keys = [k for k in ctx.group if k in failed.columns]
        labels = stats.group_labels(failed, keys)
        rows = []
        for (_, rec), label in zip(failed.iterrows(), labels, strict=True):
            progress = f"{_int(rec['env_steps'])} / {_int(rec['planned_steps'])}"
            rows.append(
                [f"`{rec['trial_id']}`", label, rec["env"], progress, _first_line(rec["error"])]
            )
        doc.table(["Trial", "Group", "Env", "Env steps reached", "Error"], rows)
    damaged = trials[trials["state"] == "damaged"]
    if len(damaged):
        doc.h(3, f"Damaged trials ({len(damaged)}, excluded from the statistics)")
        doc.p(
            "Their files fail validation (sweeps/trialdir.py), so none of their numbers is "
            "used; nothing was changed on disk. `sweep report --strict` makes this an error."
        )
        rows = [
            [f"`{ctx.sweep_dir / 'trials' / str(rec['trial_id'])}`", rec["env"],
             str(rec["damage"])]
            for _, rec in damaged.iterrows()
        ]
        doc.table(["Trial directory", "Env", "Defects"], rows)

    doc.h(2, "How to read the numbers")
    has_gap = bool((ctx.intervals["metric"] == "optimality_gap").any())
    quantity = "return" if ctx.returns else f"`{ctx.metric}`"
    doc.ul(
        [
            f"**Direction**: {ctx.direction} for `{ctx.metric}` (mode `{ctx.mode}`); every "
            "ranking, best group, probability of improvement and threshold follows it.",
            f"**Final performance** of a run (one trial x seed) = {ctx.scoring.final_text} "
            f"({ctx.scoring.source_text}); this smooths over single lucky or unlucky "
            "evaluations.",
            "**IQM** = interquartile mean over runs (mean of the middle 50%), robust to "
            "outlier seeds; **mean/median** are over envs of the per-env mean (median only "
            "across envs)"
            + (
                "; **optimality gap** = how far runs fall short of the reference score "
                "(lower is better)."
                if has_gap
                else "."
            ),
            f"**95% CIs**: stratified percentile bootstrap over runs ({ctx.reps} resamples), "
            "resampling seeds within each env (rliable's method, via scipy); a group that pools "
            "several runs per seed (other factors pooled) resamples whole seeds, never counting "
            "runs that share a seed as independent.",
            f"**AUC** = area under the run's learning curve divided by its length: the average "
            f"{quantity} during training (a learning-speed measure"
            + ("; lower is better)." if ctx.lower else ").")
            + " Running trials' AUC covers only the steps they reached.",
            f"**Probability of improvement** P(A {ctx.cmp} B) = the chance that a run of A "
            f"{'scores lower than' if ctx.lower else 'beats'} a run of B on the same env (ties "
            "count half). **Supported** = its 95% CI excludes 0.5 and each group has at least "
            f"{stats.MIN_RUNS_FOR_SUPPORT} runs (with fewer, no rank test can reach 5% and the "
            "bootstrap CI is degenerate, so no verdict is drawn). "
            "**Not supported** means this data cannot tell the groups apart, not that they are "
            "equal; more seeds may resolve it.",
            "**Paired by seed** (when the groups share seeds): runs of two groups with the same "
            "seed (and, for pooled groups, the same values of the pooled factors) are matched; "
            "P(A better than B) is the share of matched pairs A wins, averaged per seed, with a "
            "CI that resamples seeds; the mean difference A - B per seed comes with its own CI. "
            "Supported = that CI of P excludes 0.5, the mean difference's CI excludes 0 on the "
            f"same side, and there are at least {stats.MIN_SEEDS_FOR_SUPPORT} matched seeds. "
            "When every seed agrees the bootstrap "
            "CI is [1, 1] (or [0, 0]); the exact sign test beside it says how much that is "
            "worth with few seeds (5 of 5: p = 0.062).",
        ]
        + (
            [
                "**Steps to threshold** = first env step at which a group's IQM learning curve "
                f"is {reached} the threshold ({ctx.threshold_rule})."
            ]
            if ctx.thresholds
            else []
        )
        + (
            [
                "Across envs, scores are normalised per env: 0 = random policy, 1 = reference "
                "score (`env_scores` in status.json)."
            ]
            if AGG_ENV in ctx.scopes
            else []
        )
    )

    doc.h(2, "Figures")
    for section, name, caption in ctx.figures:
        doc.h(3, section)
        doc.figure(f"report/figures/{name}", caption)

    doc.h(
        2,
        "Ranking (final performance, 95% CIs"
        + ("; lower is better, lowest IQM first)" if ctx.lower else ")")
        + ctx.scoring.tag,
    )
    for scope in ctx.scopes:
        doc.h(3, scope)
        headers, rows = _ranking_rows(ctx, scope)
        doc.table(headers, rows)

    doc.h(2, "Which differences are supported" + ctx.scoring.tag)
    doc.p(
        f"Each group against the best group by IQM: P(best {ctx.cmp} group) is the chance that "
        "a run of the best group beats a run of the other group on the same env"
        + (f" (has a lower `{ctx.metric}`)" if ctx.lower else "")
        + (
            ", matched by seed (and by the pooled factors' values): the same seed gives the "
            "same env seeds and evaluation start states in every arm, so each seed's "
            "difference is the evidence and the CIs resample seeds. The unpaired analysis "
            "(independent runs) is shown beside it."
            if _paired(ctx)
            else "."
        )
    )
    for scope in ctx.scopes:
        doc.h(3, scope)
        doc.p(_verdict_summary(ctx, scope))
        if len(ctx.vs_best[scope]):
            doc.table(
                _pair_headers(ctx, f"Group vs best (**{ctx.best[scope]}**)", "best", "group"),
                _pair_rows(ctx, ctx.vs_best[scope], ctx.vs_best_auc[scope], best=True),
            )
    n_groups = len(ctx.order[ctx.scopes[-1]])
    if 2 < n_groups <= 8:
        doc.h(
            3,
            "All pairs"
            + (" (averaged over envs)" if len(ctx.envs) > 1 else "")
            + ctx.scoring.tag,
        )
        # each unordered pair once, in the direction of the more likely winner
        rank = {g: i for i, g in enumerate(ctx.order[ctx.scopes[-1]])}
        poi = ctx.poi
        ahead = (poi["p"] > 0.5) | ((poi["p"] == 0.5) & (poi["a"].map(rank) < poi["b"].map(rank)))
        pairs = poi[ahead].sort_values("p", ascending=False, kind="stable")
        doc.table(
            ["A", *_pair_headers(ctx, "B", "A", "B")],
            [
                [r.a, *row]
                for r, row in zip(
                    pairs.itertuples(), _pair_rows(ctx, pairs, ctx.poi_auc), strict=True
                )
            ],
        )
    elif n_groups > 8:
        doc.p(
            "All pairwise probabilities with CIs are in the matrix figure and "
            "`report/poi_pairs.csv`."
        )
    if n_groups > 2:
        doc.p(
            f"With {n_groups} groups there are {n_groups * (n_groups - 1) // 2} pairs; at a 95% "
            "level about 1 in 20 true ties will look supported by chance (no multiple-comparison "
            "correction is applied)."
        )

    if ctx.diag_table is None:
        if not ctx.diag_note:  # an uninformative probe gets no section (a line in "What ran")
            doc.h(2, "Init diagnostics")
            doc.p("No `init_diagnostics.json` in any trial; skipped.")
    else:
        doc.h(2, "Init diagnostics")
        doc.p(
            "Action statistics of the untrained policy (averaged over seeds and action dims). "
            "The notes' criterion: good coverage of the action space without clipping at the "
            "bounds (clipped actions are oversampled)."
        )
        t = ctx.diag_table
        doc.table(
            [
                "Env",
                "Group",
                "Runs",
                "Coverage",
                "Clip fraction",
                "Entropy",
                "Mean |mean|",
                "Std",
                "Critic scale",
            ],
            [
                [r.env, r.group, str(r.runs), *(_num(getattr(r, c)) for c in _DIAG_COLUMNS)]
                for r in t.itertuples()
            ],
        )
        for name, caption in ctx.diag_figures:
            doc.figure(f"report/figures/{name}", caption)

    if ctx.tuning is not None:
        tuning_report.compose(doc, ctx.tuning)

    doc.h(2, "Files")
    doc.ul(
        [
            "`report/metrics.parquet`: the tidy table (one row per run x evaluation).",
            "`report/final_scores.csv`: final score and AUC per run (failed runs included, "
            "marked).",
            "`report/intervals.csv`, `report/poi_pairs.csv` (final score: paired and unpaired "
            "P, per-seed differences), `report/poi_pairs_auc.csv` (the same for the AUC): the "
            "numbers behind the tables.",
            "`report/figures/`: every figure as "
            + " and ".join(f.upper() for f in ctx.formats)
            + ".",
        ]
    )
    return doc


def _ranking_rows(ctx: _Context, scope: str) -> tuple[list[str], list[list[str]]]:
    table = ctx.intervals[ctx.intervals["env"] == scope]
    metrics = [m for m in stats.AGGREGATES if m in set(table["metric"])]
    auc = ctx.auc[ctx.auc["env"] == scope].set_index("group")
    steps = ctx.steps[ctx.steps["env"] == scope].set_index("group") if len(ctx.steps) else None
    runs = ctx.runs_all if scope == AGG_ENV else ctx.runs_all[ctx.runs_all["env"] == scope]
    labels = stats.group_labels(runs, ctx.group)
    unit = " (normalised)" if scope == AGG_ENV else ""
    headers = ["Rank", "Group", "Runs"] + [plots.METRIC_NAMES[m] + unit for m in metrics]
    headers.append("AUC" + unit + ctx.scoring.auc_tag)
    norm_auc = None
    if scope != AGG_ENV and len(ctx.auc_norm):
        norm_auc = ctx.auc_norm[ctx.auc_norm["env"] == scope].set_index("group")
        headers.append("AUC (normalised)" + ctx.scoring.auc_tag)
    if steps is not None and scope in ctx.thresholds:
        at_most = "≤ " if ctx.lower else ""
        headers.append(
            f"Steps to {at_most}{_num(ctx.thresholds[scope])}"
            + (" (exploratory)" if ctx.scoring.threshold_exploratory else "")
        )
    else:
        steps = None
    rows = []
    for rank, g in enumerate(ctx.order[scope], start=1):
        row = [str(rank), f"**{g}**" if rank == 1 else g, _runs_text(runs[labels == g])]
        for m in metrics:
            rec = table[(table["group"] == g) & (table["metric"] == m)].iloc[0]
            row.append(_ci(rec["estimate"], rec["low"], rec["high"]))
        row.append(_ci(*auc.loc[g, ["estimate", "low", "high"]]) if g in auc.index else "-")
        if norm_auc is not None:
            row.append(
                _ci(*norm_auc.loc[g, ["estimate", "low", "high"]], digits=3)
                if g in norm_auc.index
                else "-"
            )
        if steps is not None:
            row.append(
                _steps_ci(*steps.loc[g, ["estimate", "low", "high"]]) if g in steps.index else "-"
            )
        rows.append(row)
    return headers, rows


def _runs_text(runs: pd.DataFrame) -> str:
    states = runs["state"].value_counts()
    text = str(int(states.get("finished", 0)))
    if states.get("running", 0):
        text += f" + {int(states['running'])} running"
    if states.get("failed", 0):
        text += f" ({int(states['failed'])} failed, excluded)"
    return text


def _verdict(
    low: float, high: float, a: str, b: str, n_min: int, *, paired: bool = False
) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no CI (too few runs)"
    if paired and n_min < stats.MIN_SEEDS_FOR_SUPPORT:
        return (
            f"too few seeds to tell ({n_min} matched seeds; a verdict needs "
            f">= {stats.MIN_SEEDS_FOR_SUPPORT})"
        )
    if n_min < stats.MIN_RUNS_FOR_SUPPORT:
        return (
            f"too few runs to tell ({n_min} in the smaller group; a verdict needs "
            f">= {stats.MIN_RUNS_FOR_SUPPORT} in each)"
        )
    if low > 0.5:
        return f"supported: {a} better"
    if high < 0.5:
        return f"supported: {b} better"
    return "not supported (CI includes 0.5)"


def _verdict_rows(table: pd.DataFrame, best: str) -> list[list[str]]:
    return [
        [r.b, _ci(r.p, r.low, r.high, digits=2), _verdict(r.low, r.high, best, r.b, r.n_min)]
        for r in table.itertuples()
    ]


def _verdict_summary(ctx: _Context, scope: str) -> str:
    table = ctx.vs_best[scope]
    best = ctx.best[scope]
    if table.empty:
        return f"Only one group (**{best}**); nothing to compare."
    few = table[table["n_min"] < stats.MIN_RUNS_FOR_SUPPORT]["b"].tolist()
    table = table[table["n_min"] >= stats.MIN_RUNS_FOR_SUPPORT]
    if "supported" in table:  # paired: the mean difference must agree with P (stats rule)
        held = ~table["supported"].astype(bool)
        table = table.assign(
            low=np.where(held, np.minimum(table["low"], 0.5), table["low"]),
            high=np.where(held, np.maximum(table["high"], 0.5), table["high"]),
        )
    better = table[table["low"] > 0.5]["b"].tolist()
    unclear = table[~((table["low"] > 0.5) | (table["high"] < 0.5))]["b"].tolist()
    worse = table[table["high"] < 0.5]["b"].tolist()
    iqm = ctx.intervals[(ctx.intervals["env"] == scope) & (ctx.intervals["metric"] == "iqm")]
    iqm = iqm.set_index("group")["estimate"]
    tied = [g for g in ctx.order[scope][1:] if np.isclose(iqm[g], iqm[best])]
    extreme = "lowest" if ctx.lower else "highest"
    head = f"**{best}** has the {extreme} IQM"
    if ctx.lower:
        head += f" (lower `{ctx.metric}` is better)"
    parts = [head + (f", tied with {_list(tied)}." if tied else ".")]
    if better:
        parts.append(
            f"The data support that it beats {len(better)} of {len(table)} other "
            f"groups ({_list(better)})."
        )
    if unclear:
        parts.append(
            f"Against {_list(unclear)} the difference is not supported by the CIs: "
            "these may be as good."
        )
    if worse:
        parts.append(
            f"{_list(worse)} beat it more often than not despite a worse IQM "
            "(skewed score distributions)."
        )
    if few:
        parts.append(
            f"Against {_list(few)} no verdict is drawn: fewer than "
            f"{stats.MIN_RUNS_FOR_SUPPORT} runs per group, too few for any test of a difference "
            "to reach the 5% level (rerun with more seeds)."
        )
    runs = ctx.runs if scope == AGG_ENV else ctx.runs[ctx.runs["env"] == scope]
    n_running = int((runs["state"] == "running").sum())
    if n_running:
        parts.append(f"Includes {n_running} running run(s) up to their last eval (partial).")
    return " ".join(parts)


def _list(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _keys_text(keys: Sequence[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys) if keys else "(none: one group)"


def _num(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if not np.isfinite(v):
        return "-"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _ci(est: float, low: float, high: float, digits: int | None = None) -> str:
    fmt = (lambda v: f"{v:.{digits}f}") if digits is not None else _num
    if not np.isfinite(est):
        return "-"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{fmt(est)} [no CI]"
    return f"{fmt(est)} [{fmt(low)}, {fmt(high)}]"


def _steps_ci(est: float, low: float, high: float) -> str:
    def fmt(v: float) -> str:
        if np.isinf(v):
            return "not reached"
        return "-" if not np.isfinite(v) else f"{v:,.0f}"

    if np.isinf(est) and np.isinf(low):
        return "not reached"
    return f"{fmt(est)} [{fmt(low)}, {fmt(high)}]"


def _int(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "?"


def _first_line(error: Any, limit: int = 160) -> str:
    if error is None or (isinstance(error, float) and np.isnan(error)):
        return "(no error message)"
    line = str(error).strip().splitlines()[-1] if str(error).strip() else ""
    return (line[: limit - 3] + "...") if len(line) > limit else line or "(empty)"


# --------------------------------------------------------------------------------------------
# a tiny document model rendered to Markdown and to self-contained HTML


class _Doc:
    def __init__(self, svg: bool = True, inline_images: bool = True) -> None:
        self.blocks: list[tuple[str, Any]] = []
        self.svg = svg  # link an SVG copy of each figure
        self.inline_images = inline_images  # HTML: PNGs embedded (one file) or linked

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: Sequence[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))

    def figure(self, stem: str, caption: str) -> None:
        self.blocks.append(("figure", (stem, caption)))

    def to_markdown(self) -> str:
        out: list[str] = []
        for kind, data in self.blocks:
            if kind == "h":
                out.append(f"{'#' * data[0]} {data[1]}")
            elif kind == "p":
                out.append(data)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in data))
            elif kind == "table":
                headers, rows = data
                lines = [
                    "| " + " | ".join(_md_cell(h) for h in headers) + " |",
                    "|" + "|".join("---" for _ in headers) + "|",
                ]
                lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "figure":
                stem, caption = data
                link = f" ([SVG]({stem}.svg))" if self.svg else ""
                out.append(f"![{_md_cell(caption)}]({stem}.png)\n\n*{caption}*{link}")
        return "\n\n".join(out) + "\n"

    def to_html(self, root: Path, title: str) -> str:
        """Self-contained HTML: headings with anchors, a table of contents after the title,
        and for each figure the PNG (inlined or linked) or, where the file is missing, a
        visible note naming it (a linked figure deleted later shows the same note)."""
        body: list[str] = []
        toc: list[tuple[int, str, str]] = []
        anchors: set[str] = set()
        for kind, data in self.blocks:
            if kind == "h":
                level, text = data
                anchor = _anchor(text, anchors)
                if level in (2, 3):
                    toc.append((level, anchor, text))
                body.append(f'<h{level} id="{anchor}">{_inline(text)}</h{level}>')
                if level == 1:
                    body.append("<!--toc-->")
            elif kind == "p":
                body.append(f"<p>{_inline(data)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in data) + "</ul>")
            elif kind == "table":
                headers, rows = data
                head = "".join(f"<th>{_inline(h)}</th>" for h in headers)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "figure":
                body.append(self._figure_html(root, *data))
        toc_html = _toc_html(toc)
        body = [toc_html if b == "<!--toc-->" else b for b in body]
        if toc_html and toc_html not in body:
            body.insert(0, toc_html)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Sweep report: {html.escape(title)}</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n"
        )

    def _figure_html(self, root: Path, stem: str, caption: str) -> str:
        path = root / f"{stem}.png"
        if not path.is_file():
            return (
                f'<figure><p class="missing">Figure missing: <code>{html.escape(stem)}.png'
                "</code> was not found when this page was written (rerun <code>sweep report"
                f"</code>).</p><figcaption>{_inline(caption)}</figcaption></figure>"
            )
        if self.inline_images:
            png = base64.b64encode(path.read_bytes()).decode("ascii")
            src = f"data:image/png;base64,{png}"
            fallback = ""
        else:
            src = html.escape(f"{stem}.png")
            note = html.escape(
                f"Figure missing: {stem}.png is not next to this page "
                "(report/figures/ moved or deleted; rerun sweep report)."
            )
            # a linked figure deleted after the page was written: say so, not a broken image
            js = "this.outerHTML='<p class=\"missing\">{}</p>'".format(
                note.replace("\\", "\\\\").replace("'", "\\'")
            )
            fallback = f' onerror="{html.escape(js, quote=True)}"'
        return (
            f'<figure><img alt="{html.escape(caption)}" src="{src}"{fallback}>'
            f"<figcaption>{_inline(caption)}</figcaption></figure>"
        )

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}"
    "figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:.9em;color:#444}"
    "code{background:#f3f3f3;padding:0 .2em}"
    "nav.toc{background:#f7f7f7;border:1px solid #ddd;padding:.4em 1em;margin:1em 0;"
    "font-size:.92em}nav.toc ul{margin:.2em 0;padding-left:1.2em}"
    ".missing{border:2px dashed #b00;color:#b00;background:#fff4f4;padding:1em;"
    "font-weight:600}"
)


def _anchor(text: str, taken: set[str]) -> str:
    """A unique HTML id for a heading: lower-case words joined by hyphens."""
    base = re.sub(r"[^a-z0-9]+", "-", re.sub(r"[`*]", "", str(text)).lower()).strip("-")
    base = base or "section"
    anchor, k = base, 2
    while anchor in taken:
        anchor, k = f"{base}-{k}", k + 1
    taken.add(anchor)
    return anchor


def _toc_html(toc: Sequence[tuple[int, str, str]]) -> str:
    """Nested list of links to the h2 (and their h3) headings."""
    if not toc:
        return ""
    out = ['<nav class="toc"><strong>Contents</strong><ul>']
    open_sub = False
    for level, anchor, text in toc:
        link = f'<a href="#{anchor}">{_inline(text)}</a>'
        if level == 3:
            if not open_sub:
                out.append("<ul>")
                open_sub = True
            out.append(f"<li>{link}</li>")
            continue
        if open_sub:
            out.append("</ul>")
            open_sub = False
        out.append(f"<li>{link}</li>")
    if open_sub:
        out.append("</ul>")
    out.append("</ul></nav>")
    return "".join(out)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    """Markdown-lite to HTML: escape, then **bold** and `code`."""
    out = html.escape(str(text), quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
