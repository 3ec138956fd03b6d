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

The pieces: :mod:`analysis.report_pipeline` (the stages, in order), :mod:`analysis.report_inputs`
(checked options, runs counted once), :mod:`analysis.report_scoring` (the declared score),
:mod:`analysis.report_context` (what a report computes), :mod:`analysis.report_compute`
(statistics), :mod:`analysis.report_figures`, :mod:`analysis.report_tables` and
:mod:`analysis.report_sections` (one function per section of report.md), and
:mod:`analysis.report_render` (Markdown and HTML).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from analysis import report_cli
from analysis import report_pipeline as pipeline
from analysis.load import AnalysisError
from analysis.report_cli import add_arguments
from analysis.report_context import AGG_ENV as AGG_ENV
from analysis.report_context import STATE_WORDS as STATE_WORDS
from analysis.report_figures import FIGURE_FORMATS as FIGURE_FORMATS
from analysis.report_inputs import HTML_IMAGES, check_formats, command_line
from analysis.report_render import Doc as _Doc  # noqa: F401  (tests build documents as report._Doc)
from analysis.stats import MODES as MODES

__all__ = ["add_arguments", "add_subcommand", "main", "write_report"]

log = logging.getLogger(__name__)


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
    also: Sequence[str] | None = None,
    versus: str | None = None,
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
        also: more metrics to tabulate (shell-style patterns over the metric columns): each
            group's final value and its paired difference from ``versus``, with CIs, in an
            exploratory section and ``report/other_metrics.csv``.
        versus: the group label ``also`` compares with (default: the best group by the
            declared score, per env).
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
    formats = check_formats(formats, dpi)
    if html_images not in HTML_IMAGES:
        raise AnalysisError(f"html_images must be one of {list(HTML_IMAGES)}, got {html_images!r}")
    opts = pipeline.Options(
        sweep_dir=sweep_dir,
        group=group,
        threshold=threshold,
        metric=metric,
        mode=mode,
        last_k=last_k,
        reps=reps,
        curve_reps=curve_reps,
        seed=seed,
        out_dir=out_dir,
        up_to=up_to,
        seeds=seeds,
        formats=formats,
        dpi=dpi,
        inline_images=html_images == "inline",
        strict=strict,
        also=tuple(also or ()),
        versus=versus,
        command=command_line(
            group, threshold, metric, mode, last_k, up_to, out_dir, seeds, also, versus
        ),
        started=started,
    )
    bar = tqdm(
        total=len(pipeline.STAGES),
        desc="sweep report",
        unit="stage",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )
    try:
        md_path = _run_stages(opts, bar)
    finally:
        bar.close()
    log.info("sweep report: wrote %s in %.1fs", md_path, time.perf_counter() - started)
    return md_path


def _run_stages(opts: pipeline.Options, bar: Any) -> Path:
    """Every stage of the report in order, one step of ``bar`` each; the path of report.md."""
    _stage(bar, "load")
    ctx = pipeline.load(opts)
    bar.update()
    for name, step in pipeline.STEPS:
        _stage(bar, name)
        step(ctx, opts)
        bar.update()
    _stage(bar, "write")
    md_path = pipeline.write(ctx, opts)
    bar.update()
    return md_path


def _stage(bar: Any, name: str) -> None:
    bar.set_postfix_str(name)
    log.info("sweep report: %s", name)


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on the ``sweep`` CLI's subparsers (``args.func`` is :func:`main`)."""
    return report_cli.add_subcommand(subparsers, func=main)


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
            also=getattr(args, "also", None),
            versus=getattr(args, "versus", None),
        )
    except AnalysisError as err:
        print(f"sweep report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0
