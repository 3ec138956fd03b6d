"""The ``sweep report`` command line: its arguments, without importing pandas or matplotlib.

``sweep report --help`` reads only this module; the report itself (:mod:`analysis.report`) is
imported when a report is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: directions of a metric (analysis.stats.MODES) and ways report.html holds its figures
MODES = ("max", "min")
HTML_IMAGES = ("inline", "link")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``sweep report`` arguments to ``parser`` (a subcommand parser); return it."""
    parser.add_argument("dir", type=Path, metavar="DIR", help="sweep directory (results/<name>)")
    parser.add_argument(
        "--group",
        nargs="+",
        action="extend",
        metavar="KEY",
        default=None,
        help="config keys to group by (default: every varying key except seed and env; envs "
        "are always compared separately)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="R",
        default=None,
        help="value of the metric for steps-to-threshold, reached at >= R (<= R with mode min); "
        "default: each env's reference score for eval/return in max mode, otherwise the median "
        "of the groups' final IQMs per env",
    )
    parser.add_argument("--metric", default=None, help="metric column (default: the sweep's)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="direction of the metric: max = higher is better, min = lower is better "
        "(default: the sweep's mode)",
    )
    parser.add_argument(
        "--last-k",
        type=int,
        default=None,
        metavar="K",
        help="final performance = mean of the last K evaluations (default: the score the sweep "
        "file declares under analysis.final, else 3; another value makes the report "
        "exploratory)",
    )
    parser.add_argument(
        "--also",
        nargs="+",
        action="extend",
        default=None,
        metavar="METRIC",
        help="also tabulate these metrics (shell-style patterns, e.g. 'model/probe/*'): each "
        "group's final value and its per-seed difference from the --versus group, with CIs "
        "(exploratory: no verdicts)",
    )
    parser.add_argument(
        "--versus",
        default=None,
        metavar="GROUP",
        help="the group --also compares with, as the report labels it (e.g. '[]' or 'fanin / "
        "small_outputs'; default: the best group by the declared score)",
    )
    parser.add_argument(
        "--reps", type=int, default=2000, help="bootstrap resamples for CIs (default 2000)"
    )
    parser.add_argument(
        "--up-to",
        type=float,
        default=None,
        metavar="STEP",
        help="use only evaluations at env steps <= STEP (final performance = performance at "
        "that budget)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="use only these seeds (an exploratory view, e.g. the seeds an earlier run lacked)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="OUT",
        help="write report.md, report.html and report/ into OUT (default: DIR)",
    )
    parser.add_argument(
        "--formats",
        default="png,svg",
        metavar="LIST",
        help="figure formats, comma-separated, png first (default png,svg; png alone keeps a "
        "report small enough to commit)",
    )
    parser.add_argument(
        "--dpi", type=int, default=150, help="resolution of the PNG figures (default 150)"
    )
    parser.add_argument(
        "--html-images",
        choices=HTML_IMAGES,
        default="inline",
        help="inline: report.html embeds its figures (one self-contained file, default); "
        "link: it refers to report/figures/ (small, e.g. to commit)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="any damaged trial directory (truncated, unparseable or inconsistent files) is an "
        "error; by default damaged trials are listed in the report and left out of the numbers",
    )
    return parser


def add_subcommand(
    subparsers: Any, func: Callable[[argparse.Namespace], int] | None = None
) -> argparse.ArgumentParser:
    """Register ``report`` on the ``sweep`` CLI's subparsers (``args.func`` runs the report:
    ``func``, by default :func:`analysis.report.main`, imported when it runs)."""
    parser = subparsers.add_parser(
        "report",
        help="statistics, figures, report.md/html of a sweep directory",
        description="Write DIR/report.md, DIR/report.html and DIR/report/ (figures, tidy table) "
        "for a finished or running sweep.",
    )
    add_arguments(parser)
    parser.set_defaults(func=func or _run)
    return parser


def _run(args: argparse.Namespace) -> int:
    from analysis.report import main

    return main(args)
