"""Comparison figures. Every plot function takes a DataFrame and returns ``(fig, axes)``.

``axes`` is always a 2-D numpy array of matplotlib Axes, shape ``(n_rows, n_cols)`` of the facet
grid; panels past the last facet of a wrapped grid are switched off. Nothing here reads files;
the frames come from :mod:`analysis.stats` (curves, interval tables, probability-of-improvement
tables, profiles) or :mod:`analysis.load` (init diagnostics). Figures are plain
:class:`matplotlib.figure.Figure` objects created without pyplot, so no GUI backend is needed
and nothing accumulates in pyplot's figure registry; they still display in notebooks.
:func:`save_figure` writes PNG plus SVG (or PDF).

One look everywhere:

- :func:`theme`: seaborn whitegrid, fonts of at least 8 pt, figures at most 10 inches wide (a
  report page shows them at full size at 110 dpi, so 8 pt stays 8 pt on screen).
- Colours, line styles and markers of factor levels come from :mod:`analysis.style`: a level
  looks the same in every figure, every report and every API call; above 8 levels in a panel,
  markers and line styles join hue. Every figure whose colours encode a factor has a legend.
- Facet titles are in words ("scenario: no_small"); a facet key with one value (a single env)
  is named once in the figure title; facets wrap into a grid (no 5-high column, no 12-wide row).
- Degenerate cases are said, not drawn: identical IQM and mean panels are merged, all-zero
  optimality gaps dropped (:func:`interval_panels` says which), a coverage that is the same for
  every run is stated instead of plotted on a collapsed axis.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import EngFormatter, MaxNLocator

from analysis import style as _style

__all__ = [
    "METRIC_NAMES",
    "MIN_FONT_PT",
    "group_palette",
    "interval_panels",
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

METRIC_NAMES = {
    "iqm": "IQM",
    "mean": "Mean",
    "median": "Median",
    "optimality_gap": "Optimality gap",
}
DEFAULT_TITLE = "<default>"
"""``title`` value that asks for the plot's own default title (None means no title)."""
LINESTYLES = _style.LINESTYLES
MARKERS = _style.MARKERS
MIN_FONT_PT = 8.0
"""Smallest font size any figure uses (tick labels, legends, cell annotations)."""
MAX_WIDTH_IN = 10.0
"""Widest figure: a report page (1100 px) shows it unscaled at 110 dpi."""
MIN_RUNS_DEFAULT = 4
"""P(improvement) cells of groups with fewer runs are drawn muted and hatched (the verdict
rule of :data:`analysis.stats.MIN_RUNS_FOR_SUPPORT`)."""
_RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "figure.titlesize": 10,
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


def group_palette(labels: Sequence[Any], factor: str | None = None) -> dict[Any, Any]:
    """Label -> colour for the levels of ``factor`` (:func:`analysis.style.palette`).

    Registered levels (init schemes, scenarios, agents, ...) have fixed colours; other labels
    take the free colour-blind-safe hues in sorted order. Above 8 labels hues repeat: the plots
    then tell levels apart by line style and marker as well (:func:`analysis.style.level_styles`).
    """
    labels = list(dict.fromkeys(labels))
    colours = _style.palette(factor, labels)
    return {label: colours.get(label, "0.4") for label in labels}


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
# facets


@dataclass
class _Layout:
    """Panels of a faceted figure: ``panels[k]`` (facet key -> value) goes to ``cells[k]``."""

    panels: list[dict[str | None, Any]]
    shape: tuple[int, int]
    constants: dict[str, Any]
    varying: list[str]

    @property
    def cells(self) -> list[tuple[int, int]]:
        n_cols = self.shape[1]
        return [(k // n_cols, k % n_cols) for k in range(len(self.panels))]

    def title(self, panel: Mapping[str | None, Any]) -> str:
        return _style.facet_title({k: panel.get(k) for k in self.varying})


def _facet_layout(
    row: str | None,
    col: str | None,
    row_vals: Sequence[Any],
    col_vals: Sequence[Any],
    max_cols: int,
) -> _Layout:
    """Grid for ``row`` x ``col`` facets: a true grid when both vary and the columns fit in
    ``max_cols``; otherwise the panels wrap row-major into at most ``max_cols`` columns."""
    row_vals, col_vals = list(row_vals) or [None], list(col_vals) or [None]
    constants = {
        k: vals[0]
        for k, vals in ((row, row_vals), (col, col_vals))
        if k is not None and len(vals) == 1 and vals[0] is not None
    }
    varying = [
        k for k, vals in ((row, row_vals), (col, col_vals)) if k is not None and len(vals) > 1
    ]
    panels = [{row: rv, col: cv} for rv, cv in itertools.product(row_vals, col_vals)]
    if len(row_vals) > 1 and 1 < len(col_vals) <= max_cols:
        shape = (len(row_vals), len(col_vals))
    else:
        n = len(panels)
        n_cols = n if n <= max_cols else min(max_cols, math.ceil(math.sqrt(n)))
        shape = (math.ceil(n / n_cols), n_cols)
    return _Layout(panels, shape, constants, varying)


def _finish_grid(axes: np.ndarray, layout: _Layout, xlabel: str, ylabel: str) -> None:
    """Switch off unused cells; x label (and tick labels) on the lowest panel of each column,
    y label on the first panel of each row."""
    used = set(layout.cells)
    n_rows, n_cols = axes.shape
    for i, j in itertools.product(range(n_rows), range(n_cols)):
        if (i, j) not in used:
            axes[i, j].set_axis_off()
    for j in range(n_cols):
        rows = [i for i in range(n_rows) if (i, j) in used]
        if rows:
            ax = axes[rows[-1], j]
            ax.set_xlabel(xlabel)
            ax.tick_params(axis="x", labelbottom=True)
    for i in range(n_rows):
        cols = [j for j in range(n_cols) if (i, j) in used]
        if cols:
            axes[i, cols[0]].set_ylabel(ylabel)


def _suptitle(fig: Figure, title: str | None, constants: Mapping[str, Any]) -> None:
    """The figure title, with the facet keys that have a single value named once."""
    parts = [t for t in (title, _style.facet_title(constants)) if t]
    if not parts:
        return
    right = 1.0  # centred over the panels, left of a legend in the right margin
    if fig.legends:
        fig.draw_without_rendering()
        box = fig.legends[0].get_window_extent().transformed(fig.transFigure.inverted())
        if box.x0 > 0.45:  # a legend right of the panels (not one below them)
            right = box.x0
    width = max(int(fig.get_figwidth() * right * 12), 24)  # characters of 10 pt that fit
    text = " | ".join(parts)
    if len(text) > width or "\n" in text:
        text = "\n".join(_wrap(p, width) for p in parts)
    fig.suptitle(text, x=right / 2)


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
    xlabel: str = _style.STEP_LABEL,
    ylabel: str = "return (IQM over runs, 95% CI)",
    title: str | None = None,
    max_cols: int = 3,
) -> tuple[Figure, np.ndarray]:
    """Learning curves with CI bands, coloured by ``hue``, dashed by ``style``, faceted.

    ``curves`` has columns ``x`` (default ``env_step``), ``estimate, low, high`` and the
    ``hue``/``style``/``row``/``col`` columns (e.g. :func:`analysis.stats.learning_curves`).
    One line per hue x style value in each panel; bands where ``low``/``high`` are finite.
    Panels are ``row`` x ``col`` values, wrapped into at most ``max_cols`` columns; panels of
    one env share their axes, panels of different envs are scaled on their own.
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
        max_cols=max_cols,
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
    max_cols: int = 3,
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
            else "fraction of runs\n" r"with score $> \tau$"
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
        max_cols=max_cols,
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
    max_cols: int,
) -> tuple[Figure, np.ndarray]:
    layout = _facet_layout(row, col, _levels(frame, row), _levels(frame, col), max_cols)
    hue_vals, style_vals = _levels(frame, hue), _levels(frame, style)
    looks = _style.level_styles(hue if hue in frame else None, hue_vals)
    colours = {h: (palette or {}).get(h, looks[h].color if h in looks else "0.3") for h in hue_vals}
    dashes = _style.secondary_styles(style, style_vals) if style is not None else {}
    n_lines = len([h for h in hue_vals if h is not None]) * max(len(style_vals), 1)
    # above 8 lines in a panel, or when a palette repeats a hue, markers join the colours
    use_markers = n_lines > _style.MAX_PLAIN or len(set(map(str, colours.values()))) < len(colours)

    def look(hv: Any, sv: Any) -> dict[str, Any]:
        own = looks.get(hv, _style.LevelStyle((0.3, 0.3, 0.3), "-", "o"))
        linestyle, marker = dashes.get(sv, (own.linestyle, own.marker))
        return {
            "color": colours.get(hv, "0.3"),
            "linestyle": linestyle,
            "marker": marker if use_markers else None,
        }

    # panels of one env share their scales (and so their tick labels); envs differ
    share = "env" not in layout.varying
    with theme():
        fig, axes = _grid(*layout.shape, width=3.0, height=2.2, sharex=share, sharey=share)
        for panel, (i, j) in zip(layout.panels, layout.cells, strict=True):
            ax = axes[i, j]
            data = _select(frame, panel)
            for hv, sv in itertools.product(hue_vals, style_vals):
                line = _select(data, {hue: hv, style: sv}).sort_values(x)
                if line.empty:
                    continue
                xs = line[x].to_numpy(dtype=float)
                kw = look(hv, sv)
                ax.plot(
                    xs,
                    line["estimate"].to_numpy(dtype=float),
                    linewidth=1.4,
                    markersize=3.5,
                    markevery=max(1, len(xs) // 8),
                    **kw,
                )
                lo, hi = line["low"].to_numpy(dtype=float), line["high"].to_numpy(dtype=float)
                ok = np.isfinite(lo) & np.isfinite(hi)
                if ok.any():
                    ax.fill_between(xs, lo, hi, where=ok, color=kw["color"], alpha=0.18, lw=0)
            ax.set_title(layout.title(panel))
            if eng_x:
                ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.xaxis.set_major_locator(MaxNLocator(5))
        _finish_grid(axes, layout, xlabel, ylabel)
        handles = [
            Line2D([], [], lw=1.6, label=_style.level_text(h), **look(h, None))
            if style is None
            else Line2D([], [], lw=1.6, color=colours[h], label=_style.level_text(h))
            for h in hue_vals
            if h is not None
        ]
        style_handles = [
            Line2D(
                [],
                [],
                color="0.3",
                lw=1.4,
                linestyle=dashes[s][0],
                marker=dashes[s][1] if use_markers else None,
                label=_style.level_text(s),
            )
            for s in style_vals
            if style is not None
        ]
        _factor_legend(fig, hue, handles, style, style_handles)
        _suptitle(fig, title, layout.constants)
    return fig, axes


# --------------------------------------------------------------------------------------------
# final performance


def interval_panels(
    summary: pd.DataFrame, metrics: Sequence[str] | None = None
) -> tuple[list[str], dict[str, str], list[str]]:
    """Which metric panels :func:`plot_intervals` draws: ``(metrics, names, notes)``.

    - An optimality gap that is 0 with a CI of [0, 0] for every group (every run reached the
      reference score) carries nothing: its panel is dropped.
    - IQM and mean with the same estimates and CIs for every group (2 or 3 runs per group,
      where the interquartile mean trims nothing) are one panel, named "IQM = mean".

    ``notes`` says, one sentence each, what was dropped or merged (for a caption).
    """
    present = set(summary["metric"]) if "metric" in summary else set()
    metrics = [m for m in (metrics or METRIC_NAMES) if m in present]
    names = {m: METRIC_NAMES.get(m, m) for m in metrics}
    notes: list[str] = []
    cols = ["estimate", "low", "high"]
    if "optimality_gap" in metrics:
        gap = summary.loc[summary["metric"] == "optimality_gap", cols].to_numpy(dtype=float)
        if len(gap) and np.all(np.nan_to_num(gap, nan=0.0) == 0.0):
            metrics.remove("optimality_gap")
            notes.append(
                "The optimality gap is 0 with CI [0, 0] for every group (every run reached the "
                "reference score), so its panel is left out."
            )
    if "iqm" in metrics and "mean" in metrics:
        keys = [k for k in ("env", "group") if k in summary]
        iqm = summary[summary["metric"] == "iqm"].set_index(keys)[cols].sort_index()
        mean = summary[summary["metric"] == "mean"].set_index(keys)[cols].sort_index()
        if iqm.index.equals(mean.index) and np.allclose(
            iqm.to_numpy(dtype=float), mean.to_numpy(dtype=float), rtol=1e-9, atol=1e-12,
            equal_nan=True,
        ):  # fmt: skip
            metrics.remove("mean")
            names["iqm"] = "IQM = mean"
            runs = ""
            if "n_runs" in summary:
                most = int(summary["n_runs"].max())
                runs = (
                    f" (at most {most} run{'s' if most != 1 else ''} per group: the interquartile "
                    "mean trims nothing)"
                )
            notes.append(f"IQM and mean are identical for every group{runs}: one panel shows both.")
    return metrics, names, notes


def plot_intervals(
    summary: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    row: str | None = "env",
    order: Sequence[Any] | None = None,
    palette: Mapping[Any, Any] | None = None,
    hue: str | None = None,
    units: Mapping[Any, str] | str = "",
    title: str | None = None,
    mode: str = "max",
) -> tuple[Figure, np.ndarray]:
    """rliable-style interval estimates: one horizontal CI bar per group, a tick at the estimate.

    ``summary`` is :func:`analysis.stats.interval_table` output (``group, metric, estimate,
    low, high`` and optionally ``row``). Panels: ``row`` values x metrics (as
    :func:`interval_panels` decides: all-zero optimality gaps dropped, identical IQM and mean
    merged; the figure says so in a footnote); bars: groups in ``order`` (default: best IQM, or
    first metric, on top: the highest estimate, or the lowest when ``mode`` is ``"min"``).
    Bars are coloured by ``hue`` (a factor column of ``summary``, with a legend), else by
    ``palette`` (group -> colour), else by group. ``units`` (a string, or a mapping from row
    value to string) is appended to the x labels, e.g. "return"; with ``mode="min"`` so is
    "lower is better". A ``row`` with one value is named in the figure title.
    """
    metrics, names, notes = interval_panels(summary, metrics)
    row_vals = _levels(summary, row)
    lower = _lower_is_better(mode)
    if order is None:
        first = summary[summary["metric"] == ("iqm" if "iqm" in metrics else metrics[0])]
        if row is not None and row in first:
            first = first[first[row] == row_vals[0]]
        first = first.sort_values("estimate", ascending=lower, kind="stable")
        order = list(first["group"].drop_duplicates())
        order += [g for g in _levels(summary, "group") if g not in order]
    colours, legend = _bar_colours(summary, order, palette, hue)
    layout = _facet_layout(row, None, row_vals, [None], 1)
    label_w = min(0.075 * max((len(str(g)) for g in order), default=4) + 0.3, 3.0)
    with theme():
        fig, axes = _grid(
            len(row_vals),
            len(metrics),
            width=1.75,
            height=0.26 * len(order) + 0.9,
            sharey=True,
            legend_width=(1.3 if legend else 0.0) + label_w,
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
                        color=colours.get(g, "0.5"),
                        alpha=0.8,
                    )
                else:  # no CI (one run): a coloured dot keeps the colour's meaning visible
                    ax.plot(rec["estimate"], y, "o", color=colours.get(g, "0.5"), ms=6)
                ax.plot([rec["estimate"]] * 2, [y - 0.32, y + 0.32], color="k", lw=1.4)
            ax.set_yticks(range(len(order)), [str(g) for g in order])
            ax.set_ylim(len(order) - 0.5, -0.5)
            ax.grid(axis="y", visible=False)
            unit = units.get(rv, "") if isinstance(units, Mapping) else units
            extra = ", ".join(n for n in (unit, "lower is better" if lower else "") if n)
            name = names[metric]
            sep = "\n" if len(name) + len(extra) > 20 else " "  # panels are narrow
            ax.set_xlabel(name + (f"{sep}({extra})" if extra else ""))
            if len(row_vals) > 1:
                ax.set_title(layout.title({row: rv}))
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        for ax in axes[:, 1:].ravel():
            ax.tick_params(labelleft=False)
        if legend:
            _legend(fig, legend, title=_style.factor_name(hue), force=True, reserved=1.3)
        if notes:
            width = int(fig.get_figwidth() * 14)  # characters of 8 pt per line
            fig.supxlabel(_wrap(" ".join(notes), width), fontsize=MIN_FONT_PT, color="0.3")
        _suptitle(fig, title, layout.constants)
    return fig, axes


def _bar_colours(
    summary: pd.DataFrame,
    order: Sequence[Any],
    palette: Mapping[Any, Any] | None,
    hue: str | None,
) -> tuple[dict[Any, Any], list[Line2D]]:
    """Group -> bar colour, and the legend handles when the colours encode a factor."""
    if hue is not None and hue in summary and hue != "group":
        by_group = summary.drop_duplicates("group").set_index("group")[hue]
        levels = _style.sort_levels(by_group)
        level_colours = _style.palette(hue, levels)
        colours = {g: level_colours.get(by_group.get(g), "0.5") for g in order}
        handles = [
            Patch(facecolor=level_colours[v], alpha=0.8, label=_style.level_text(v)) for v in levels
        ]
        return colours, handles
    if palette is not None:
        return dict(palette), []
    return group_palette(order, "group"), []


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
    constants = {facet: facets[0]} if facet is not None and len(facets) == 1 else {}
    with theme():
        fig, axes = _grid(
            len(facets),
            1,
            width=1.15 * len(col_order) + 2.4,
            height=0.6 * len(row_order) + 1.1,
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
                annot_kws={"fontsize": MIN_FONT_PT},
                linewidths=0.5,
                linecolor="white",
                cbar_kws={"label": label, "shrink": 0.85},
            )
            ax.set_xlabel(_style.factor_name(col) if j == len(facets) - 1 else "")
            ax.set_ylabel(_style.factor_name(row))
            ax.set_xticks(ax.get_xticks(), ax.get_xticklabels(), rotation=30, ha="right",
                          rotation_mode="anchor")  # fmt: skip
            ax.tick_params(axis="y", rotation=0)
            ax.grid(False)
            if fv is not None and len(facets) > 1:
                ax.set_title(_style.facet_title({facet: fv}) if facet != "panel" else str(fv))
        _suptitle(fig, title, constants if facet != "panel" else {})
        if facet == "panel" and len(facets) == 1 and facets[0] is not None:
            axes[0, 0].set_title(str(facets[0]))
    return fig, axes


def plot_probability_of_improvement(
    poi: pd.DataFrame,
    *,
    order: Sequence[Any] | None = None,
    annotate: bool = True,
    title: str | None = DEFAULT_TITLE,
    mode: str = "max",
    min_runs: int = MIN_RUNS_DEFAULT,
) -> tuple[Figure, np.ndarray]:
    """Matrix of P(row group better than column group) from :func:`analysis.stats.poi_table`.

    ``poi`` has columns ``a, b, p`` and optionally ``supported`` and ``n_min`` (the smaller
    group's run count). Shape of the matrix: n x n groups. Every cell shows its probability
    (``*`` where supported) unless ``annotate`` is False; the figure grows with n so that the
    numbers fit. Cells whose smaller group has fewer than ``min_runs`` runs are faded and
    hatched: with 2 runs a probability can only be 0, 0.25, 0.5, 0.75 or 1 and says little.
    The diagonal (a group against itself) is grey, not the white of 0.5. Column labels are
    vertical, one cell wide each, so they never overlap. The default title reads
    "P(row > column)", or "P(row < column): lower is better" when ``mode`` is ``"min"`` (the
    table must have been made with the same mode); None: no title.
    """
    if title == DEFAULT_TITLE:
        title = (
            "P(row < column): lower is better; * = 95% CI excludes 0.5"
            if _lower_is_better(mode)
            else "P(row > column); * = 95% CI excludes 0.5"
        )
    order = list(order) if order is not None else list(dict.fromkeys([*poi["a"], *poi["b"]]))
    n = len(order)
    index = {g: i for i, g in enumerate(order)}
    matrix = np.full((n, n), np.nan)
    marks = np.full((n, n), "", dtype=object)
    few = np.zeros((n, n), dtype=bool)
    for rec in poi.to_dict("records"):
        if rec["a"] in index and rec["b"] in index and rec["a"] != rec["b"]:
            i, j = index[rec["a"]], index[rec["b"]]
            p = float(rec["p"])
            matrix[i, j] = p
            star = "*" if bool(rec.get("supported", False)) else ""
            marks[i, j] = f"{p:.2f}{star}" if np.isfinite(p) else ""
            n_min = rec.get("n_min")
            few[i, j] = n_min is not None and np.isfinite(n_min) and n_min < min_runs
    labels = [str(g) for g in order]
    label_in = 0.07 * max((len(t) for t in labels), default=4) + 0.2
    cell = 0.42
    cmap, norm = mpl.colormaps["vlag"], Normalize(0.0, 1.0)
    with theme():
        fig, axes = _grid(
            1,
            1,
            width=max(cell * n + label_in + 1.4, 5.6),  # room for the title and the key
            height=cell * n + label_in + 1.0,
            legend_width=0.0,
            max_width=max(MAX_WIDTH_IN, cell * n + label_in + 1.4),
        )
        ax = axes[0, 0]
        mesh = ax.pcolormesh(
            np.arange(n + 1), np.arange(n + 1), np.ma.masked_invalid(matrix), cmap=cmap,
            norm=norm, edgecolors="white", linewidth=0.5,
        )  # fmt: skip
        for i, j in itertools.product(range(n), range(n)):
            if i == j:
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor="0.6", edgecolor="white", lw=0.5))
                continue
            if few[i, j]:
                ax.add_patch(
                    Rectangle(
                        (j, i), 1, 1, facecolor=(1, 1, 1, 0.6), edgecolor="0.7", hatch="///",
                        lw=0.0,
                    )
                )  # fmt: skip
            if annotate and marks[i, j]:
                strong = abs(matrix[i, j] - 0.5) > 0.3 and not few[i, j]
                ax.text(
                    j + 0.5, i + 0.5, marks[i, j], ha="center", va="center",
                    fontsize=MIN_FONT_PT, color="white" if strong else "0.1",
                )  # fmt: skip
        ax.set_xlim(0, n)
        ax.set_ylim(n, 0)
        ax.set_aspect("equal")
        ax.grid(False)
        ax.set_xticks(np.arange(n) + 0.5, labels, rotation=90)  # one column each: no overlap
        ax.set_yticks(np.arange(n) + 0.5, labels)
        ax.tick_params(length=0)
        ax.set_xlabel("column group")
        ax.set_ylabel("row group")
        fig.colorbar(mesh, ax=ax, label="probability of improvement", shrink=0.8)
        key = [Patch(facecolor="0.6", label="group vs itself")]
        if few.any():
            key.append(
                Patch(
                    facecolor=to_rgba("0.85"), edgecolor="0.7", hatch="///",
                    label=f"fewer than {min_runs} runs in a group (coarse, no verdict)",
                )
            )  # fmt: skip
        fig.legend(handles=key, loc="outside lower center", ncols=len(key), frameon=False)
        if title:
            ax.set_title(_wrap(title, max(int(fig.get_figwidth() * 11), 30)))
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
    max_cols: int = 5,
) -> tuple[Figure, np.ndarray]:
    """Histogram of actions sampled at initialisation, per ``row`` x ``col`` panel.

    ``hist`` is the second table of :func:`analysis.load.load_init_diagnostics` (``bin,
    bin_lo, bin_hi, frac`` per run x action dim). Each panel averages the histograms of its
    runs (seeds) and of all action dims (``dims="all"``) or only the first (``"first"``); bars
    (or one outline per ``hue`` value). Mass piled in the outer bins is clipping at the bounds.
    Panels share both axes; more than ``max_cols`` panels in one row wrap into a grid.
    """
    data = hist if dims == "all" else hist[hist["action_dim"] == 0]
    row_vals = list(row_order) if row_order is not None else _levels(data, row)
    col_vals = list(col_order) if col_order is not None else _levels(data, col)
    hue_vals = _levels(data, hue)
    colours = dict(palette) if palette is not None else group_palette(hue_vals, hue)
    wrap = max_cols if (len(row_vals) > 1 and len(col_vals) > 1) else min(max_cols, 4)
    layout = _facet_layout(row, col, row_vals, col_vals, wrap)
    two_line = len(layout.varying) > 1
    with theme():
        fig, axes = _grid(
            *layout.shape, width=1.9, height=1.45 + 0.15 * two_line, sharex=True, sharey=True,
            legend_width=1.2 if hue is not None else 0.2,
        )  # fmt: skip
        for panel, (i, j) in zip(layout.panels, layout.cells, strict=True):
            ax = axes[i, j]
            sub_panel = _select(data, panel)
            for hv in hue_vals:
                sub = _select(sub_panel, {hue: hv})
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
                        color=_style.COLORS[0],
                        alpha=0.85,
                        linewidth=0,
                    )
                else:
                    edges = np.append(by_bin["lo"].to_numpy(), by_bin["hi"].iloc[-1])
                    ax.stairs(
                        by_bin["frac"].to_numpy(),
                        edges,
                        color=colours.get(hv, "0.3"),
                        label=str(hv),
                        linewidth=1.2,
                    )
            if two_line:  # two short lines at the smallest font fit a narrow panel
                ax.set_title(layout.title(panel).replace("; ", "\n"), fontsize=MIN_FONT_PT)
            else:
                ax.set_title(layout.title(panel))
            ax.set_xlim(-1.05, 1.05)
            ax.set_xticks([-1, 0, 1])
            ax.yaxis.set_major_locator(MaxNLocator(3))
        _finish_grid(axes, layout, "action (scaled to [-1, 1])", "fraction of actions")
        if hue is not None:
            handles = [Line2D([], [], color=colours.get(h, "0.3"), label=str(h)) for h in hue_vals]
            _legend(fig, handles, title=_style.factor_name(hue), force=True)
        _suptitle(fig, title, layout.constants)
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
    Good inits sit bottom right: broad coverage, little clipping. When every run has the same
    coverage (e.g. all 1.0: every action bin reached) a coverage axis would collapse to a
    line: the figure says so in its title and spreads the runs by ``hue`` level instead.
    """
    keys = [k for k in dict.fromkeys([hue, style, col, "env"]) if k is not None and k in summary]
    runs = (
        summary.groupby(["trial_id", "seed", *keys], dropna=False, sort=True)[
            ["coverage", "clip_frac"]
        ]
        .mean()
        .reset_index()
    )
    hue_vals, style_vals = _levels(runs, hue), _levels(runs, style)
    layout = _facet_layout(None, col, [None], _levels(runs, col), 3)
    colours = dict(palette) if palette is not None else group_palette(hue_vals, hue)
    markers = {s: m for s, (_, m) in _style.secondary_styles(style, style_vals).items()}
    markers = markers or {None: "o"}
    coverage = runs["coverage"].to_numpy(dtype=float)
    constant = len(coverage) > 0 and np.nanmax(coverage) - np.nanmin(coverage) < 1e-9
    position = {h: k for k, h in enumerate(hue_vals)}
    jitter = np.random.default_rng(0)
    with theme():
        fig, axes = _grid(*layout.shape, width=3.4, height=2.7, sharey=True)
        for panel, (i, j) in zip(layout.panels, layout.cells, strict=True):
            ax = axes[i, j]
            data = _select(runs, panel)
            for hv, sv in itertools.product(hue_vals, style_vals):
                pts = _select(data, {hue: hv, style: sv})
                if pts.empty:
                    continue
                xs = pts["coverage"].to_numpy(dtype=float)
                if constant:
                    xs = position[hv] + jitter.uniform(-0.18, 0.18, len(pts))
                ax.scatter(
                    xs,
                    pts["clip_frac"],
                    color=colours.get(hv, "0.3"),
                    marker=markers.get(sv, "o"),
                    s=24,
                    alpha=0.85,
                    linewidths=0.3,
                    edgecolors="white",
                )
            ax.set_title(layout.title(panel))
            if constant:
                ax.set_xticks(range(len(hue_vals)), [str(h) for h in hue_vals], rotation=30,
                              ha="right", rotation_mode="anchor")  # fmt: skip
                ax.set_xlim(-0.6, len(hue_vals) - 0.4)
                ax.grid(axis="x", visible=False)
        xlabel = _style.factor_name(hue) if constant else "action-space coverage"
        _finish_grid(axes, layout, xlabel, "clip fraction")
        if constant:
            note = (
                f"Action-space coverage is {coverage[0]:.2f} for every run"
                + (" (every action bin reached)" if coverage[0] == 1.0 else "")
                + ", so only the clip fraction is shown, per "
                + (_style.factor_name(hue) or "group")
                + "."
            )
            title = f"{title}\n{note}" if title else note
        handles = [
            Line2D([], [], color=colours.get(h, "0.3"), marker="o", linestyle="", label=str(h))
            for h in hue_vals
            if h is not None
        ]
        style_handles = [
            Line2D([], [], color="0.3", marker=markers[s], linestyle="", label=str(s))
            for s in style_vals
            if style is not None
        ]
        _factor_legend(fig, hue, handles, style, style_handles)
        _suptitle(fig, title, layout.constants)
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
    max_width: float = MAX_WIDTH_IN,
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with an (n_rows, n_cols) array of ``width x height`` panels,
    at most ``max_width`` inches wide (panels shrink to fit)."""
    n_rows, n_cols = max(n_rows, 1), max(n_cols, 1)
    size = (min(width * n_cols + legend_width, max_width), min(height * n_rows + 0.6, 24.0))
    fig = Figure(figsize=size, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.06, h_pad=0.06, wspace=0.04, hspace=0.04)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def _levels(frame: pd.DataFrame, column: str | None) -> list[Any]:
    """Distinct values of ``column`` in sorted order (numbers numerically), or [None]."""
    if column is None or column not in frame.columns:
        return [None]
    return _style.sort_levels(frame[column].dropna().unique().tolist()) or [None]


def _select(frame: pd.DataFrame, where: Mapping[str | None, Any]) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        if column is not None and value is not None and column in frame.columns:
            mask &= (frame[column] == value).to_numpy()
    return frame[mask]


def _legend(
    fig: Figure,
    handles: list[Any],
    title: str | None,
    force: bool = False,
    reserved: float = 1.2,
) -> Any:
    """A frameless legend right of the panels (returned; None when there is nothing to say).

    The figure widens (up to the page width) when the labels need more than the ``reserved``
    inches, and the legend moves below the panels when it would take more than half of the
    width."""
    if not (force or len(handles) > 1 or (handles and title)):
        return None
    chars = max(len(str(h.get_label())) for h in handles) if handles else 0
    need = max(0.068 * chars + 0.55, 0.068 * len(title or "") + 0.1)  # a handle, 8 pt text
    width = fig.get_figwidth()
    grown = width + max(need - reserved, 0.0)
    if grown > MAX_WIDTH_IN + 0.3 or need > 0.5 * grown:
        n_cols = max(1, int(width * 0.95 // need))
        n_lines = math.ceil(len(handles) / n_cols) + (1 if title else 0)
        fig.set_figheight(fig.get_figheight() + 0.19 * n_lines + 0.1)
        return fig.legend(
            handles=handles, title=title, loc="outside lower center", ncols=n_cols, frameon=False
        )
    fig.set_figwidth(min(grown, MAX_WIDTH_IN))
    return fig.legend(handles=handles, title=title, loc="outside right upper", frameon=False)


def _factor_legend(
    fig: Figure,
    hue: str | None,
    hue_handles: list[Any],
    style: str | None,
    style_handles: list[Any],
) -> None:
    """One legend for colour (``hue``) and, when given, line style or marker (``style``): each
    factor's levels under its name in bold, so that equal level names ("relu" as a gain of two
    layers) cannot be confused."""
    hue_name = _style.factor_name(hue) if hue not in (None, "group") else None
    if style is None or not style_handles:
        _legend(fig, hue_handles, title=hue_name)
        return
    header = {"linestyle": "", "marker": ""}
    handles = [
        Line2D([], [], label=hue_name or "group", **header),
        *hue_handles,
        Line2D([], [], label=_style.factor_name(style), **header),
        *style_handles,
    ]
    legend = _legend(fig, handles, title=None, force=True)
    if legend is not None:
        bold = {0, len(hue_handles) + 1}
        for i, text in enumerate(legend.get_texts()):
            if i in bold:
                text.set_fontweight("bold")


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


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
