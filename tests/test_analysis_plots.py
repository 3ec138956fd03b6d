"""analysis.plots: each figure on a tiny frame has the expected lines/bars/cells and labels, and
the properties a reviewer checks hold: one colour per level everywhere, wrapped facets, titles
in words, fonts >= 8 pt, no colliding labels, degenerate panels said instead of drawn."""

from __future__ import annotations

import itertools

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from analysis import plots, style


def _curves(scenarios=("a", "b", "c"), envs=("Pendulum-v1", "Walker2d-v4"),
            schemes=("fanin", "orthogonal")) -> pd.DataFrame:  # fmt: skip
    rows = []
    for env, scheme, scenario, step in itertools.product(envs, schemes, scenarios, [0, 500, 1000]):
        est = step / 1000 + (scheme == "orthogonal")
        rows.append(
            {"env": env, "init.scheme": scheme, "init.scenario": scenario,
             "group": f"{scheme} / {scenario}", "env_step": float(step), "estimate": est,
             "low": est - 0.1, "high": est + 0.1}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _data_lines(ax) -> list:
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 0]


def _visible(axes: np.ndarray) -> list:
    return [ax for ax in axes.ravel() if ax.axison]


def _outer_labels_ok(axes: np.ndarray) -> bool:
    n_rows, n_cols = axes.shape
    for j in range(n_cols):
        col = [axes[i, j] for i in range(n_rows) if axes[i, j].axison]
        if col and not col[-1].get_xlabel():
            return False
    return all(ax.get_ylabel() for ax in axes[:, 0] if ax.axison)


def _line_colour(ax, colour) -> bool:
    return any(np.allclose(to_rgb(line.get_color()), to_rgb(colour)) for line in _data_lines(ax))


def _draw(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _texts(fig) -> list:
    """Every visible, non-empty text artist of the figure (titles, labels, ticks, legends)."""
    return [
        t
        for t in fig.findobj(mpl.text.Text)
        if t.get_visible() and t.get_text().strip() and (t.axes is None or t.axes.axison)
    ]


def _collisions(fig, texts) -> list[tuple[str, str]]:
    renderer = _draw(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    clashes = []
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        if a.width and b.width and a.overlaps(b):
            inter_w = min(a.x1, b.x1) - max(a.x0, b.x0)
            inter_h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if inter_w > 1 and inter_h > 1:  # more than touching pixels
                clashes.append((ta, tb))
    return clashes


def _in_view(ax) -> list:
    """The tick labels matplotlib draws (ticks inside the view limits)."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    xs = [t for loc, t in zip(ax.get_xticks(), ax.get_xticklabels()) if x0 <= loc <= x1]
    ys = [t for loc, t in zip(ax.get_yticks(), ax.get_yticklabels()) if y0 <= loc <= y1]
    return [t for t in xs + ys if t.get_text()]


def _tick_labels(axes) -> list:
    out = []
    for ax in _visible(axes):
        out += _in_view(ax)
        out += [ax.title]
    return [t for t in out if t.get_visible() and t.get_text()]


# --------------------------------------------------------------------------------------------
# learning curves


def test_learning_curves_lines_bands_facets():
    fig, axes = plots.plot_learning_curves(_curves(), hue="init.scheme", style="init.scenario")
    assert axes.shape == (1, 2)
    for ax in axes.ravel():
        assert len(_data_lines(ax)) == 2 * 3  # scheme x scenario
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 6
        assert ax.get_title().startswith("env: ")
    assert _outer_labels_ok(axes)
    assert axes[0, 0].get_xlabel() == "environment steps"
    # legend: 2 colours + 3 line styles, each under its factor's name in words
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["init scheme", "fanin", "orthogonal", "scenario", "a", "b", "c"]
    assert fig.legends[0].get_texts()[3].get_fontweight() == "bold"


def test_learning_curves_wrap_facets_and_name_the_single_env_once():
    frame = _curves(scenarios=("no_small", "s2", "s3", "s4", "s5"), envs=("Pendulum-v1",))
    fig, axes = plots.plot_learning_curves(frame, hue="init.scheme", row="init.scenario")
    assert axes.shape == (2, 3)  # 5 facets wrap: not a 5-high column
    assert len(_visible(axes)) == 5 and not axes[1, 2].axison
    titles = [ax.get_title() for ax in _visible(axes)]
    assert titles[0] == "scenario: no_small"
    assert not any("env" in t for t in titles)  # the constant is in the figure title only
    assert fig.get_suptitle() == "env: Pendulum-v1"
    assert _outer_labels_ok(axes)
    # the panel above the empty cell keeps its x tick labels (shared x axis)
    assert any(t.get_text() for t in axes[0, 2].get_xticklabels())
    assert _collisions(fig, _tick_labels(axes)) == []


def test_learning_curves_rows_and_no_band_without_ci():
    frame = _curves()
    frame.loc[frame["env_step"] == 0, ["low", "high"]] = np.nan
    _, axes = plots.plot_learning_curves(frame, hue="init.scheme", row="init.scenario")
    assert axes.shape == (3, 2)  # scenario x env: a true grid (2 columns fit)
    assert all(len(_data_lines(ax)) == 2 for ax in axes.ravel())
    assert _outer_labels_ok(axes)


def test_same_level_same_colour_across_figures_and_api_defaults():
    # orthogonal among {fanin, orthogonal} and among {orthogonal, kaiming, pytorch_default}
    a = _curves(schemes=("fanin", "orthogonal"), envs=("Pendulum-v1",))
    b = _curves(schemes=("orthogonal", "kaiming", "pytorch_default"), envs=("Pendulum-v1",))
    _, axes_a = plots.plot_learning_curves(a, hue="init.scheme")
    _, axes_b = plots.plot_learning_curves(b, hue="init.scheme")
    orange = style.palette("init.scheme", ["orthogonal"])["orthogonal"]
    assert _line_colour(axes_a[0, 0], orange) and _line_colour(axes_b[0, 0], orange)
    # interval bars coloured by the same factor use the same colour, with a legend
    summary = pd.DataFrame(
        {"group": ["orthogonal / x", "kaiming / x"], "init.scheme": ["orthogonal", "kaiming"],
         "metric": "iqm", "estimate": [1.0, 0.5], "low": [0.8, 0.3], "high": [1.2, 0.7],
         "env": "e"}
    )  # fmt: skip
    fig, axes = plots.plot_intervals(summary, hue="init.scheme")
    bars = {tuple(np.round(p.get_facecolor()[:3], 6)) for p in axes[0, 0].patches}
    assert tuple(np.round(orange, 6)) in bars
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["kaiming", "orthogonal"]
    # the public palette helper agrees with the figures
    assert plots.group_palette(["kaiming", "orthogonal"], "init.scheme")["orthogonal"] == orange


def test_more_than_eight_groups_get_markers_and_line_styles():
    groups = [f"g{i:02d}" for i in range(12)]
    frame = pd.DataFrame(
        [{"group": g, "env": "e", "env_step": float(s), "estimate": i + s / 10, "low": np.nan,
          "high": np.nan} for i, g in enumerate(groups) for s in range(5)]
    )  # fmt: skip
    _, axes = plots.plot_learning_curves(frame, hue="group")
    lines = _data_lines(axes[0, 0])
    assert len(lines) == 12
    looks = {(to_rgb(ln.get_color()), str(ln.get_linestyle()), ln.get_marker()) for ln in lines}
    assert len(looks) == 12  # every group drawn differently
    assert len({to_rgb(ln.get_color()) for ln in lines}) == 8  # hues repeat past 8 ...
    assert all(ln.get_marker() not in (None, "None", "") for ln in lines)  # ... markers join
    assert len({str(ln.get_linestyle()) for ln in lines}) == 2


def test_performance_profiles_lines():
    frame = pd.DataFrame(
        {"group": np.repeat(["a", "b"], 4), "env": "e", "tau": np.tile([0, 1, 2, 3], 2),
         "fraction": [1, 0.8, 0.2, 0, 1, 1, 0.6, 0.1], "low": 0.0, "high": 1.0}
    )  # fmt: skip
    _, axes = plots.plot_performance_profiles(frame)
    assert axes.shape == (1, 1) and len(_data_lines(axes[0, 0])) == 2
    assert _outer_labels_ok(axes)


# --------------------------------------------------------------------------------------------
# final performance


def _summary(metrics=("iqm", "mean", "median", "optimality_gap")) -> pd.DataFrame:
    rows = []
    for env, metric, (i, group) in itertools.product(
        ["Pendulum-v1", "all envs (normalised)"], metrics, enumerate(["a", "b", "c"])
    ):
        shift = {"iqm": 0.0, "mean": 0.1, "median": 0.2, "optimality_gap": 0.3}[metric]
        rows.append(
            {"env": env, "group": group, "init.scheme": ["fanin", "orthogonal", "kaiming"][i],
             "init.scenario": "x", "metric": metric, "estimate": float(i) + shift,
             "low": i - 0.5, "high": i + 0.5, "n_runs": 5}
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_interval_plot_bars_and_labels():
    _, axes = plots.plot_intervals(_summary(), units={"Pendulum-v1": "return"})
    assert axes.shape == (2, 4)  # envs x metrics
    for ax in axes.ravel():
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 3
        assert len(_data_lines(ax)) == 3  # estimate ticks
    assert axes[0, 0].get_xlabel() == "IQM (return)"
    assert axes[1, 3].get_xlabel() == "Optimality gap"
    assert axes[0, 0].get_title() == "env: Pendulum-v1"
    # best (highest IQM) on top
    assert [t.get_text() for t in axes[0, 0].get_yticklabels()] == ["c", "b", "a"]
    bar = axes[0, 0].patches[0]
    assert bar.get_x() == pytest.approx(1.5) and bar.get_width() == pytest.approx(1.0)


def test_interval_plot_marks_missing_metric_panels():
    summary = _summary()
    summary = summary[~((summary["env"] == "Pendulum-v1") & (summary["metric"] == "median"))]
    _, axes = plots.plot_intervals(summary)
    assert len(axes[0, 2].patches) == 0 and axes[0, 2].texts[0].get_text() == "n/a"


def test_identical_iqm_and_mean_merge_and_zero_gaps_drop():
    summary = _summary(("iqm", "mean", "optimality_gap"))
    iqm = summary[summary["metric"] == "iqm"]
    summary.loc[summary["metric"] == "mean", ["estimate", "low", "high"]] = iqm[
        ["estimate", "low", "high"]
    ].to_numpy()
    summary.loc[summary["metric"] == "optimality_gap", ["estimate", "low", "high"]] = 0.0
    summary["n_runs"] = 2
    metrics, names, notes = plots.interval_panels(summary)
    assert metrics == ["iqm"] and names["iqm"] == "IQM = mean"
    assert len(notes) == 2 and "optimality gap is 0" in notes[0] and "2 runs" in notes[1]
    fig, axes = plots.plot_intervals(summary)
    assert axes.shape == (2, 1) and axes[0, 0].get_xlabel() == "IQM = mean"
    assert "left out" in fig.get_supxlabel()
    # a gap that is not zero everywhere stays, and different IQM and mean stay apart
    assert plots.interval_panels(_summary())[0] == ["iqm", "mean", "median", "optimality_gap"]


def test_interval_plot_without_ci_keeps_the_colours_visible():
    summary = _summary(("iqm",))
    summary[["low", "high"]] = np.nan  # one run per group: no CI, no bar
    fig, axes = plots.plot_intervals(summary, hue="init.scheme")
    dots = [ln for ln in _data_lines(axes[0, 0]) if ln.get_marker() == "o"]
    assert len(dots) == 3 and not axes[0, 0].patches
    kaiming = style.palette("init.scheme", ["kaiming"])["kaiming"]
    assert any(np.allclose(to_rgb(d.get_color()), kaiming) for d in dots)
    assert len(fig.legends[0].get_texts()) == 3


def test_heatmap_cells_and_ci_text():
    rows = []
    for scheme, scenario in itertools.product(["fanin", "orthogonal"], ["s1", "s2", "s3"]):
        rows.append(
            {"env": "Pendulum-v1", "init.scheme": scheme, "init.scenario": scenario,
             "metric": "iqm", "estimate": 1.0, "low": 0.5, "high": 1.5}
        )  # fmt: skip
    frame = pd.DataFrame(rows[:-1])  # one cell without data
    fig, axes = plots.plot_heatmap(frame, col_order=["s1", "s2", "s3"])
    ax = axes[0, 0]
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert mesh.get_array().size == 2 * 3
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 5 and all("[0.5, 1.5]" in t for t in texts)
    assert ax.get_xlabel() == "scenario" and ax.get_ylabel() == "init scheme"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["s1", "s2", "s3"]
    assert fig.get_suptitle() == "env: Pendulum-v1"


# --------------------------------------------------------------------------------------------
# probability of improvement


def _poi(groups, n_min) -> pd.DataFrame:
    rows = []
    for (i, a), (j, b) in itertools.permutations(enumerate(groups), 2):
        p = 0.5 + 0.5 * np.tanh((j - i) / 3)
        rows.append({"a": a, "b": b, "p": p, "low": p - 0.2, "high": p + 0.2,
                     "n_min": n_min(a, b)})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["supported"] = ((frame["low"] > 0.5) | (frame["high"] < 0.5)) & (frame["n_min"] >= 4)
    return frame


def test_probability_of_improvement_matrix():
    poi = pd.DataFrame(
        {"a": ["x", "y", "x", "z", "y", "z"], "b": ["y", "x", "z", "x", "z", "y"],
         "p": [0.9, 0.1, 0.6, 0.4, 0.5, 0.5], "low": [0.7, 0.0, 0.3, 0.1, 0.2, 0.2],
         "high": [1.0, 0.3, 0.9, 0.7, 0.8, 0.8]}
    )  # fmt: skip
    poi["supported"] = (poi["low"] > 0.5) | (poi["high"] < 0.5)
    _, axes = plots.plot_probability_of_improvement(poi, order=["x", "y", "z"])
    ax = axes[0, 0]
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    values = np.ma.filled(mesh.get_array(), np.nan).reshape(3, 3)
    assert values[0, 1] == pytest.approx(0.9) and np.isnan(values[1, 1])
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["0.90*", "0.10*", "0.60", "0.40", "0.50", "0.50"])
    assert ax.get_xlabel() and ax.get_ylabel()


def test_poi_matrix_annotated_at_any_size_hatched_below_four_runs_distinct_diagonal():
    groups = [f"orthogonal / scenario_{i:02d}" for i in range(15)]
    few = set(groups[:3])  # these groups have 2 runs, the others 5
    poi = _poi(groups, lambda a, b: 2 if (a in few or b in few) else 5)
    fig, axes = plots.plot_probability_of_improvement(poi)
    ax = axes[0, 0]
    assert len(ax.texts) == 15 * 14  # every off-diagonal cell annotated, even at n = 15
    hatched = [p for p in ax.patches if p.get_hatch()]
    n_few = sum(1 for a, b in itertools.permutations(groups, 2) if a in few or b in few)
    assert len(hatched) == n_few
    hatched_cells = {(int(p.get_x()), int(p.get_y())) for p in hatched}
    assert (1, 0) in hatched_cells and (4, 5) not in hatched_cells  # (col, row)
    diagonal = [p for p in ax.patches if not p.get_hatch()]
    assert len(diagonal) == 15
    grey = to_rgb("0.6")
    assert all(np.allclose(p.get_facecolor()[:3], grey) for p in diagonal)
    assert not np.allclose(grey, to_rgb(mpl.colormaps["vlag"](0.5)), atol=0.1)
    assert any("fewer than 4 runs" in t.get_text() for t in fig.legends[0].get_texts())
    # no overlapping column (or row) labels, annotations inside fonts >= 8 pt
    assert _collisions(fig, _in_view(ax)) == []
    assert min(t.get_fontsize() for t in ax.texts) >= plots.MIN_FONT_PT


# --------------------------------------------------------------------------------------------
# init diagnostics


def _hist(schemes=("fanin", "orthogonal"), scenarios=("s1", "s2")) -> pd.DataFrame:
    edges = np.linspace(-1, 1, 21)
    rows = []
    for scheme, scenario, seed, dim in itertools.product(schemes, scenarios, [0, 1], [0, 1]):
        frac = np.full(20, 1 / 20)
        for b in range(20):
            rows.append(
                {"trial_id": f"{scheme}-{scenario}-{seed}", "seed": seed, "env": "Walker2d-v4",
                 "init.scheme": scheme, "init.scenario": scenario, "action_dim": dim, "bin": b,
                 "bin_lo": edges[b], "bin_hi": edges[b + 1], "frac": frac[b]}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_action_histograms_bars_per_panel():
    fig, axes = plots.plot_action_histograms(_hist())
    assert axes.shape == (2, 2)
    for ax in axes.ravel():
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == 20
        assert sum(b.get_height() for b in bars) == pytest.approx(1.0)
    assert _outer_labels_ok(axes)
    assert axes[0, 0].get_title() == "init scheme: fanin\nscenario: s1"
    fig, axes = plots.plot_action_histograms(_hist(), row=None, hue="init.scheme", dims="first")
    assert axes.shape == (1, 2) and all(len(ax.patches) == 2 for ax in axes.ravel())  # stairs
    assert len(fig.legends[0].get_texts()) == 2


def test_twelve_histogram_facets_wrap_into_a_grid_without_collisions():
    hist = _hist(schemes=("fanin",), scenarios=[f"s{i:02d}" for i in range(12)])
    hist["group"] = "fanin / " + hist["init.scenario"]
    fig, axes = plots.plot_action_histograms(hist, row=None, col="group")
    assert axes.shape == (3, 4)  # not a 12-wide row
    assert fig.get_figwidth() <= plots.MAX_WIDTH_IN
    assert _collisions(fig, _tick_labels(axes)) == []


def test_fonts_are_at_least_8_pt_in_every_figure():
    figs = [
        plots.plot_learning_curves(_curves(), hue="init.scheme", style="init.scenario")[0],
        plots.plot_intervals(_summary())[0],
        plots.plot_action_histograms(_hist())[0],
        plots.plot_probability_of_improvement(_poi(list("abcdef"), lambda a, b: 5))[0],
    ]
    for fig in figs:
        _draw(fig)
        sizes = [t.get_fontsize() for t in _texts(fig)]
        assert sizes and min(sizes) >= plots.MIN_FONT_PT


def _diag_summary(coverage) -> pd.DataFrame:
    return pd.DataFrame(
        {"trial_id": ["t1", "t1", "t2", "t3", "t4"], "seed": [0, 0, 0, 0, 0], "env": "e",
         "init.scheme": ["fanin", "fanin", "fanin", "orthogonal", "orthogonal"],
         "init.scenario": ["s1", "s1", "s2", "s1", "s2"], "action_dim": [0, 1, 0, 0, 0],
         "coverage": coverage, "clip_frac": [0.1, 0.3, 0.0, 0.2, 0.4]}
    )  # fmt: skip


def test_clip_vs_coverage_one_point_per_run():
    _, axes = plots.plot_clip_vs_coverage(_diag_summary([0.5, 0.7, 0.8, 0.9, 1.0]))
    ax = axes[0, 0]
    points = np.concatenate(
        [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    )
    assert len(points) == 4  # t1's two action dims averaged into one point
    assert [0.6, 0.2] in points.round(6).tolist()
    assert ax.get_xlabel() == "action-space coverage" and ax.get_ylabel() == "clip fraction"


def test_clip_vs_coverage_says_so_when_every_coverage_is_one():
    fig, axes = plots.plot_clip_vs_coverage(_diag_summary([1.0] * 5))
    ax = axes[0, 0]
    assert "coverage is 1.00 for every run" in " ".join(fig.get_suptitle().split())
    lo, hi = ax.get_xlim()
    assert hi - lo > 1  # categorical axis of schemes, not 0.96..1.04 around one value
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fanin", "orthogonal"]
    assert ax.get_xlabel() == "init scheme"
    points = np.concatenate(
        [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    )
    assert len(points) == 4 and sorted(points[:, 1].round(6)) == [0.0, 0.2, 0.2, 0.4]


# --------------------------------------------------------------------------------------------
# style and saving


def test_style_words_and_stable_slots():
    assert style.facet_title({"init.scenario": "no_small"}) == "scenario: no_small"
    assert style.factor_name("init.gains.policy_mean") == "policy mean gain"
    assert style.metric_label("eval/return") == "evaluation return"
    assert "15-step open-loop" in style.metric_label("model/open_loop/obs_h15")
    # a registered level keeps its slot whatever else is in the figure
    alone = style.level_styles("init.scheme", ["kaiming"])["kaiming"]
    assert style.level_styles("init.scheme", ["zeros", "fanin", "kaiming"])["kaiming"] == alone
    assert (
        style.level_styles("mb_ppo.return_estimator", ["gae"])["gae"]
        == style.level_styles("dreamer.return_estimator", ["td0", "gae"])["gae"]
    )
    # unregistered levels (numeric gains) in numeric order, distinct while <= 8
    gains = style.palette("init.gains.q", [1.0, 0.1, 0.01, "auto"])
    assert list(gains) == [0.01, 0.1, 1.0, "auto"] and len(set(gains.values())) == 4


def test_save_figure_formats_and_theme_does_not_leak(tmp_path):
    before = dict(mpl.rcParams)
    fig, _ = plots.plot_performance_profiles(
        pd.DataFrame({"group": "a", "tau": [0, 1], "fraction": [1, 0], "low": 0, "high": 1})
    )
    assert dict(mpl.rcParams) == before
    paths = plots.save_figure(fig, tmp_path / "fig" / "profile", formats=("png", "svg", "pdf"))
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG"


def test_group_palette_is_colour_blind_hues_with_styles_beyond_eight():
    palette = plots.group_palette(["a", "b", "c"])
    assert list(palette.values()) == style.COLORS[:3]
    looks = style.level_styles("group", [str(i) for i in range(14)])
    assert len({(s.color, str(s.linestyle), s.marker) for s in looks.values()}) == 14
