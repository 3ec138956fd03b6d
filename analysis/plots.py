"""Comparison figures. Every plot function takes a DataFrame and returns ``(fig, axes)``.

``axes`` is always a 2-D numpy array of matplotlib Axes, shape ``(n_rows, n_cols)`` of the facet
grid. Nothing here reads files; the frames come from :mod:`analysis.stats` (curves, interval
tables, probability-of-improvement tables, profiles) or :mod:`analysis.load` (init
diagnostics). Figures are plain :class:`matplotlib.figure.Figure` objects created without
pyplot, so no GUI backend is needed and nothing accumulates in pyplot's figure registry; they
still display in notebooks. :func:`save_figure` writes PNG plus SVG (or PDF).

One look everywhere: :func:`theme` (seaborn whitegrid, paper context, colour-blind palette,
fonts sized for a figure printed at 7 inches wide).
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

__all__ = [
    "METRIC_NAMES",
    "group_palette",
    "plot_action_histograms",
    "plot_clip_vs_coverage",
    "plot_heatmap",
    "plot_intervals",
    "plot_learning_curves",
    "plot_performance_profiles",
    "plot_probability_of_improvement",
    "save_figure",
    "theme",
]

PALETTE = "colorblind"
METRIC_NAMES = {
    "iqm": "IQM",
    "mean": "Mean",
    "median": "Median",
    "optimality_gap": "Optimality gap",
}
DEFAULT_TITLE = "<default>"
"""``title`` value that asks for the plot's own default title (None means no title)."""
LINESTYLES: list[Any] = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "axes.titlepad": 4,
}


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """Context in which figures get the house look (restores matplotlib's state on exit)."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"), mpl.rc_context(_RC):
        yield


def group_palette(labels: Sequence[Any]) -> dict[Any, Any]:
    """Label -> colour, in the given order: colour-blind-safe for up to 10 labels.

    Beyond 10 labels no palette stays colour-blind safe; husl colours are used and the plots
    also vary line style or marker so that groups stay distinguishable in print.
    """
    labels = list(dict.fromkeys(labels))
    name = PALETTE if len(labels) <= 10 else "husl"
    return dict(zip(labels, sns.color_palette(name, max(len(labels), 1)), strict=False))


def save_figure(
    fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 200
) -> list[Path]:
    """Write ``fig`` to ``stem.<fmt>`` for each format (parent made if needed); return paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    engine = fig.get_layout_engine()
    try:
        for i, fmt in enumerate(formats):
            path = stem.with_suffix(f".{fmt}")
            with mpl.rc_context(_RC):
                fig.savefig(path, format=fmt, dpi=dpi)
            if i == 0 and engine is not None:
                fig.set_layout_engine("none")  # laid out once; later formats reuse it
            paths.append(path)
    finally:
        if engine is not None:
            fig.set_layout_engine(engine)
    return paths


# --------------------------------------------------------------------------------------------
# learning curves and profiles


def plot_learning_curves(
    curves: pd.DataFrame,
    *,
    hue: str = "group",
    style: str | None = None,
    row: str | None = None,
    col: str | None = "env",
    palette: Mapping[Any, Any] | None = None,
    x: str = "env_step",
    xlabel: str = "env steps",
    ylabel: str = "return (IQM, 95% CI)",
    title: str | None = None,
) -> tuple[Figure, np.ndarray]:
    """Learning curves with CI bands, coloured by ``hue``, dashed by ``style``, faceted.

    ``curves`` has columns ``x`` (default ``env_step``), ``estimate, low, high`` and the
    ``hue``/``style``/``row``/``col`` columns (e.g. :func:`analysis.stats.learning_curves`).
    One line per hue x style value in each panel; bands where ``low``/``high`` are finite.
    Panels are ``row`` values x ``col`` values (each axis scaled on its own: envs differ).
    """
    return _line_facets(
        curves,
        x=x,
        hue=hue,
        style=style,
        row=row,
        col=col,
        palette=palette,
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
        eng_x=True,
    )


def plot_performance_profiles(
    profiles: pd.DataFrame,
    *,
    hue: str = "group",
    style: str | None = None,
    row: str | None = None,
    col: str | None = "env",
    palette: Mapping[Any, Any] | None = None,
    xlabel: str = r"score $\tau$",
    ylabel: str | None = None,
    title: str | None = None,
    mode: str = "max",
) -> tuple[Figure, np.ndarray]:
    """Performance profiles (``tau, fraction, low, high`` from
    :func:`analysis.stats.profile_table`) as lines with CI bands, one per hue x style value.

    ``ylabel`` defaults to "fraction of runs with score > tau", or "< tau" when ``mode`` is
    ``"min"`` (lower is better; the profile table must have been made with the same mode).
    """
    if ylabel is None:
        ylabel = (
            "fraction of runs with\n" r"score $< \tau$ (lower is better)"
            if _lower_is_better(mode)
            else r"fraction of runs with score $> \tau$"
        )
    frame = profiles.rename(columns={"fraction": "estimate"})
    return _line_facets(
        frame,
        x="tau",
        hue=hue,
        style=style,
        row=row,
        col=col,
        palette=palette,
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
        eng_x=False,
    )


def _line_facets(
    frame: pd.DataFrame,
    *,
    x: str,
    hue: str,
    style: str | None,
    row: str | None,
    col: str | None,
    palette: Mapping[Any, Any] | None,
    xlabel: str,
    ylabel: str,
    title: str | None,
    eng_x: bool,
) -> tuple[Figure, np.ndarray]:
    row_vals, col_vals = _levels(frame, row), _levels(frame, col)
    hue_vals = _levels(frame, hue)
    style_vals = _levels(frame, style)
    palette = dict(palette) if palette is not None else group_palette(hue_vals)
    styles = dict(zip(style_vals, itertools.cycle(LINESTYLES), strict=False))
    with theme():
        fig, axes = _grid(len(row_vals), len(col_vals), width=3.2, height=2.3)
        for (i, rv), (j, cv) in itertools.product(enumerate(row_vals), enumerate(col_vals)):
            ax = axes[i, j]
            panel = _select(frame, {row: rv, col: cv})
            for hv, sv in itertools.product(hue_vals, style_vals):
                line = _select(panel, {hue: hv, style: sv}).sort_values(x)
                if line.empty:
                    continue
                xs = line[x].to_numpy(dtype=float)
                color = palette.get(hv, "0.3")
                ax.plot(
                    xs,
                    line["estimate"].to_numpy(dtype=float),
                    color=color,
                    linestyle=styles[sv],
                    linewidth=1.4,
                )
                lo, hi = line["low"].to_numpy(dtype=float), line["high"].to_numpy(dtype=float)
                ok = np.isfinite(lo) & np.isfinite(hi)
                if ok.any():
                    ax.fill_between(xs, lo, hi, where=ok, color=color, alpha=0.18, linewidth=0)
            ax.set_title(_facet_title({row: rv, col: cv}))
            if eng_x:
                ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        _outer_labels(axes, xlabel, ylabel)
        handles = [
            Line2D([], [], color=palette.get(h, "0.3"), lw=1.6, label=str(h))
            for h in hue_vals
            if h is not None
        ]
        if style is not None:
            handles += [
                Line2D([], [], color="0.3", lw=1.4, linestyle=styles[s], label=str(s))
                for s in style_vals
            ]
        _legend(fig, handles, title=_legend_title(hue, style))
        if title:
            fig.suptitle(title)
    return fig, axes


# --------------------------------------------------------------------------------------------
# final performance


def plot_intervals(
    summary: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    row: str | None = "env",
    order: Sequence[Any] | None = None,
    palette: Mapping[Any, Any] | None = None,
    units: Mapping[Any, str] | str = "",
    title: str | None = None,
    mode: str = "max",
) -> tuple[Figure, np.ndarray]:
    """rliable-style interval estimates: one horizontal CI bar per group, a tick at the estimate.

    ``summary`` is :func:`analysis.stats.interval_table` output (``group, metric, estimate,
    low, high`` and optionally ``row``). Panels: ``row`` values x metrics; bars: groups in
    ``order`` (default: best IQM, or first metric, on top: the highest estimate, or the lowest
    when ``mode`` is ``"min"``). ``units`` (a string, or a mapping from row value to string) is
    appended to the x labels, e.g. "return"; with ``mode="min"`` so is "lower is better".
    """
    metrics = [m for m in (metrics or METRIC_NAMES) if m in set(summary["metric"])]
    row_vals = _levels(summary, row)
    lower = _lower_is_better(mode)
    if order is None:
        first = summary[summary["metric"] == ("iqm" if "iqm" in metrics else metrics[0])]
        if row is not None and row in first:
            first = first[first[row] == row_vals[0]]
        first = first.sort_values("estimate", ascending=lower, kind="stable")
        order = list(first["group"].drop_duplicates())
        order += [g for g in _levels(summary, "group") if g not in order]
    palette = dict(palette) if palette is not None else group_palette(order)
    with theme():
        fig, axes = _grid(
            len(row_vals),
            len(metrics),
            width=1.7,
            height=0.28 * len(order) + 0.8,
            sharey=True,
            legend_width=1.0,
        )
        for (i, rv), (j, metric) in itertools.product(enumerate(row_vals), enumerate(metrics)):
            ax = axes[i, j]
            panel = _select(summary, {row: rv, "metric": metric}).set_index("group")
            if panel.empty:
                ax.text(0.5, 0.5, "n/a", transform=ax.transAxes, ha="center", color="0.4")
                ax.tick_params(axis="x", labelbottom=False)
            for y, g in enumerate(order):
                if g not in panel.index:
                    continue
                rec = panel.loc[g]
                if np.isfinite(rec["low"]) and np.isfinite(rec["high"]):
                    ax.barh(
                        y,
                        rec["high"] - rec["low"],
                        left=rec["low"],
                        height=0.65,
                        color=palette.get(g, "0.5"),
                        alpha=0.8,
                    )
                ax.plot([rec["estimate"]] * 2, [y - 0.32, y + 0.32], color="k", lw=1.4)
            ax.set_yticks(range(len(order)), [str(g) for g in order])
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.grid(axis="y", visible=False)
            unit = units.get(rv, "") if isinstance(units, Mapping) else units
            notes = ", ".join(n for n in (unit, "lower is better" if lower else "") if n)
            name = METRIC_NAMES.get(metric, metric)
            sep = "\n" if len(name) + len(notes) > 21 else " "  # panels are narrow
            ax.set_xlabel(name + (f"{sep}({notes})" if notes else ""))
            if rv is not None:
                ax.set_title(_facet_title({row: rv}))
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(4))
        for ax in axes[:, 1:].ravel():
            ax.tick_params(labelleft=False)
        if title:
            fig.suptitle(title)
    return fig, axes


def plot_heatmap(
    summary: pd.DataFrame,
    *,
    row: str = "init.scheme",
    col: str = "init.scenario",
    facet: str | None = "env",
    metric: str = "iqm",
    row_order: Sequence[Any] | None = None,
    col_order: Sequence[Any] | None = None,
    value_label: str | Mapping[Any, str] = "final IQM",
    cmap: str | None = None,
    title: str | None = None,
    mode: str = "max",
) -> tuple[Figure, np.ndarray]:
    """Grid heatmap (e.g. init scheme x scenario) of a final metric, CI printed in each cell.

    ``summary`` is :func:`analysis.stats.interval_table` output with ``row``/``col`` columns
    (and ``facet``). One panel per ``facet`` value, each with its own colour scale (envs have
    different return scales); each cell shows the estimate and its 95% CI ``[low, high]``.
    Cells without data are blank. ``cmap`` defaults to viridis, reversed when ``mode`` is
    ``"min"`` so that the better cells are the bright ones in both modes.
    """
    if cmap is None:
        cmap = "viridis_r" if _lower_is_better(mode) else "viridis"
    data = summary[summary["metric"] == metric] if "metric" in summary else summary
    facets = _levels(data, facet)
    row_order = list(row_order) if row_order is not None else _levels(data, row)
    col_order = list(col_order) if col_order is not None else _levels(data, col)
    with theme():
        fig, axes = _grid(
            len(facets),
            1,
            width=1.0 * len(col_order) + 1.8,
            height=0.55 * len(row_order) + 0.9,
            legend_width=0.0,
        )
        for j, fv in enumerate(facets):
            ax = axes[j, 0]
            panel = _select(data, {facet: fv})
            est = _pivot(panel, row, col, "estimate", row_order, col_order)
            low = _pivot(panel, row, col, "low", row_order, col_order)
            high = _pivot(panel, row, col, "high", row_order, col_order)
            text = np.vectorize(_cell_text, otypes=[object])(est, low, high)
            label = value_label.get(fv, "") if isinstance(value_label, Mapping) else value_label
            _heatmap(
                pd.DataFrame(est, index=row_order, columns=col_order),
                ax=ax,
                cmap=cmap,
                annot=text,
                fmt="",
                annot_kws={"fontsize": 6.5},
                linewidths=0.5,
                linecolor="white",
                cbar_kws={"label": label, "shrink": 0.85},
            )
            ax.set_xlabel(col if j == len(facets) - 1 else "")
            ax.set_ylabel(row)
            ax.tick_params(axis="x", rotation=30)
            ax.tick_params(axis="y", rotation=0)
            ax.grid(False)
            if fv is not None:
                ax.set_title(str(fv))
        if title:
            fig.suptitle(title)
    return fig, axes


def plot_probability_of_improvement(
    poi: pd.DataFrame,
    *,
    order: Sequence[Any] | None = None,
    annotate: bool | None = None,
    title: str | None = DEFAULT_TITLE,
    mode: str = "max",
) -> tuple[Figure, np.ndarray]:
    """Matrix of P(row group better than column group) from :func:`analysis.stats.poi_table`.

    ``poi`` has columns ``a, b, p`` and optionally ``supported``. Shape of the matrix: n x n
    groups (diagonal blank). Cells show the probability and ``*`` where supported when
    ``annotate`` is True (default: up to 12 groups); otherwise only the ``*`` marks. The default
    title reads "P(row > column)", or "P(row < column): lower is better" when ``mode`` is
    ``"min"`` (the table must have been made with the same mode); None: no title.
    """
    if title == DEFAULT_TITLE:
        title = (
            "P(row < column): lower is better\n* = 95% CI excludes 0.5"
            if _lower_is_better(mode)
            else "P(row > column); * = 95% CI excludes 0.5"
        )
    order = list(order) if order is not None else list(dict.fromkeys([*poi["a"], *poi["b"]]))
    n = len(order)
    annotate = n <= 12 if annotate is None else annotate
    index = {g: i for i, g in enumerate(order)}
    matrix = np.full((n, n), np.nan)
    marks = np.full((n, n), "", dtype=object)
    for rec in poi.itertuples(index=False):
        if rec.a in index and rec.b in index:
            i, j = index[rec.a], index[rec.b]
            matrix[i, j] = rec.p
            star = "*" if getattr(rec, "supported", False) else ""
            marks[i, j] = (f"{rec.p:.2f}" if annotate else "") + star if np.isfinite(rec.p) else ""
    with theme():
        side = min(0.55 * n + 2.0, 9.0)
        fig, axes = _grid(1, 1, width=side, height=side * 0.85, legend_width=0.0)
        ax = axes[0, 0]
        _heatmap(
            pd.DataFrame(matrix, index=[str(g) for g in order], columns=[str(g) for g in order]),
            ax=ax,
            vmin=0,
            vmax=1,
            center=0.5,
            cmap="vlag",
            square=True,
            annot=marks,
            fmt="",
            annot_kws={"fontsize": 6.5 if annotate else 9},
            linewidths=0.5,
            linecolor="white",
            cbar_kws={"label": "probability of improvement", "shrink": 0.8},
        )
        ax.grid(False)
        ax.set_xlabel("column group")
        ax.set_ylabel("row group")
        ax.tick_params(axis="x", rotation=45)
        ax.tick_params(axis="y", rotation=0)
        if title:
            ax.set_title(title)
    return fig, axes


# --------------------------------------------------------------------------------------------
# init diagnostics


def plot_action_histograms(
    hist: pd.DataFrame,
    *,
    row: str | None = "init.scheme",
    col: str | None = "init.scenario",
    hue: str | None = None,
    dims: str = "all",
    row_order: Sequence[Any] | None = None,
    col_order: Sequence[Any] | None = None,
    palette: Mapping[Any, Any] | None = None,
    title: str | None = None,
) -> tuple[Figure, np.ndarray]:
    """Histogram of actions sampled at initialisation, per ``row`` x ``col`` panel.

    ``hist`` is the second table of :func:`analysis.load.load_init_diagnostics` (``bin,
    bin_lo, bin_hi, frac`` per run x action dim). Each panel averages the histograms of its
    runs (seeds) and of all action dims (``dims="all"``) or only the first (``"first"``); bars
    (or one outline per ``hue`` value). Mass piled in the outer bins is clipping at the bounds.
    """
    data = hist if dims == "all" else hist[hist["action_dim"] == 0]
    row_vals = list(row_order) if row_order is not None else _levels(data, row)
    col_vals = list(col_order) if col_order is not None else _levels(data, col)
    hue_vals = _levels(data, hue)
    palette = dict(palette) if palette is not None else group_palette(hue_vals)
    with theme():
        fig, axes = _grid(
            len(row_vals), len(col_vals), width=1.6, height=1.3, sharex=True, sharey=True
        )
        for (i, rv), (j, cv) in itertools.product(enumerate(row_vals), enumerate(col_vals)):
            ax = axes[i, j]
            panel = _select(data, {row: rv, col: cv})
            for hv in hue_vals:
                sub = _select(panel, {hue: hv})
                if sub.empty:
                    continue
                by_bin = sub.groupby("bin").agg(
                    lo=("bin_lo", "first"), hi=("bin_hi", "first"), frac=("frac", "mean")
                )
                if hue is None:
                    ax.bar(
                        by_bin["lo"],
                        by_bin["frac"],
                        width=by_bin["hi"] - by_bin["lo"],
                        align="edge",
                        color=sns.color_palette(PALETTE)[0],
                        alpha=0.85,
                        linewidth=0,
                    )
                else:
                    edges = np.append(by_bin["lo"].to_numpy(), by_bin["hi"].iloc[-1])
                    ax.stairs(
                        by_bin["frac"].to_numpy(),
                        edges,
                        color=palette.get(hv, "0.3"),
                        label=str(hv),
                        linewidth=1.2,
                    )
            ax.set_title(_facet_title({row: rv, col: cv}, short=True))
            ax.set_xlim(-1.05, 1.05)
        _outer_labels(axes, "action (scaled to [-1, 1])", "fraction of actions")
        if hue is not None:
            handles = [Line2D([], [], color=palette.get(h, "0.3"), label=str(h)) for h in hue_vals]
            _legend(fig, handles, title=hue)
        if title:
            fig.suptitle(title)
    return fig, axes


def plot_clip_vs_coverage(
    summary: pd.DataFrame,
    *,
    hue: str = "init.scheme",
    style: str | None = "init.scenario",
    col: str | None = None,
    palette: Mapping[Any, Any] | None = None,
    title: str | None = None,
) -> tuple[Figure, np.ndarray]:
    """Scatter of clip fraction vs action-space coverage at init, one point per run.

    ``summary`` is the first table of :func:`analysis.load.load_init_diagnostics`; a run's
    point averages its action dims. Colour = ``hue``, marker = ``style``, panels = ``col``.
    Good inits sit bottom right: broad coverage, little clipping.
    """
    keys = [k for k in dict.fromkeys([hue, style, col, "env"]) if k is not None and k in summary]
    runs = (
        summary.groupby(["trial_id", "seed", *keys], dropna=False, sort=True)[
            ["coverage", "clip_frac"]
        ]
        .mean()
        .reset_index()
    )
    hue_vals, style_vals, col_vals = _levels(runs, hue), _levels(runs, style), _levels(runs, col)
    palette = dict(palette) if palette is not None else group_palette(hue_vals)
    markers = dict(zip(style_vals, itertools.cycle(MARKERS), strict=False))
    with theme():
        fig, axes = _grid(1, len(col_vals), width=3.2, height=2.6)
        for j, cv in enumerate(col_vals):
            ax = axes[0, j]
            panel = _select(runs, {col: cv})
            for hv, sv in itertools.product(hue_vals, style_vals):
                pts = _select(panel, {hue: hv, style: sv})
                if pts.empty:
                    continue
                ax.scatter(
                    pts["coverage"],
                    pts["clip_frac"],
                    color=palette.get(hv, "0.3"),
                    marker=markers[sv],
                    s=22,
                    alpha=0.85,
                    linewidths=0.3,
                    edgecolors="white",
                )
            ax.set_title(_facet_title({col: cv}))
        _outer_labels(axes, "action-space coverage", "clip fraction")
        handles = [
            Line2D([], [], color=palette.get(h, "0.3"), marker="o", linestyle="", label=str(h))
            for h in hue_vals
            if h is not None
        ]
        if style is not None:
            handles += [
                Line2D([], [], color="0.3", marker=markers[s], linestyle="", label=str(s))
                for s in style_vals
            ]
        _legend(fig, handles, title=_legend_title(hue, style))
        if title:
            fig.suptitle(title)
    return fig, axes


# --------------------------------------------------------------------------------------------
# helpers


def _lower_is_better(mode: str) -> bool:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' (higher is better) or 'min', got {mode!r}")
    return mode == "min"


def _heatmap(data: pd.DataFrame, **kwargs: Any) -> None:
    """seaborn's heatmap without its matplotlib deprecation noise (seaborn <= 0.13.2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(data, **kwargs)


def _grid(
    n_rows: int,
    n_cols: int,
    *,
    width: float,
    height: float,
    sharex: bool = False,
    sharey: bool = False,
    legend_width: float = 1.2,
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with an (n_rows, n_cols) array of ``width x height`` panels."""
    n_rows, n_cols = max(n_rows, 1), max(n_cols, 1)
    size = (min(width * n_cols + legend_width, 14.0), min(height * n_rows + 0.4, 20.0))
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def _levels(frame: pd.DataFrame, column: str | None) -> list[Any]:
    """Distinct values of ``column`` in order of first appearance after sorting, or [None]."""
    if column is None or column not in frame.columns:
        return [None]
    values = frame[column].dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        return values


def _select(frame: pd.DataFrame, where: Mapping[str | None, Any]) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        if column is not None and value is not None and column in frame.columns:
            mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def _facet_title(where: Mapping[str | None, Any], short: bool = False) -> str:
    parts = [
        (str(v) if short else f"{k} = {v}")
        for k, v in where.items()
        if k is not None and v is not None
    ]
    return (" | " if not short else " / ").join(parts)


def _outer_labels(axes: np.ndarray, xlabel: str, ylabel: str) -> None:
    for ax in axes[-1, :]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)


def _legend(fig: Figure, handles: list[Line2D], title: str | None) -> None:
    if len(handles) > 1 or (handles and title):
        fig.legend(handles=handles, title=title, loc="outside right upper", frameon=False)


def _legend_title(hue: str | None, style: str | None) -> str | None:
    names = [n for n in (hue, style) if n is not None and n != "group"]
    return " / ".join(names) if names else None


def _pivot(
    panel: pd.DataFrame,
    row: str,
    col: str,
    value: str,
    row_order: Sequence[Any],
    col_order: Sequence[Any],
) -> np.ndarray:
    table = panel.pivot_table(index=row, columns=col, values=value, aggfunc="first")
    return table.reindex(index=row_order, columns=col_order).to_numpy(dtype=float)


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _cell_text(est: float, low: float, high: float) -> str:
    if not np.isfinite(est):
        return ""
    if not (np.isfinite(low) and np.isfinite(high)):
        return _fmt(est)
    return f"{_fmt(est)}\n[{_fmt(low)}, {_fmt(high)}]"
