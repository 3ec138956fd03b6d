"""The figures of ``sweep report``: one function per figure, and the init-diagnostics figures.

Part of :mod:`analysis.report`: each figure is drawn by :mod:`analysis.plots`, written under
``report/figures/`` in every requested format and recorded (section, file name, caption) in
the :class:`~analysis.report_context.ReportContext` for the Figures section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import plots, stats, style
from analysis.load import load_init_diagnostics
from analysis.report_context import AGG_ENV, DIAG_COLUMNS, INIT_KEYS, ReportContext, n_trials

FIGURE_FORMATS = ("png", "svg", "pdf")


def draw_figures(ctx: ReportContext, fig_dir: Path) -> None:
    """Learning curves, final intervals, the init grid heatmap, P(improvement), profiles."""
    key, key_palette, palette = _colours(ctx)
    facet_kw = _facets(ctx, key, key_palette)
    _learning_curves(ctx, fig_dir, facet_kw)
    _final_intervals(ctx, fig_dir, key, palette)
    if all(k in ctx.group for k in INIT_KEYS):
        _init_grid_heatmap(ctx, fig_dir)
    if len(ctx.order[ctx.scopes[-1]]) > 1:
        _probability_of_improvement(ctx, fig_dir)
    _performance_profiles(ctx, fig_dir, facet_kw)


def _colours(ctx: ReportContext) -> tuple[str | None, dict[Any, Any], dict[str, Any]]:
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


def _facets(ctx: ReportContext, key: str | None, key_palette: dict[Any, Any]) -> dict[str, Any]:
    """Colour, line style and panel rows of the curves: the init grid, or the colour key."""
    init_grid = all(k in ctx.group for k in INIT_KEYS)
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
        group_order = ctx.order[ctx.scopes[-1]]
        facet_kw = {"hue": "group", "palette": plots.group_palette(group_order, "group")}
    return facet_kw


def _lower_sentence(ctx: ReportContext) -> str:
    return f" Lower `{ctx.metric}` is better." if ctx.lower else ""


def _learning_curves(ctx: ReportContext, fig_dir: Path, facet_kw: dict[str, Any]) -> None:
    partial = ""
    if n_trials(ctx, "running"):
        partial = " Running trials contribute up to their last evaluation."
    lower_note = "; lower is better" if ctx.lower else ""
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
        + _lower_sentence(ctx)
        + partial,
    )


def _final_intervals(
    ctx: ReportContext, fig_dir: Path, key: str | None, palette: dict[str, Any]
) -> None:
    # a long metric name goes in the title: the panels are too narrow for it
    units = {env: "return" if ctx.returns else "" for env in ctx.envs} | {AGG_ENV: "normalised"}
    fig, _ = plots.plot_intervals(
        ctx.intervals,
        order=ctx.order[ctx.scopes[-1]],
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


def _init_grid_heatmap(ctx: ReportContext, fig_dir: Path) -> None:
    others = [k for k in ctx.group if k not in INIT_KEYS]
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
        + ("; the colour map is reversed so that bright cells are better." if ctx.lower else ".")
        + _lower_sentence(ctx),
    )


def _probability_of_improvement(ctx: ReportContext, fig_dir: Path) -> None:
    group_order = ctx.order[ctx.scopes[-1]]
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


def _performance_profiles(ctx: ReportContext, fig_dir: Path, facet_kw: dict[str, Any]) -> None:
    prof, xlabel = _profiles(ctx)
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
        "better." + _lower_sentence(ctx),
    )


def _profiles(ctx: ReportContext) -> tuple[pd.DataFrame, str]:
    """The performance-profile table (normalised across envs, else per env) and its x label."""
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
    return prof, xlabel


# --------------------------------------------------------------------------------------------
# init diagnostics: actions of the untrained policy


def draw_init_diagnostics(ctx: ReportContext, fig_dir: Path) -> None:
    """``ctx.diag_table`` and the init figures, or ``ctx.diag_note`` for an uninformative probe."""
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
        list(DIAG_COLUMNS)
    ].mean()
    table = runs.groupby(["env", "group"]).agg(
        runs=("coverage", "size"), **{c: (c, "mean") for c in DIAG_COLUMNS}
    )
    ctx.diag_table = table.reset_index()
    init_grid = all(k in summary.columns for k in INIT_KEYS)
    _action_histograms(ctx, fig_dir, hist, keys, init_grid)
    if init_grid:
        kw: dict[str, Any] = {
            "hue": "init.scheme",
            "style": "init.scenario",
            "palette": key_palette,
        }
    elif key is not None:
        kw = {"hue": key, "style": None, "palette": key_palette}
    else:
        kw = {"hue": "group", "style": None}
    fig, _ = plots.plot_clip_vs_coverage(summary, col="env" if len(ctx.envs) > 1 else None, **kw)
    write_figure(ctx, fig, fig_dir / "init_clip_vs_coverage")
    ctx.diag_figures.append(
        (
            "init_clip_vs_coverage",
            "Clip fraction vs action-space coverage at initialisation, one "
            "point per run. Better: right (broad coverage) and low "
            "(little clipping).",
        )
    )


def _action_histograms(
    ctx: ReportContext, fig_dir: Path, hist: pd.DataFrame, keys: list[str], init_grid: bool
) -> None:
    """One figure per env: histograms of the actions sampled at init, per group."""
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
        write_figure(ctx, fig, fig_dir / name)
        ctx.diag_figures.append(
            (
                name,
                f"{env}: histogram of actions sampled at initialisation, averaged over seeds "
                "and action dims. Mass in the outermost bins is clipping at the bounds.",
            )
        )


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


# --------------------------------------------------------------------------------------------
# files and helpers


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


def _save(
    ctx: ReportContext, fig: Any, fig_dir: Path, name: str, section: str, caption: str
) -> None:
    write_figure(ctx, fig, fig_dir / name)
    ctx.figures.append((section, name, caption))


def write_figure(ctx: ReportContext, fig: Any, stem: Path) -> None:
    """Save ``fig`` as ``stem`` in the report's formats; remember the files written."""
    ctx.written += plots.save_figure(fig, stem, formats=ctx.formats, dpi=ctx.dpi)


def drop_stale_figures(ctx: ReportContext, fig_dir: Path) -> None:
    """Remove figure files an earlier report left in ``fig_dir`` that this one did not write."""
    keep = {p.resolve() for p in ctx.written}
    for path in fig_dir.iterdir():
        if path.suffix.lstrip(".") in FIGURE_FORMATS and path.resolve() not in keep:
            path.unlink()


def _grid_order(grid: dict[str, list[Any]], key: str, frame: pd.DataFrame) -> list[Any]:
    present = frame[key].dropna().unique().tolist()
    declared = [v for v in grid.get(key, []) if v in present]
    return declared + sorted(v for v in present if v not in declared)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "env"
