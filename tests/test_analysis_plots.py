"""analysis.plots: each figure on a tiny frame has the expected lines/bars/cells and labels."""

from __future__ import annotations

import itertools

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection, QuadMesh
from matplotlib.patches import Rectangle

from analysis import plots


def _curves() -> pd.DataFrame:
    rows = []
    for env, scheme, scenario, step in itertools.product(
        ["Pendulum-v1", "Walker2d-v4"], ["fanin", "orthogonal"], ["a", "b", "c"], [0, 500, 1000]
    ):
        est = step / 1000 + (scheme == "orthogonal")
        rows.append(
            {"env": env, "init.scheme": scheme, "init.scenario": scenario,
             "group": f"{scheme} / {scenario}", "env_step": float(step), "estimate": est,
             "low": est - 0.1, "high": est + 0.1}
        )  # fmt: skip
    return pd.DataFrame(rows)


def _data_lines(ax) -> list:
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 0]


def _outer_labels_ok(axes: np.ndarray) -> bool:
    return all(ax.get_xlabel() for ax in axes[-1, :]) and all(ax.get_ylabel() for ax in axes[:, 0])


def test_learning_curves_lines_bands_facets():
    fig, axes = plots.plot_learning_curves(_curves(), hue="init.scheme", style="init.scenario")
    assert axes.shape == (1, 2)
    for ax in axes.ravel():
        assert len(_data_lines(ax)) == 2 * 3  # scheme x scenario
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 6
        assert "env = " in ax.get_title()
    assert _outer_labels_ok(axes)
    assert axes[0, 0].get_xlabel() == "env steps"
    # legend: 2 colours + 3 line styles
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 5


def test_learning_curves_rows_and_no_band_without_ci():
    frame = _curves()
    frame.loc[frame["env_step"] == 0, ["low", "high"]] = np.nan
    _, axes = plots.plot_learning_curves(frame, hue="init.scheme", row="init.scenario")
    assert axes.shape == (3, 2)
    assert all(len(_data_lines(ax)) == 2 for ax in axes.ravel())
    assert _outer_labels_ok(axes)


def _summary(metrics=("iqm", "mean", "median", "optimality_gap")) -> pd.DataFrame:
    rows = []
    for env, metric, (i, group) in itertools.product(
        ["Pendulum-v1", "all envs (normalised)"], metrics, enumerate(["a", "b", "c"])
    ):
        rows.append(
            {"env": env, "group": group, "init.scheme": ["fanin", "orthogonal", "kaiming"][i],
             "init.scenario": "x", "metric": metric, "estimate": float(i),
             "low": i - 0.5, "high": i + 0.5}
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
    # best (highest IQM) on top
    assert [t.get_text() for t in axes[0, 0].get_yticklabels()] == ["c", "b", "a"]
    bar = axes[0, 0].patches[0]
    assert bar.get_x() == pytest.approx(1.5) and bar.get_width() == pytest.approx(1.0)


def test_interval_plot_marks_missing_metric_panels():
    summary = _summary()
    summary = summary[~((summary["env"] == "Pendulum-v1") & (summary["metric"] == "median"))]
    _, axes = plots.plot_intervals(summary)
    assert len(axes[0, 2].patches) == 0 and axes[0, 2].texts[0].get_text() == "n/a"


def test_heatmap_cells_and_ci_text():
    rows = []
    for scheme, scenario in itertools.product(["fanin", "orthogonal"], ["s1", "s2", "s3"]):
        rows.append(
            {"env": "Pendulum-v1", "init.scheme": scheme, "init.scenario": scenario,
             "metric": "iqm", "estimate": 1.0, "low": 0.5, "high": 1.5}
        )  # fmt: skip
    frame = pd.DataFrame(rows[:-1])  # one cell without data
    _, axes = plots.plot_heatmap(frame, col_order=["s1", "s2", "s3"])
    ax = axes[0, 0]
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    assert mesh.get_array().size == 2 * 3
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 5 and all("[0.5, 1.5]" in t for t in texts)
    assert ax.get_xlabel() == "init.scenario" and ax.get_ylabel() == "init.scheme"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["s1", "s2", "s3"]


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


def test_performance_profiles_lines():
    frame = pd.DataFrame(
        {"group": np.repeat(["a", "b"], 4), "env": "e", "tau": np.tile([0, 1, 2, 3], 2),
         "fraction": [1, 0.8, 0.2, 0, 1, 1, 0.6, 0.1], "low": 0.0, "high": 1.0}
    )  # fmt: skip
    _, axes = plots.plot_performance_profiles(frame)
    assert axes.shape == (1, 1) and len(_data_lines(axes[0, 0])) == 2
    assert _outer_labels_ok(axes)


def _hist() -> pd.DataFrame:
    edges = np.linspace(-1, 1, 21)
    rows = []
    for scheme, scenario, seed, dim in itertools.product(
        ["fanin", "orthogonal"], ["s1", "s2"], [0, 1], [0, 1]
    ):
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
    fig, axes = plots.plot_action_histograms(_hist(), row=None, hue="init.scheme", dims="first")
    assert axes.shape == (1, 2) and all(len(ax.patches) == 2 for ax in axes.ravel())  # stairs
    assert len(fig.legends[0].get_texts()) == 2


def test_clip_vs_coverage_one_point_per_run():
    summary = pd.DataFrame(
        {"trial_id": ["t1", "t1", "t2", "t3", "t4"], "seed": [0, 0, 0, 0, 0], "env": "e",
         "init.scheme": ["fanin", "fanin", "fanin", "orthogonal", "orthogonal"],
         "init.scenario": ["s1", "s1", "s2", "s1", "s2"], "action_dim": [0, 1, 0, 0, 0],
         "coverage": [0.5, 0.7, 0.8, 0.9, 1.0], "clip_frac": [0.1, 0.3, 0.0, 0.2, 0.4]}
    )  # fmt: skip
    _, axes = plots.plot_clip_vs_coverage(summary)
    ax = axes[0, 0]
    points = np.concatenate(
        [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    )
    assert len(points) == 4  # t1's two action dims averaged into one point
    assert [0.6, 0.2] in points.round(6).tolist()
    assert ax.get_xlabel() == "action-space coverage" and ax.get_ylabel() == "clip fraction"


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


def test_group_palette_is_colour_blind_palette_up_to_ten():
    import seaborn as sns

    palette = plots.group_palette(["a", "b", "c"])
    assert list(palette.values()) == sns.color_palette("colorblind", 3)
    assert len(set(plots.group_palette([str(i) for i in range(14)]).values())) == 14
