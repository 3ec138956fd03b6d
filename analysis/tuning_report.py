"""The report's "Tuning cost" section, for sweeps with a ``search:`` block.

:func:`build` turns the report's final scores into the tuning tables and figures
(:mod:`analysis.tuning` has the maths), :func:`compose` writes the section. Figures are
functions of DataFrames returning ``(fig, axes)``; nothing here reads files.

Runs are grouped into *cells* (the sweep's varying keys: agent, env, ...) and a cell's
*configurations* (its sampled draws; the trial group, shared by the seeds). The *family* of a
cell is its varying keys without ``env``. Only finished runs count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from analysis import plots
from analysis.tuning import (
    config_improvement,
    expected_best_at_budget,
    percentile_normalise,
    sensitivity_phi,
    sensitivity_table,
    success_table,
    tuning_curves,
)

__all__ = ["TuningResult", "build", "compose", "plot_expected_best", "plot_slices"]


@dataclass
class TuningResult:
    """Everything the section shows."""

    family: list[str]  # the cell keys except env (e.g. ["agent"])
    keys: dict[str, list[str]]  # family label -> its searched knobs
    log_keys: set[str]
    samples: int
    runs: pd.DataFrame  # one row per finished run: family, env, config, draw, seed, score, steps
    configs: pd.DataFrame  # one row per configuration: mean score over seeds + knob values
    curves: pd.DataFrame  # tuning_curves per family x env
    sensitivity: pd.DataFrame
    phi: pd.DataFrame | None  # None with one env
    equal_data: pd.DataFrame = field(default_factory=pd.DataFrame)  # per env at one budget
    success: pd.DataFrame = field(default_factory=pd.DataFrame)  # share reaching the threshold
    versus: pd.DataFrame = field(default_factory=pd.DataFrame)  # random configs, family pairs
    mode: str = "max"
    excluded: int = 0  # runs left out (not finished)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (name, caption)


def build(
    info: Any,
    runs: pd.DataFrame,
    *,
    mode: str = "max",
    reps: int = 1000,
    seed: int = 0,
    thresholds: dict[Any, float] | None = None,
    save: Callable[[Any, str], None] | None = None,
    out_dir: Path | None = None,
) -> TuningResult | None:
    """The section's numbers (and figures, through ``save(fig, name)``), or None for a sweep
    without ``search:``. ``info`` is :class:`analysis.load.SweepInfo`, ``runs`` the report's
    final scores (:func:`analysis.stats.final_scores`), ``thresholds`` the score per env that
    counts a configuration as working (the report's steps-to-threshold ones). CSVs go to
    ``out_dir`` when given."""
    search = (info.resolved or {}).get("search")
    if not search:
        return None
    planned = {str(t["trial_id"]): t for t in info.planned_trials}
    cell_keys = [k for k in info.varying_keys if k in runs.columns and k != "seed"]
    family = [k for k in cell_keys if k != "env"]
    data = runs.copy()
    data["config"] = data["trial_id"].map(lambda t: planned.get(str(t), {}).get("group"))
    data["draw"] = data["trial_id"].map(lambda t: planned.get(str(t), {}).get("draw"))
    planned_steps = data["trial_id"].map(
        lambda t: (planned.get(str(t), {}).get("config") or {}).get("total_steps")
    )
    steps = data.get("planned_steps", planned_steps)
    data["steps"] = pd.to_numeric(steps, errors="coerce").fillna(planned_steps).astype(float)
    data["family"] = _labels(data, family)
    excluded = int((data["state"] != "finished").sum()) if "state" in data else 0
    if "state" in data:
        data = data[data["state"] == "finished"]
    data = data[data["score"].notna() & data["config"].notna()].reset_index(drop=True)
    distributions: dict[str, list[str]] = search.get("distributions", {})
    log_keys = {
        k
        for k, texts in distributions.items()
        if all(str(t).startswith("loguniform") for t in texts)
    }
    searched = data["trial_id"].map(lambda t: planned.get(str(t), {}).get("searched"))
    keys = {}
    for fam, sub in data.groupby("family", sort=False):
        listed = {k for ks in searched[sub.index] if isinstance(ks, list) for k in ks}
        if not listed:  # no per-trial record: the knobs whose values vary in the family
            listed = {k for k in distributions if k in sub and sub[k].nunique() > 1}
        keys[fam] = [k for k in distributions if k in listed and k in sub]
    knob_cols = [k for k in distributions if k in data]
    configs = (
        data.groupby(["family", "env", "config", "draw"], sort=False, dropna=False)
        .agg(
            score=("score", "mean"),
            seeds=("seed", "nunique"),
            steps=("steps", "sum"),
            **{k: (k, "first") for k in knob_cols},
        )
        .reset_index()
    )
    curves = tuning_curves(data, ["family", "env"], mode=mode, reps=reps, seed=seed)
    # the same with the configurations resampled too: the luck of the draw (bands exist with
    # one seed as well)
    drawn = tuning_curves(
        data, ["family", "env"], mode=mode, reps=reps, seed=seed, resample="seeds+configs"
    )
    curves["draw_low"], curves["draw_high"] = drawn["low"], drawn["high"]
    sens = pd.concat(
        [
            sensitivity_table(sub, keys.get(fam, []), ["family", "env"], mode=mode)
            for fam, sub in configs.groupby("family", sort=False)
        ]
        or [pd.DataFrame()],
        ignore_index=True,
    )
    equal = []
    for _, sub in data.groupby("env", sort=False):
        # the budget: the most expensive family's single configuration in this env
        budget = float(sub.groupby(["family", "config"])["steps"].sum().max())
        table = expected_best_at_budget(
            sub, ["family", "env"], budget, mode=mode, reps=reps, seed=seed
        )
        equal.append(table.assign(budget=budget))
    success = success_table(configs, ["family", "env"], thresholds or {}, mode=mode)
    versus = _versus(configs, mode=mode, reps=reps, seed=seed)
    phi = None
    if data["env"].nunique() > 1:
        data["normalised"] = percentile_normalise(data["score"], data["env"], mode=mode)
        phi = sensitivity_phi(data, family="family", setting="draw", reps=reps, rng_seed=seed)
    result = TuningResult(
        family,
        keys,
        log_keys,
        int(search.get("samples", 0)),
        data,
        configs,
        curves,
        sens,
        phi,
        pd.concat(equal, ignore_index=True) if equal else pd.DataFrame(),
        success,
        versus,
        mode,
        excluded,
    )
    if out_dir is not None:
        curves.to_csv(out_dir / "tuning_curves.csv", index=False)
        result.equal_data.to_csv(out_dir / "tuning_equal_data.csv", index=False)
        configs.to_csv(out_dir / "tuning_configs.csv", index=False)
        sens.to_csv(out_dir / "tuning_sensitivity.csv", index=False)
        success.to_csv(out_dir / "tuning_success.csv", index=False)
        versus.to_csv(out_dir / "tuning_versus.csv", index=False)
        if phi is not None:
            phi.to_csv(out_dir / "tuning_phi.csv", index=False)
    if save is not None and not data.empty:
        _figures(result, save)
    return result


MIN_CONFIGS = 4
"""Configurations each family needs before a random-configuration comparison gets a verdict
(the report's rule for runs: with fewer no rank test can reach the 5% level)."""


def _versus(configs: pd.DataFrame, *, mode: str, reps: int, seed: int) -> pd.DataFrame:
    """Per env and pair of families: P(a random configuration of A beats one of B), with a
    bootstrap band over each family's configurations, and a verdict."""
    rows = []
    for env, sub in configs.groupby("env", sort=False):
        scores = {f: g["score"].dropna().to_numpy() for f, g in sub.groupby("family", sort=False)}
        families = list(scores)
        for i, a in enumerate(families):
            for b in families[i + 1 :]:
                p, low, high = config_improvement(
                    scores[a], scores[b], mode=mode, reps=reps, seed=seed
                )
                few = min(len(scores[a]), len(scores[b])) < MIN_CONFIGS
                if few:
                    verdict = f"too few configurations (a verdict needs >= {MIN_CONFIGS} each)"
                elif low > 0.5:
                    verdict = f"supported: {a} better"
                elif high < 0.5:
                    verdict = f"supported: {b} better"
                else:
                    verdict = "not supported"
                rows.append(
                    {
                        "env": env,
                        "a": a,
                        "b": b,
                        "configs_a": len(scores[a]),
                        "configs_b": len(scores[b]),
                        "p": p,
                        "low": low,
                        "high": high,
                        "verdict": verdict,
                    }
                )
    columns = ["env", "a", "b", "configs_a", "configs_b", "p", "low", "high", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def _labels(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    if not keys:
        return pd.Series(["all"] * len(frame), index=frame.index)
    return frame[list(keys)].astype(str).agg(" ".join, axis=1)


def _figures(result: TuningResult, save: Callable[[Any, str], None]) -> None:
    for x, name, caption in (
        (
            "n",
            "tuning_expected_best_vs_trials",
            "Expected best final score after n random-search trials (Dodge et al.), per family; "
            "bands: 95% bootstrap over seeds (paired). n = 1 is a random configuration's mean.",
        ),
        (
            "env_steps",
            "tuning_expected_best_vs_env_steps",
            "The same against the real env steps spent, tuning included: n x the steps one "
            "configuration costs (total_steps x seeds).",
        ),
    ):
        fig, _ = plot_expected_best(result.curves, x=x, mode=result.mode)
        save(fig, name)
        plt.close(fig)
        result.figures.append((name, caption))
    for fam, sub in result.configs.groupby("family", sort=False):
        knobs = result.keys.get(fam, [])
        if not knobs:
            continue
        fig, _ = plot_slices(sub, knobs, log_keys=result.log_keys, title=str(fam))
        name = "tuning_slices_" + "".join(c if c.isalnum() else "_" for c in str(fam))
        save(fig, name)
        plt.close(fig)
        result.figures.append(
            (
                name,
                f"{fam}: each configuration's final score (mean over its "
                "seeds) against each searched knob; one panel per knob, "
                "colour per env.",
            )
        )


def plot_expected_best(curves: pd.DataFrame, *, x: str = "n", mode: str = "max") -> tuple:
    """Expected best score vs ``x`` (``n`` or ``env_steps``), a line per family, a panel per
    env. ``curves``: :func:`analysis.tuning.tuning_curves` with ``family`` and ``env``."""
    envs = list(pd.unique(curves["env"]))
    families = list(pd.unique(curves["family"]))
    colours = plots.group_palette(families, "agent")
    with plots.theme():
        fig, axes = plt.subplots(
            1, len(envs), figsize=(min(4.2 * len(envs) + 1.5, 10), 3.3), squeeze=False
        )
        for ax, env in zip(axes[0], envs):
            for fam in families:
                c = curves[(curves["env"] == env) & (curves["family"] == fam)]
                if c.empty:
                    continue
                ax.plot(c[x], c["estimate"], marker="o", ms=3, color=colours[fam], label=fam)
                ax.fill_between(c[x], c["low"], c["high"], color=colours[fam], alpha=0.2, lw=0)
            ax.set_title(str(env))
            ax.set_xlabel("random-search trials n" if x == "n" else "real env steps incl. tuning")
            if x == "env_steps":
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
        axes[0][0].set_ylabel(f"expected best final score ({'max' if mode == 'max' else 'min'})")
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="center right", frameon=False)
            fig.subplots_adjust(right=0.82)
        fig.tight_layout(rect=(0, 0, 0.84, 1))
    return fig, axes


def plot_slices(
    configs: pd.DataFrame,
    keys: Sequence[str],
    *,
    log_keys: set[str] = frozenset(),
    title: str | None = None,
) -> tuple:
    """Score against each knob (slice plots): a panel per knob, a point per configuration,
    colour per env. ``configs``: one row per configuration with ``score``, ``env`` and the
    knob columns; ``log_keys`` get a log x axis."""
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    envs = list(pd.unique(configs["env"]))
    colours = dict(zip(envs, plt.get_cmap("tab10").colors))
    with plots.theme():
        fig, axes = plt.subplots(
            rows, cols, figsize=(min(2.5 * cols, 10), 2.2 * rows + 0.4), squeeze=False
        )
        for ax, key in zip(axes.ravel(), keys):
            for env in envs:
                sub = configs[(configs["env"] == env) & configs[key].notna()]
                values = sub[key]
                if not pd.api.types.is_numeric_dtype(values):
                    values = values.astype(str)
                ax.scatter(
                    values, sub["score"], s=14, color=colours[env], label=str(env), alpha=0.8
                )
            if key in log_keys:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
            ax.set_xlabel(key.split(".", 1)[-1], fontsize=8)
            ax.tick_params(axis="x", labelrotation=30)
        for ax in axes.ravel()[len(keys) :]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("final score")
        if title:
            fig.suptitle(title)
        if len(envs) > 1:
            axes[0][0].legend(fontsize=7, frameon=False)
        fig.tight_layout()
    return fig, axes


def compose(doc: Any, result: TuningResult, figure_dir: str = "report/figures") -> None:
    """Append the "Tuning cost" section to a report document (``h``, ``p``, ``table``,
    ``figure``): what was searched, the expected best score, the families at equal real data,
    sensitivity across envs and per knob, and the files holding the numbers."""
    _intro(doc, result)
    if result.runs.empty:
        doc.p("No finished runs yet.")
        return
    _expected_best(doc, result, figure_dir)
    _equal_data(doc, result)
    _robustness(doc, result)
    _phi(doc, result)
    _knobs(doc, result, figure_dir)
    _files(doc, result)


def _intro(doc: Any, result: TuningResult) -> None:
    doc.h(2, "Tuning cost (random search)")
    n_runs, n_configs = len(result.runs), result.runs["config"].nunique()
    doc.p(
        f"Each family was searched with {result.samples} sampled configurations per env "
        f"(`search:` in the sweep file); {n_configs} configurations with {n_runs} finished runs "
        "count here"
        + (
            f" ({result.excluded} unfinished or failed runs are left out)"
            if result.excluded
            else ""
        )
        + ". A configuration's score is its final score averaged over its (paired) seeds. "
        "The expected best score after n trials is Dodge et al.'s estimator over these "
        "configurations; its bands are a 95% bootstrap over seeds, so they do not include the "
        "uncertainty of having drawn only these configurations: with few of them the curves "
        'are indicative. The tables "How many settings work" and "Random settings '
        'compared" below carry that uncertainty.'
    )


def _expected_best(doc: Any, result: TuningResult, figure_dir: str) -> None:
    curves = result.curves
    last = curves.sort_values("n", kind="stable").groupby(["family", "env"], sort=False).tail(1)
    envs = list(pd.unique(curves["env"]))
    last = last.sort_values("env", key=lambda c: c.map(envs.index), kind="stable")
    first = curves[curves["n"] == 1].set_index(["family", "env"])
    rows = []
    for r in last.itertuples(index=False):
        f = first.loc[(r.family, r.env)]
        rows.append(
            [
                str(r.env),
                str(r.family),
                str(r.configs),
                str(r.seeds),
                _ci(f["estimate"], f["low"], f["high"]),
                _interval(f["draw_low"], f["draw_high"]),
                _ci(r.estimate, r.low, r.high),
                _interval(r.draw_low, r.draw_high),
                f"{int(r.n)}",
                f"{r.env_steps:,.0f}",
            ]
        )
    doc.p(
        "**Expected best score.** n = 1: a random configuration's expected score; "
        "n = N: the best configuration found (the search's own result). The gap between "
        "the two is what tuning buys; env steps = the real data the N trials spent. "
        "Two bands: resampling seeds (how sure the configurations' scores are) and resampling "
        "the configurations too (how much another search of N draws could differ; at n = N "
        "it is the bootstrap of a maximum, biased low, so read it as a spread)."
    )
    doc.table(
        [
            "Env",
            "Family",
            "Configs",
            "Seeds",
            "n = 1 [95% CI, seeds]",
            "n = 1: 95% CI, configurations too",
            "n = N [95% CI, seeds]",
            "n = N: 95% CI, configurations too",
            "N",
            "Env steps for N trials",
        ],
        rows,
    )
    for name, caption in result.figures:
        if name.startswith("tuning_expected"):
            doc.figure(f"{figure_dir}/{name}", caption)


def _equal_data(doc: Any, result: TuningResult) -> None:
    if not result.equal_data.empty:
        doc.p(
            "**At equal real data, tuning included.** Each family's expected best score when "
            "its search may spend as many real env steps as the most expensive family's "
            "single configuration in that env: n = that budget / its steps per "
            "configuration. n above the configurations run (marked) keeps drawing from the "
            "same few scores, so it approaches the best one found: optimistic."
        )
        doc.table(
            ["Env", "Family", "Budget (env steps)", "n", "Expected best [95% CI]", "Note"],
            [
                [
                    str(r["env"]),
                    str(r["family"]),
                    f"{r['budget']:,.0f}",
                    str(int(r["n"])),
                    _ci(r["estimate"], r["low"], r["high"]),
                    "beyond the configurations run" if r["beyond_search"] else "",
                ]
                for _, r in result.equal_data.iterrows()
            ],
        )


def _robustness(doc: Any, result: TuningResult) -> None:
    if not result.success.empty:
        doc.p(
            "**How many settings work.** The share of each family's configurations whose "
            "score reaches the env's threshold, with Wilson's 95% interval (over "
            "configurations: it includes the luck of the draw that the bands above leave "
            "out). Random search draws settings independently, so a search needs 1 / share "
            "trials on average until its first working setting, and that many times a "
            "configuration's real env steps: the data spent tuning before the agent can be "
            "used. With no success only a lower bound is known."
        )
        doc.table(
            [
                "Env",
                "Family",
                "Threshold",
                "Reach it",
                "Share [95% CI]",
                "Trials to a working setting [95% CI]",
                "Env steps to a working setting [95% CI]",
            ],
            [
                [
                    str(r["env"]),
                    str(r["family"]),
                    _num(r["threshold"]),
                    f"{int(r['successes'])} of {int(r['configs'])}",
                    _ci(r["share"], r["share_low"], r["share_high"]),
                    _unbounded(r["trials"], r["trials_low"], r["trials_high"]),
                    _unbounded(r["env_steps"], r["env_steps_low"], r["env_steps_high"]),
                ]
                for _, r in result.success.iterrows()
            ],
        )
    if not result.versus.empty:
        doc.p(
            "**Random settings compared.** P(A > B): the chance that a random configuration "
            "of family A scores better than a random one of B in the same env (ties half), "
            "each at its own per-trial budget; the band resamples each family's "
            "configurations (95% bootstrap). Supported: the band excludes 0.5 and each family "
            f"has at least {MIN_CONFIGS} configurations. This is the tuning-free view: what a "
            "user gets without searching."
        )
        doc.table(
            ["Env", "A", "B", "Configs (A, B)", "P(A > B) [95% CI]", "Verdict"],
            [
                [
                    str(r["env"]),
                    str(r["a"]),
                    str(r["b"]),
                    f"{int(r['configs_a'])}, {int(r['configs_b'])}",
                    _ci(r["p"], r["low"], r["high"]),
                    str(r["verdict"]),
                ]
                for _, r in result.versus.iterrows()
            ],
        )


def _phi(doc: Any, result: TuningResult) -> None:
    if result.phi is not None and not result.phi.empty:
        doc.p(
            "**Sensitivity across envs (Adkins et al.).** Scores percentile-normalised per "
            "env (5th to 95th percentile of every run there, all families). Per-env tuned: "
            "the best configuration in each env, averaged over envs; cross-env tuned: the "
            "best single configuration (draw r, the same setting in every env) averaged "
            "over envs; Phi = their difference (0: one setting is best everywhere)."
        )
        doc.table(
            [
                "Family",
                "Envs",
                "Settings",
                "Per-env tuned",
                "Cross-env tuned",
                "Phi [95% CI]",
                "Best setting",
            ],
            [
                [
                    str(r["family"]),
                    str(r["envs"]),
                    str(r["settings"]),
                    _num(r["per_env_tuned"]),
                    _num(r["cross_env_tuned"]),
                    _ci(r["phi"], r.get("phi_low", np.nan), r.get("phi_high", np.nan)),
                    f"r{int(r['best_setting'])}" if pd.notna(r["best_setting"]) else "-",
                ]
                for _, r in result.phi.iterrows()
            ],
        )
    else:
        doc.p(
            "Sensitivity Phi (Adkins et al.) needs the same configurations in two or more "
            "envs; this run has one."
        )


def _knobs(doc: Any, result: TuningResult, figure_dir: str) -> None:
    if not result.sensitivity.empty:
        doc.p(
            "**Per-knob sensitivity.** Share of the variance of the configurations' scores "
            "explained by each knob (eta squared over its values or 4 quantile bins; with "
            "few configurations noise alone explains a good part, so read it as a ranking) "
            "and the best configuration's value."
        )
        doc.table(
            ["Env", "Family", "Knob", "Variance share", "Configs", "Best value"],
            [
                [
                    str(r["env"]),
                    str(r["family"]),
                    f"`{r['key']}`",
                    _num(r["variance_share"]),
                    str(r["configs"]),
                    _short(r["best_value"]),
                ]
                for _, r in result.sensitivity.iterrows()
            ],
        )
    for name, caption in result.figures:
        if name.startswith("tuning_slices"):
            doc.figure(f"{figure_dir}/{name}", caption)


def _files(doc: Any, result: TuningResult) -> None:
    doc.p(
        "The numbers: `report/tuning_curves.csv` (expected best per n), "
        "`report/tuning_equal_data.csv`, `report/tuning_configs.csv` (one row per "
        "configuration: its knobs and mean score), `report/tuning_sensitivity.csv`, "
        "`report/tuning_success.csv` (settings reaching the threshold), "
        "`report/tuning_versus.csv` (random configurations of two families)"
        + (", `report/tuning_phi.csv`" if result.phi is not None else "")
        + "."
    )


def _num(v: Any) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    if np.isnan(v):
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _ci(est: Any, low: Any, high: Any) -> str:
    if _num(low) == "-" or _num(high) == "-":
        return _num(est)
    return f"{_num(est)} [{_num(low)}, {_num(high)}]"


def _interval(low: Any, high: Any) -> str:
    if _num(low) == "-" or _num(high) == "-":
        return "-"
    return f"[{_num(low)}, {_num(high)}]"


def _unbounded(est: float, low: float, high: float) -> str:
    """An estimate that is infinite when nothing succeeded: then only its lower bound."""
    if np.isinf(est):
        return f"none found; >= {_num(low)}"
    if np.isinf(high):
        return f"{_num(est)} [{_num(low)}, no upper bound]"
    return _ci(est, low, high)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
