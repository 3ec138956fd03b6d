"""The stages of ``sweep report``, in order: load, compute, draw, write.

Part of :mod:`analysis.report`: :func:`analysis.report.write_report` checks its arguments into
:class:`Options`, runs :func:`load`, each of :data:`STEPS` and :func:`write`, and shows them as
the stages of its progress bar (:data:`STAGES`).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import stats, tuning_report
from analysis.load import (
    AnalysisError,
    config_columns,
    load_sweep,
    load_trials,
    metric_columns,
    read_sweep_info,
)
from analysis.report_compute import compute_improvement, compute_intervals
from analysis.report_context import ReportContext, report_title
from analysis.report_figures import (
    draw_figures,
    draw_init_diagnostics,
    drop_stale_figures,
    write_figure,
)
from analysis.report_inputs import check_metric, check_mode, count_once, group_keys, init_records
from analysis.report_scoring import Scoring, read_scoring
from analysis.report_sections import compose


@dataclass(frozen=True)
class Options:
    """The arguments of :func:`analysis.report.write_report`, checked."""

    sweep_dir: Path
    group: Sequence[str] | None
    threshold: float | None
    metric: str | None
    mode: str | None
    last_k: int | None
    reps: int
    curve_reps: int
    seed: int
    out_dir: str | Path | None
    up_to: float | None
    seeds: Sequence[int] | None
    formats: tuple[str, ...]
    dpi: int
    inline_images: bool
    strict: bool
    also: tuple[str, ...]  # more metrics (patterns) for the exploratory paired table
    versus: str | None  # the group they are compared with (None: the best, per env)
    command: str  # the options that shape the numbers, as a command line
    started: float  # time.perf_counter() when the report started

    @property
    def root(self) -> Path:
        """Where ``report.md``, ``report.html`` and ``report/`` go."""
        return Path(self.out_dir) if self.out_dir is not None else self.sweep_dir

    @property
    def out(self) -> Path:
        """``report/``: the tidy table, the CSVs, ``figures/``."""
        return self.root / "report"


# --------------------------------------------------------------------------------------------
# load


def load(opts: Options) -> ReportContext:
    """Read the sweep, cut it to this view, check the options; write ``metrics.parquet``."""
    sweep_dir = opts.sweep_dir
    info = read_sweep_info(sweep_dir)
    trials = load_trials(sweep_dir, strict=opts.strict)  # strict: a damaged trial is an error
    df = _cut_steps(load_sweep(sweep_dir, trials=trials), opts)
    scoring = read_scoring(
        sweep_dir, info, opts.last_k, opts.up_to, opts.threshold, opts.metric, opts.mode
    )
    df = _cut_seeds(df, opts, scoring)
    metric = opts.metric or info.metric
    mode = check_mode(opts.mode or info.mode, sweep_dir)
    check_metric(df, metric, sweep_dir)
    group = group_keys(df, opts.group, sweep_dir, info.varying_keys)
    match_keys = [k for k in config_columns(df) if k not in (*group, "env", "seed")]
    df, notes = count_once(df, group, init_records(sweep_dir, trials))
    ctx = ReportContext(
        sweep_dir,
        info,
        trials,
        df,
        metric,
        list(group),
        scoring.last_k or 0,
        opts.reps,
        opts.seed,
        mode=mode,
        up_to=opts.up_to,
        formats=opts.formats,
        dpi=opts.dpi,
        inline_images=opts.inline_images,
        command=opts.command,
    )
    ctx.scoring, ctx.notes, ctx.match_keys = scoring, notes, match_keys
    opts.root.mkdir(parents=True, exist_ok=True)
    (opts.out / "figures").mkdir(parents=True, exist_ok=True)
    df.to_parquet(opts.out / "metrics.parquet", index=False)
    return ctx


def _cut_steps(df: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Only the evaluations at env steps <= ``up_to`` (all without ``--up-to``)."""
    up_to = opts.up_to
    if up_to is not None:
        df = df[df["env_step"].isna() | (df["env_step"] <= up_to)]
        if not (df["env_step"] <= up_to).any():
            raise AnalysisError(
                f"no evaluation at or before env step {up_to:g} in {opts.sweep_dir}"
            )
    return df


def _cut_seeds(df: pd.DataFrame, opts: Options, scoring: Scoring) -> pd.DataFrame:
    """Only the runs of ``seeds`` (all without ``--seeds``): an exploratory view."""
    seeds = opts.seeds
    if seeds is not None:
        df = df[df["seed"].isin(list(seeds))]
        if df.empty:
            raise AnalysisError(f"no runs of seeds {list(seeds)} in {opts.sweep_dir}")
        scoring.exploratory.append(
            "only seeds " + ", ".join(str(x) for x in seeds) + " (`--seeds`)"
        )
    return df


# --------------------------------------------------------------------------------------------
# compute and draw


def final_scores(ctx: ReportContext, opts: Options) -> None:
    """Final score and AUC per run; ``report/final_scores.csv``."""
    ctx.runs_all = stats.final_scores(
        ctx.df,
        ctx.metric,
        last_k=ctx.scoring.last_k or 3,
        window=ctx.scoring.window,
        include_failed=True,
    )
    ctx.runs = ctx.runs_all[ctx.runs_all["state"] != "failed"].reset_index(drop=True)
    if ctx.runs.empty:
        raise AnalysisError(
            f"no usable runs in {ctx.sweep_dir}: every run with values of {ctx.metric!r} failed"
        )
    ctx.runs_all.to_csv(opts.out / "final_scores.csv", index=False)


def intervals(ctx: ReportContext, opts: Options) -> None:
    """Intervals, thresholds and the ranking; ``report/intervals.csv``."""
    threshold, scoring = opts.threshold, ctx.scoring
    compute_intervals(ctx, threshold if threshold is not None else scoring.threshold)
    if threshold is None and scoring.threshold is not None:
        ctx.threshold_rule = (
            f"declared in the sweep file (`analysis.threshold: {scoring.threshold:g}`)"
        )
    ctx.intervals.to_csv(opts.out / "intervals.csv", index=False)


def improvement(ctx: ReportContext, opts: Options) -> None:
    """Probabilities of improvement; ``report/poi_pairs.csv`` and ``poi_pairs_auc.csv``."""
    compute_improvement(ctx)
    ctx.poi.to_csv(opts.out / "poi_pairs.csv", index=False)
    ctx.poi_auc.to_csv(opts.out / "poi_pairs_auc.csv", index=False)


def other_metrics(ctx: ReportContext, opts: Options) -> None:
    """``--also``: more metrics, each group vs ``--versus`` paired by seed;
    ``report/other_metrics.csv``."""
    if not opts.also:
        return
    names = metric_columns(ctx.df)
    chosen = [m for m in names if any(fnmatch.fnmatchcase(m, p) for p in opts.also)]
    missing = [p for p in opts.also if not any(fnmatch.fnmatchcase(m, p) for m in names)]
    if missing:
        prefixes = sorted({m.rsplit("/", 1)[0] + "/*" for m in names})
        raise AnalysisError(
            f"--also {' '.join(missing)}: no such metric in {ctx.sweep_dir}; its metrics: "
            + ", ".join(prefixes)
        )
    labels = set(stats.group_labels(ctx.runs, ctx.group))
    if opts.versus is not None and opts.versus not in labels:
        raise AnalysisError(
            f"--versus {opts.versus!r}: no such group in {ctx.sweep_dir}; groups: "
            + ", ".join(repr(g) for g in sorted(labels))
        )
    tables = []
    for env in ctx.envs:
        versus = opts.versus if opts.versus is not None else ctx.best[env]
        table = stats.paired_metric_table(
            ctx.df[ctx.df["env"] == env],
            chosen,
            ctx.group,
            versus,
            last_k=ctx.scoring.last_k or 3,
            window=ctx.scoring.window,
            match=ctx.match_keys,
            reps=opts.reps,
            seed=opts.seed,
        )
        tables.append(table.assign(versus=versus))
    ctx.other = pd.concat(tables, ignore_index=True)
    ctx.other.to_csv(opts.out / "other_metrics.csv", index=False)


def learning_curves(ctx: ReportContext, opts: Options) -> None:
    """IQM learning curves with bootstrap bands."""
    ctx.curves = stats.learning_curves(
        ctx.df, ctx.metric, ctx.group, reps=opts.curve_reps, seed=opts.seed, estimator="iqm"
    )


def figures(ctx: ReportContext, opts: Options) -> None:
    """The figures of the Figures section."""
    draw_figures(ctx, opts.out / "figures")


def init_diagnostics(ctx: ReportContext, opts: Options) -> None:
    """Init diagnostics, the tuning-cost section (a sweep with ``search:``), stale figures."""
    fig_dir = opts.out / "figures"
    draw_init_diagnostics(ctx, fig_dir)
    ctx.tuning = tuning_report.build(  # a sweep with `search:`: the tuning-cost section
        ctx.info,
        ctx.runs,
        mode=ctx.mode,
        reps=opts.reps,
        seed=opts.seed,
        thresholds=ctx.thresholds,
        out_dir=opts.out,
        save=lambda fig, name: write_figure(ctx, fig, fig_dir / name),
    )
    drop_stale_figures(ctx, fig_dir)


STEPS: tuple[tuple[str, Callable[[ReportContext, Options], None]], ...] = (
    ("final scores", final_scores),
    ("intervals", intervals),
    ("probability of improvement", improvement),
    ("other metrics", other_metrics),
    ("learning curves", learning_curves),
    ("figures", figures),
    ("init diagnostics", init_diagnostics),
)
"""The stages between :func:`load` and :func:`write`: (name, function of ctx and options)."""

STAGES = ("load", *(name for name, _ in STEPS), "write")


# --------------------------------------------------------------------------------------------
# write


def write(ctx: ReportContext, opts: Options) -> Path:
    """``report.md`` and ``report.html``; the path of ``report.md``."""
    doc = compose(ctx, time.perf_counter() - opts.started)
    md_path = opts.root / "report.md"
    md_path.write_text(doc.to_markdown())
    (opts.root / "report.html").write_text(doc.to_html(opts.root, title=report_title(ctx)))
    return md_path
