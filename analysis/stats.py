"""Statistics for RL ablations, following rliable (Agarwal et al., 2021).

Two layers, both pure (no file access):

- Array functions. Scores come as *strata*: a sequence with one array per task (env), runs on
  the last axis, shape ``(..., n_runs_k)``; strata may have different numbers of runs. Leading
  axes (e.g. evaluation steps) are carried along and resampled *paired* (a run is resampled
  as a whole curve). Aggregates follow rliable's definitions:

  - IQM: the 25%-trimmed mean of all runs of all tasks pooled (rliable ``aggregate_iqm``);
  - mean / median: mean / median over tasks of the per-task mean;
  - optimality gap: ``gamma - mean(min(score, gamma))`` per task, averaged over tasks;
  - probability of improvement P(X > Y): per task ``P(x > y) + 0.5 P(x == y)`` over all run
    pairs (the Mann-Whitney U statistic divided by ``m * n``), averaged over tasks.

  With equal run counts per task these equal rliable's numbers exactly (tested). Confidence
  intervals are stratified percentile bootstrap intervals: runs are resampled with replacement
  within each task, independently for each algorithm, via :func:`scipy.stats.bootstrap`
  (rliable's own bootstrap needs the ``arch`` package). A stratum with a single run cannot be
  resampled and is held fixed.

- DataFrame functions on the tidy table of :mod:`analysis.load`: :func:`final_scores` (one row
  per run), :func:`interval_table` (ranked by :func:`rank_groups`), :func:`poi_table`,
  :func:`profile_table`, :func:`learning_curves` and :func:`threshold_table`.

Direction: every function whose answer depends on which way is better takes ``mode``, the
sweep's ``mode`` (``"max"``: higher is better, the default and rliable's convention; ``"min"``:
lower is better, e.g. a world model's prediction error). With ``mode="min"`` "X better than Y"
means ``x < y`` (probability of improvement), a performance profile counts runs *below* tau,
steps-to-threshold looks for the first evaluation *at or below* the threshold, the optimality gap
measures how far runs stay *above* ``gamma``, and :func:`rank_groups` puts the lowest estimate
first. Values are never negated: tables stay in the metric's own units.

"Final performance" of a run is the mean of its last ``last_k`` evaluations (default 3) of the
metric, so a single lucky or unlucky evaluation does not decide a run. Failed runs are left out
of the statistics by default (they stopped early, so their last evaluations are not comparable);
running runs are included up to their last evaluation, and the tables say how many there are.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from analysis.load import RUN_KEYS, config_columns

__all__ = [
    "AGGREGATES",
    "MODES",
    "RETURN_METRICS",
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_optimality_gap",
    "bootstrap_ci",
    "check_mode",
    "cluster_bootstrap_ci",
    "final_scores",
    "group_labels",
    "higher_is_better",
    "identical_runs",
    "interval_table",
    "iqm",
    "is_return_metric",
    "learning_curves",
    "nan_iqm",
    "normalise_scores",
    "normalised_auc",
    "paired_improvement",
    "paired_poi_table",
    "performance_profile",
    "poi_table",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "profile_table",
    "rank_groups",
    "steps_to_threshold",
    "threshold_table",
]

ArrayLike = np.ndarray | Sequence[float]
Strata = Sequence[np.ndarray]

MODES = ("max", "min")
"""Metric directions, as in the sweep file's ``mode``: higher (``max``) or lower is better."""

RETURN_METRICS = ("eval/return", "train/return")
"""Episode-return metrics: the only ones that env scores (random / reference return) apply to,
i.e. that are normalised and have an optimality gap against the reference score."""


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is ``"max"`` or ``"min"``; raise ValueError otherwise."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'max' (higher is better) or 'min', got {mode!r}")
    return mode


def higher_is_better(mode: str) -> bool:
    """True for ``mode="max"``, False for ``"min"`` (ValueError for anything else)."""
    return check_mode(mode) == "max"


def is_return_metric(metric: str) -> bool:
    """Whether ``metric`` is an episode return (:data:`RETURN_METRICS`), so env scores apply."""
    return metric in RETURN_METRICS


# --------------------------------------------------------------------------------------------
# point estimates on arrays


def iqm(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Interquartile mean (25% trimmed mean) along ``axis``: shape of ``x`` without ``axis``."""
    return scipy.stats.trim_mean(np.asarray(x, dtype=float), 0.25, axis=axis)


def nan_iqm(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis`` ignoring NaNs (NaN where a slice is all NaN).

    Same trimming as :func:`scipy.stats.trim_mean`: ``int(0.25 * n)`` values are cut from each
    end, ``n`` the number of non-NaN values of the slice. Shape of ``x`` without ``axis``.
    """
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    n = np.sum(~np.isnan(x), axis=-1)
    cut = (0.25 * n).astype(int)
    ordered = np.nan_to_num(np.sort(x, axis=-1), nan=0.0)  # NaNs sort last
    csum = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(ordered, axis=-1)], axis=-1)
    upper = np.take_along_axis(csum, (n - cut)[..., None], axis=-1)[..., 0]
    lower = np.take_along_axis(csum, cut[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (upper - lower) / (n - 2 * cut)


def aggregate_iqm(*strata: np.ndarray) -> np.ndarray:
    """IQM of all runs of all tasks pooled. Strata ``(..., n_k)`` -> ``(...)``."""
    return iqm(np.concatenate([np.asarray(s, dtype=float) for s in strata], axis=-1))


def aggregate_mean(*strata: np.ndarray) -> np.ndarray:
    """Mean over tasks of the per-task mean score. Strata ``(..., n_k)`` -> ``(...)``."""
    return np.mean([np.mean(s, axis=-1) for s in strata], axis=0)


def aggregate_median(*strata: np.ndarray) -> np.ndarray:
    """Median over tasks of the per-task mean score. Strata ``(..., n_k)`` -> ``(...)``."""
    return np.median([np.mean(s, axis=-1) for s in strata], axis=0)


def aggregate_optimality_gap(
    *strata: np.ndarray, gamma: float = 1.0, mode: str = "max"
) -> np.ndarray:
    """How far runs fall short of ``gamma``, averaged over tasks: ``(..., n_k)`` -> ``(...)``.

    ``gamma - mean(min(score, gamma))`` per task (``mode="max"``, rliable's definition), or
    ``mean(max(score, gamma)) - gamma`` for ``mode="min"`` (how far runs stay above the target
    ``gamma``). Never negative; lower is better in both modes. ``gamma`` is in the units of the
    scores (1.0 for normalised scores, the reference return for raw ones).
    """
    if higher_is_better(mode):
        return np.mean([gamma - np.mean(np.minimum(s, gamma), axis=-1) for s in strata], axis=0)
    return np.mean([np.mean(np.maximum(s, gamma), axis=-1) - gamma for s in strata], axis=0)


AGGREGATES: dict[str, Callable[..., np.ndarray]] = {
    "iqm": aggregate_iqm,
    "mean": aggregate_mean,
    "median": aggregate_median,
    "optimality_gap": aggregate_optimality_gap,
}
"""Name -> aggregate function of strata; the keys are the ``metric`` values of the tables."""


def probability_of_improvement(x: Strata, y: Strata, *, mode: str = "max") -> np.ndarray:
    """P(X better than Y) averaged over tasks; ``x[k]`` and ``y[k]`` are the runs of task k.

    "Better" is ``x > y`` for ``mode="max"`` and ``x < y`` for ``mode="min"``. Shapes: ``x[k]``
    ``(..., m_k)``, ``y[k]`` ``(..., n_k)`` -> ``(...)``. Ties count one half, so P(X better
    than Y) + P(Y better than X) = 1.
    """
    if len(x) != len(y) or not len(x):
        raise ValueError(f"need the same, non-zero number of tasks, got {len(x)} and {len(y)}")
    higher = higher_is_better(mode)
    per_task = []
    for xs, ys in zip(x, y, strict=True):
        xs = np.asarray(xs, dtype=float)[..., :, None]
        ys = np.asarray(ys, dtype=float)[..., None, :]
        better = (xs > ys) if higher else (xs < ys)
        per_task.append(np.mean(better + 0.5 * (xs == ys), axis=(-2, -1)))
    return np.mean(per_task, axis=0)


def normalise_scores(scores: ArrayLike, random: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """``(score - random) / (reference - random)``: 0 is a random policy, 1 the reference.

    All arguments broadcast together; the result has the broadcast shape.
    """
    scores, random, reference = (np.asarray(a, dtype=float) for a in (scores, random, reference))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (scores - random) / (reference - random)


def normalised_auc(steps: ArrayLike, values: ArrayLike) -> np.ndarray:
    """Area under a learning curve divided by its length in env steps: the average return.

    ``steps`` ``(T,)``, ``values`` ``(..., T)`` -> ``(...)``. Trapezoidal rule; NaN if fewer
    than two steps. Pass normalised scores to get a normalised AUC (0 random, 1 reference).
    """
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    if steps.size < 2 or steps[-1] == steps[0]:
        return np.full(values.shape[:-1], np.nan)
    return np.trapezoid(values, steps, axis=-1) / (steps[-1] - steps[0])


# --------------------------------------------------------------------------------------------
# interval estimates on arrays


def bootstrap_ci(
    strata: Strata,
    statistic: Callable[..., np.ndarray],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified percentile bootstrap CI of ``statistic(*strata)``.

    ``strata[k]`` has shape ``(..., n_k)`` (runs last, leading axes shared by all strata);
    each stratum is resampled with replacement independently of the others (scipy's multi-sample
    bootstrap), leading axes paired. ``statistic`` maps the strata to shape ``(...)`` (or reduces
    leading axes too). Returns ``(estimate, low, high)`` with the statistic's shape; the bounds
    are NaN when no stratum has two runs.
    """
    arrays = [np.asarray(s, dtype=float) for s in strata]
    estimate = np.asarray(statistic(*arrays))
    varying = [i for i, a in enumerate(arrays) if a.shape[-1] >= 2]
    if not varying or reps <= 0:
        nan = np.full(estimate.shape, np.nan)
        return estimate, nan, nan.copy()

    def resampled_statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        batch_shape = samples[0].shape[:-1]
        full = []
        it = iter(samples)
        for i, a in enumerate(arrays):
            if i in varying:
                full.append(next(it))
            else:  # held fixed: broadcast to (..., reps, n_k)
                full.append(np.broadcast_to(a[..., None, :], (*batch_shape, a.shape[-1])))
        return statistic(*full)

    res = scipy.stats.bootstrap(
        [arrays[i] for i in varying],
        resampled_statistic,
        n_resamples=reps,
        vectorized=True,
        axis=-1,
        confidence_level=confidence,
        method="percentile",
        rng=seed,
    )
    low = np.asarray(res.confidence_interval.low, dtype=float)
    high = np.asarray(res.confidence_interval.high, dtype=float)
    return estimate, low, high


def cluster_bootstrap_ci(
    strata: Strata,
    clusters: Sequence[ArrayLike],
    statistic: Callable[..., np.ndarray],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of ``statistic(*strata)`` that resamples whole clusters.

    ``strata[k]`` ``(n_k,)`` are the runs of task k and ``clusters[k]`` ``(n_k,)`` their cluster
    ids (e.g. seeds: runs of one seed share its env seeds and evaluation start states, so they
    are not independent). Each resample draws, within every task independently, as many
    clusters as the task has, with replacement, and takes all runs of each drawn cluster.
    ``statistic`` maps strata ``(..., m_k)`` to ``(...)`` (the aggregates of this module).
    Returns ``(estimate, low, high)``; the bounds are NaN when no task has two clusters. With
    one run per cluster this is the run bootstrap.
    """
    arrays = [np.asarray(s, dtype=float) for s in strata]
    ids = [np.asarray(c) for c in clusters]
    if len(ids) != len(arrays) or any(len(c) != len(a) for c, a in zip(ids, arrays, strict=True)):
        raise ValueError("clusters must give one id per run of every stratum")
    estimate = np.asarray(statistic(*arrays), dtype=float)
    members = []  # per task: list of index arrays, one per cluster
    for c in ids:
        _, inverse = np.unique(c, return_inverse=True)
        members.append([np.flatnonzero(inverse == j) for j in range(inverse.max() + 1)])
    if reps <= 0 or all(len(m) < 2 for m in members):
        nan = np.full(estimate.shape, np.nan)
        return estimate, nan, nan.copy()
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(m), size=(reps, len(m))) for m in members]
    sizes = [{len(ix) for ix in m} for m in members]
    if all(len(sz) == 1 for sz in sizes):  # balanced: one gather per task
        samples = []
        for a, m, d in zip(arrays, members, draws, strict=True):
            block = a[np.stack(m)]  # (n_clusters, size)
            samples.append(block[d].reshape(reps, -1))
        values = np.asarray(statistic(*samples), dtype=float)
    else:
        values = np.array(
            [
                statistic(
                    *(
                        a[np.concatenate([m[j] for j in d[r]])]
                        for a, m, d in zip(arrays, members, draws, strict=True)
                    )
                )
                for r in range(reps)
            ],
            dtype=float,
        )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha], axis=0)
    return estimate, np.asarray(low), np.asarray(high)


def probability_of_improvement_ci(
    x: Strata,
    y: Strata,
    *,
    mode: str = "max",
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """P(X better than Y) averaged over tasks with a stratified bootstrap CI: ``(p, low, high)``.

    ``x[k]`` ``(m_k,)`` and ``y[k]`` ``(n_k,)`` are the final scores of task k; X's and Y's runs
    are resampled independently within each task (rliable's StratifiedIndependentBootstrap).
    ``mode`` as in :func:`probability_of_improvement`.
    """
    n_tasks = len(x)
    check_mode(mode)

    def statistic(*samples: np.ndarray) -> np.ndarray:
        return probability_of_improvement(samples[:n_tasks], samples[n_tasks:], mode=mode)

    p, low, high = bootstrap_ci([*x, *y], statistic, reps=reps, confidence=confidence, seed=seed)
    return float(p), float(low), float(high)


def performance_profile(
    strata: Strata,
    taus: ArrayLike,
    *,
    mode: str = "max",
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score distribution: fraction of runs scoring better than each ``tau``, averaged over tasks.

    Better than tau is ``score > tau`` for ``mode="max"`` (rliable's run-score distribution,
    with equal run counts) and ``score < tau`` for ``mode="min"``; either way a higher curve is
    better. ``strata[k]`` ``(n_k,)``, ``taus`` ``(n_tau,)`` -> ``(fraction, low, high)``, each
    ``(n_tau,)``.
    """
    taus = np.asarray(taus, dtype=float)
    tiled = [np.broadcast_to(np.asarray(s, dtype=float), (taus.size, len(s))) for s in strata]
    higher = higher_is_better(mode)

    def statistic(*samples: np.ndarray) -> np.ndarray:
        t = taus.reshape((-1,) + (1,) * (samples[0].ndim - 1))
        return np.mean([np.mean((s > t) if higher else (s < t), axis=-1) for s in samples], axis=0)

    return bootstrap_ci(tiled, statistic, reps=reps, confidence=confidence, seed=seed)


def steps_to_threshold(
    curves: np.ndarray,
    steps: ArrayLike,
    threshold: float,
    *,
    mode: str = "max",
    estimator: str = "iqm",
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """First env step at which a group's IQM (or mean) learning curve reaches ``threshold``.

    Reaching is ``curve >= threshold`` for ``mode="max"`` and ``curve <= threshold`` for
    ``mode="min"`` (e.g. the first evaluation with a prediction error at most ``threshold``).
    ``curves`` ``(T, n_runs)`` (NaN where a run has no evaluation, e.g. still running),
    ``steps`` ``(T,)`` increasing. Returns ``(step, low, high)`` with a bootstrap CI over runs;
    ``inf`` means "not reached within the evaluated steps" (for the estimate or a bound).
    """
    curves = np.asarray(curves, dtype=float)
    steps = np.asarray(steps, dtype=float)
    never = steps[-1] + max(steps[-1] - steps[0], 1.0)  # finite sentinel keeps percentiles sane
    center = nan_iqm if estimator == "iqm" else _nan_mean
    higher = higher_is_better(mode)

    def statistic(sample: np.ndarray) -> np.ndarray:
        curve = center(sample, axis=-1)  # (T, ...)
        hit = (curve >= threshold) if higher else (curve <= threshold)
        first = np.argmax(hit, axis=0)
        return np.where(hit.any(axis=0), steps[first], never)

    est, low, high = bootstrap_ci([curves], statistic, reps=reps, confidence=confidence, seed=seed)
    return tuple(  # type: ignore[return-value]
        float(np.inf) if v > steps[-1] else float(v) for v in (est, low, high)
    )


def _nan_mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        n = np.sum(~np.isnan(x), axis=axis)
        return np.nansum(x, axis=axis) / np.where(n > 0, n, np.nan)


# --------------------------------------------------------------------------------------------
# DataFrame level


def group_labels(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """A readable label per row from the group keys: values joined by ' / ' ('all' if none)."""
    if not keys:
        return pd.Series("all", index=frame.index, dtype=object)
    parts = [frame[k].map(_fmt_value) for k in keys]
    label = parts[0]
    for part in parts[1:]:
        label = label + " / " + part
    return label.astype(object)


def final_scores(
    df: pd.DataFrame,
    metric: str = "eval/return",
    *,
    last_k: int = 3,
    include_failed: bool = False,
    normalise: bool | None = None,
    window: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """One row per run (``trial_id``, ``seed``) with its final performance and learning AUC.

    ``df`` is the tidy table of :func:`analysis.load.load_sweep`. Returns a DataFrame of shape
    (n_runs, ...) with the run's ``env, state`` and config columns plus:

    - ``score``: mean of the run's last ``last_k`` evaluations of ``metric``, or with
      ``window=(lo, hi)`` the mean of its evaluations at env steps in ``[lo, hi]`` (NaN for a
      run without one there, e.g. one still running);
    - ``score_norm``: ``score`` normalised with the trial's env scores (NaN if unknown, or if
      not ``normalise``; by default only episode returns, :func:`is_return_metric`, are
      normalised: env scores are returns and mean nothing for, e.g., a prediction error);
    - ``auc`` / ``auc_norm``: :func:`normalised_auc` of the run's whole curve (raw / normalised);
    - ``n_evals``, ``last_step``: how many evaluations the run has and the last env step.

    Runs without any value of ``metric`` are absent; failed runs too unless ``include_failed``.
    Runs the sweep's scheduler stopped early (state ``stopped``) keep their row with NaN
    ``score`` and ``auc``: their curve ends before the budget, so neither is comparable.
    """
    if metric not in df.columns:
        raise KeyError(f"metric {metric!r} not in the table; metrics: {_metric_names(df)}")
    data = df[df[metric].notna() & df["env_step"].notna()]
    if not include_failed:
        data = data[data["state"] != "failed"]
    run_cols = [c for c in ("env", "state", *config_columns(df), "planned_steps") if c in df]
    run_cols += [c for c in ("env_score_random", "env_score_reference") if c in df]
    if data.empty:
        return pd.DataFrame(columns=[*RUN_KEYS, *run_cols, "score", "score_norm", "auc"])
    data = data.sort_values([*RUN_KEYS, "env_step"], kind="stable")
    grouped = data.groupby(list(RUN_KEYS), sort=False, dropna=False)
    runs = grouped[run_cols].first()
    if window is None:
        tail = grouped.tail(last_k).groupby(list(RUN_KEYS), sort=False, dropna=False)
        runs["score"] = tail[metric].mean()
    else:
        inside = data[(data["env_step"] >= window[0]) & (data["env_step"] <= window[1])]
        runs["score"] = inside.groupby(list(RUN_KEYS), sort=False, dropna=False)[metric].mean()
    if "state" in runs:  # stopped early by the sweep's scheduler: a partial curve, no score
        runs.loc[runs["state"] == "stopped", "score"] = np.nan
    runs["n_evals"] = grouped[metric].size()
    runs["last_step"] = grouped["env_step"].max()
    steps = data["env_step"].to_numpy(dtype=float)
    values = data[metric].to_numpy(dtype=float)
    bounds = np.cumsum([0, *grouped.size().to_numpy()])
    runs["auc"] = [
        float(normalised_auc(steps[a:b], values[a:b])) for a, b in itertools.pairwise(bounds)
    ]
    if "state" in runs:
        runs.loc[runs["state"] == "stopped", "auc"] = np.nan
    if normalise is None:
        normalise = is_return_metric(metric)
    rand, ref = _env_scores(runs)
    if not normalise:
        rand = ref = np.full(len(runs), np.nan)
    runs["score_norm"] = normalise_scores(runs["score"], rand, ref)
    runs["auc_norm"] = normalise_scores(runs["auc"], rand, ref)
    runs = runs.reset_index()
    runs.attrs["config_keys"] = config_columns(df)
    return runs


def interval_table(
    runs: pd.DataFrame,
    group: Sequence[str],
    *,
    value: str = "score",
    metrics: Sequence[str] = ("iqm", "mean", "median", "optimality_gap"),
    gamma: float = 1.0,
    mode: str = "max",
    stratify: str | None = "env",
    cluster: str | None = "seed",
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Aggregate metrics with stratified bootstrap CIs, one row per group x metric.

    ``runs`` has one row per run (e.g. :func:`final_scores`); runs are grouped by the unique
    combinations of the ``group`` columns and stratified by ``stratify`` (tasks). Returns a
    DataFrame with columns ``group`` (label), the group keys, ``metric, estimate, low, high,
    n_runs, n_strata, n_clusters``. ``gamma`` is the optimality-gap target in ``value``'s
    units; ``mode`` only matters for the optimality gap (:func:`aggregate_optimality_gap`).
    Rank the groups with :func:`rank_groups`.

    ``cluster``: a group that holds several runs of one seed in a task (a factor-level view
    pooling other factors: one run per seed and level of the pooled factor) does not have
    independent runs: runs sharing a seed share its env seeds and evaluation start states. Its
    CI then resamples whole seeds (:func:`cluster_bootstrap_ci`); ``n_clusters`` counts them.
    Groups with one run per seed use the run bootstrap (the same numbers as rliable's).
    """
    check_mode(mode)
    rows = []
    for label, keyvals, strata, clusters in _iter_strata(
        runs, group, value, stratify, cluster=cluster or ""
    ):
        clustered = any(len(np.unique(c)) < len(c) for c in clusters.values())
        for metric in metrics:
            func = AGGREGATES[metric]
            if metric == "optimality_gap":
                func = _partial_gamma(gamma, mode)
            if clustered:
                est, low, high = cluster_bootstrap_ci(
                    list(strata.values()),
                    list(clusters.values()),
                    func,
                    reps=reps,
                    confidence=confidence,
                    seed=seed,
                )
            else:
                est, low, high = bootstrap_ci(
                    list(strata.values()), func, reps=reps, confidence=confidence, seed=seed
                )
            rows.append(
                {
                    "group": label,
                    **keyvals,
                    "metric": metric,
                    "estimate": float(est),
                    "low": float(low),
                    "high": float(high),
                    "n_runs": int(sum(len(s) for s in strata.values())),
                    "n_strata": len(strata),
                    "n_clusters": int(sum(len(np.unique(c)) for c in clusters.values())),
                }
            )
    columns = [
        "group",
        *group,
        "metric",
        "estimate",
        "low",
        "high",
        "n_runs",
        "n_strata",
        "n_clusters",
    ]
    return pd.DataFrame(rows, columns=columns)


def rank_groups(table: pd.DataFrame, metric: str = "iqm", *, mode: str = "max") -> list[str]:
    """Group labels of an :func:`interval_table`, best ``metric`` estimate first.

    Best is the highest estimate for ``mode="max"`` and the lowest for ``mode="min"`` (the
    optimality gap is lower-is-better in both modes). Ties keep the table's order; groups
    without an estimate come last.
    """
    lower_first = not higher_is_better(mode) or metric == "optimality_gap"
    rows = table[table["metric"] == metric]
    ordered = rows.sort_values("estimate", ascending=lower_first, kind="stable", na_position="last")
    return [str(g) for g in ordered["group"].drop_duplicates()]


def poi_table(
    runs: pd.DataFrame,
    group: Sequence[str],
    *,
    value: str = "score",
    stratify: str | None = "env",
    pairs: Iterable[tuple[str, str]] | None = None,
    mode: str = "max",
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Probability of improvement between groups with stratified bootstrap CIs.

    One row per ordered pair ``(a, b)`` of group labels (all pairs if ``pairs`` is None): ``a,
    b, p`` (= P(a better than b), averaged over the tasks both have; better = higher value for
    ``mode="max"``, lower for ``"min"``), ``low, high, n_tasks``, ``n_min`` (the fewest runs
    either group has on a shared task) and ``supported``: True when the CI excludes 0.5 and
    ``n_min >= MIN_RUNS_FOR_SUPPORT``, i.e. the data support a difference in one direction.
    P(b better than a) = 1 - P(a better than b), so each unordered pair is bootstrapped once.
    """
    check_mode(mode)
    strata_by = {label: strata for label, _, strata in _iter_strata(runs, group, value, stratify)}
    if pairs is None:
        labels = list(strata_by)
        wanted = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
        mirror = True
    else:
        wanted, mirror = list(pairs), False
    rows = []
    for a, b in wanted:
        tasks = [t for t in strata_by[a] if t in strata_by[b]]
        n_min = min((min(len(strata_by[a][t]), len(strata_by[b][t])) for t in tasks), default=0)
        if not tasks:
            p = low = high = float("nan")
        else:
            p, low, high = probability_of_improvement_ci(
                [strata_by[a][t] for t in tasks],
                [strata_by[b][t] for t in tasks],
                mode=mode,
                reps=reps,
                confidence=confidence,
                seed=seed,
            )
        rows.append(
            {
                "a": a,
                "b": b,
                "p": p,
                "low": low,
                "high": high,
                "n_tasks": len(tasks),
                "n_min": n_min,
            }
        )
        if mirror:
            rows.append(
                {
                    "a": b,
                    "b": a,
                    "p": 1 - p,
                    "low": 1 - high,
                    "high": 1 - low,
                    "n_tasks": len(tasks),
                    "n_min": n_min,
                }
            )
    table = pd.DataFrame(rows, columns=["a", "b", "p", "low", "high", "n_tasks", "n_min"])
    table["supported"] = is_supported(table["low"], table["high"], table["n_min"])
    return table


#: fewest runs per group (on every shared task) before a difference can be called supported:
#: with n runs against n, the exact two-sided rank test (Mann-Whitney) cannot go below
#: 2 / C(2n, n), which is 0.33 for n = 2, 0.10 for 3 and first under 0.05 (0.029) at 4; the
#: percentile bootstrap of P(A > B) is degenerate there (2 vs 2 perfectly separated gives the
#: CI [1, 1]), so below this count no verdict is drawn, whatever the CI says
MIN_RUNS_FOR_SUPPORT = 4


def is_supported(low: ArrayLike, high: ArrayLike, n_min: ArrayLike) -> np.ndarray:
    """Element-wise: the CI [low, high] of P(A better than B) excludes 0.5 and both groups have
    at least :data:`MIN_RUNS_FOR_SUPPORT` runs (``n_min``) on every shared task."""
    low, high, n_min = (np.asarray(x, dtype=float) for x in (low, high, n_min))
    return ((low > 0.5) | (high < 0.5)) & (n_min >= MIN_RUNS_FOR_SUPPORT)


def profile_table(
    runs: pd.DataFrame,
    group: Sequence[str],
    *,
    value: str = "score",
    taus: ArrayLike | None = None,
    stratify: str | None = "env",
    mode: str = "max",
    reps: int = 500,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Performance profiles (fraction of runs better than tau, with CI bands) per group.

    Better than tau: above it for ``mode="max"``, below it for ``"min"``
    (:func:`performance_profile`). ``taus`` defaults to 51 points spanning the observed
    ``value`` range. Returns one row per group x tau: ``group``, group keys, ``tau, fraction,
    low, high``.
    """
    check_mode(mode)
    if taus is None:
        vals = runs[value].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        lo, hi = (vals.min(), vals.max()) if vals.size else (0.0, 1.0)
        taus = np.linspace(lo, hi if hi > lo else lo + 1.0, 51)
    taus = np.asarray(taus, dtype=float)
    frames = []
    for label, keyvals, strata in _iter_strata(runs, group, value, stratify):
        frac, low, high = performance_profile(
            list(strata.values()), taus, mode=mode, reps=reps, confidence=confidence, seed=seed
        )
        frame = pd.DataFrame({"tau": taus, "fraction": frac, "low": low, "high": high})
        frames.append(frame.assign(group=label, **keyvals))
    columns = ["group", *group, "tau", "fraction", "low", "high"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def learning_curves(
    df: pd.DataFrame,
    metric: str = "eval/return",
    group: Sequence[str] = (),
    *,
    estimator: str = "iqm",
    normalise: bool = False,
    include_failed: bool = False,
    reps: int = 500,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """IQM (or mean) learning curves with bootstrap CI bands, per env x group x env step.

    Runs of a group are put on the union of their evaluation steps (linear interpolation
    inside each run's own range, never beyond it). At each step the statistic uses the runs that
    have reached it; steps reached by the same runs are bootstrapped together, paired over
    steps. Returns columns ``env, group``, group keys, ``env_step, estimate, low, high, n_runs``
    (bounds NaN where fewer than two runs).
    """
    data = df[df[metric].notna() & df["env_step"].notna()]
    if not include_failed:
        data = data[data["state"] != "failed"]
    data = data.assign(group=group_labels(data, group))
    group = [k for k in group if k != "env"]  # env is always its own column here
    if normalise:
        rand, ref = _env_scores(data)
        data = data.assign(**{metric: normalise_scores(data[metric], rand, ref)})
    center = iqm if estimator == "iqm" else (lambda x, axis=-1: np.mean(x, axis=axis))
    frames = []
    for (env, label), sub in data.groupby(["env", "group"], sort=True):
        steps, values = _run_matrix(sub, metric)
        keyvals = {k: sub[k].iloc[0] for k in group}
        est, low, high, n = (np.full(steps.size, np.nan) for _ in range(4))
        present = ~np.isnan(values)
        patterns, inverse = np.unique(present, axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            rows = np.flatnonzero(inverse.ravel() == p)
            if not pattern.any():
                continue
            block = values[np.ix_(rows, np.flatnonzero(pattern))]
            e, lo, hi = bootstrap_ci([block], center, reps=reps, confidence=confidence, seed=seed)
            est[rows], low[rows], high[rows], n[rows] = e, lo, hi, pattern.sum()
        frames.append(
            pd.DataFrame(
                {
                    "env": env,
                    "group": label,
                    **keyvals,
                    "env_step": steps,
                    "estimate": est,
                    "low": low,
                    "high": high,
                    "n_runs": n.astype(int),
                }
            )
        )
    columns = ["env", "group", *group, "env_step", "estimate", "low", "high", "n_runs"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def threshold_table(
    df: pd.DataFrame,
    metric: str,
    group: Sequence[str],
    thresholds: float | Mapping[str, float],
    *,
    mode: str = "max",
    estimator: str = "iqm",
    include_failed: bool = False,
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Steps-to-threshold per env x group (:func:`steps_to_threshold`).

    ``thresholds`` is one value of ``metric`` for every env or a mapping env -> value (envs
    missing from the mapping are skipped); reached means at or above it for ``mode="max"``, at
    or below it for ``"min"``. Returns columns ``env, group``, group keys, ``threshold,
    estimate, low, high`` with ``inf`` meaning "not reached".
    """
    check_mode(mode)
    data = df[df[metric].notna() & df["env_step"].notna()]
    if not include_failed:
        data = data[data["state"] != "failed"]
    data = data.assign(group=group_labels(data, group))
    group = [k for k in group if k != "env"]  # env is always its own column here
    rows = []
    for (env, label), sub in data.groupby(["env", "group"], sort=True):
        thr = thresholds.get(env) if isinstance(thresholds, Mapping) else thresholds
        if thr is None or not np.isfinite(thr):
            continue
        steps, values = _run_matrix(sub, metric)
        est, low, high = steps_to_threshold(
            values,
            steps,
            float(thr),
            mode=mode,
            estimator=estimator,
            reps=reps,
            confidence=confidence,
            seed=seed,
        )
        keyvals = {k: sub[k].iloc[0] for k in group}
        rows.append(
            {
                "env": env,
                "group": label,
                **keyvals,
                "threshold": float(thr),
                "estimate": est,
                "low": low,
                "high": high,
            }
        )
    columns = ["env", "group", *group, "threshold", "estimate", "low", "high"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# paired comparisons (common random numbers: arms that share seeds)


#: fewest matched seeds before a paired difference can be called supported (the paired
#: counterpart of :data:`MIN_RUNS_FOR_SUPPORT`: the seed is the unit that is resampled)
MIN_SEEDS_FOR_SUPPORT = 4


def paired_improvement(
    wins: Sequence[Mapping[Any, float]],
    diffs: Sequence[Mapping[Any, float]],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> dict[str, float]:
    """Paired probability of improvement and mean difference, CIs resampling seeds.

    Per task k, ``wins[k][s]`` is seed s's share of matched pairs where A is better than B
    (ties count half; one pair per seed for cell-level groups, one per level of the pooled
    factors otherwise) and ``diffs[k][s]`` its mean difference A - B. Estimates average over
    seeds, then over tasks; each resample draws the seeds of every task with replacement, so
    the seed, not the run, is the independent unit. Returns ``p, low, high`` (paired P(A better
    than B)), ``diff, diff_low, diff_high``, ``n_seeds`` (matched seeds, summed over tasks),
    ``wins`` / ``losses`` (seeds where A / B is better on average) and ``sign_p``: the exact
    two-sided sign test of the seeds that are not tied (1.0 when all are tied).
    """
    if len(wins) != len(diffs) or not wins:
        raise ValueError("need the same, non-zero number of tasks for wins and diffs")
    w = [np.array([task[s] for s in sorted(task)], dtype=float) for task in wins]
    d = [np.array([diffs[k][s] for s in sorted(task)], dtype=float) for k, task in enumerate(wins)]
    if any(x.size == 0 for x in w):
        raise ValueError("every task needs at least one matched seed")

    def stat(*samples: np.ndarray) -> np.ndarray:
        return np.mean([np.mean(x, axis=-1) for x in samples], axis=0)

    out: dict[str, float] = {}
    for name, values in (("p", w), ("diff", d)):
        est, low, high = bootstrap_ci(values, stat, reps=reps, confidence=confidence, seed=seed)
        lo_key, hi_key = ("low", "high") if name == "p" else ("diff_low", "diff_high")
        out |= {name: float(est), lo_key: float(low), hi_key: float(high)}
    per_seed = np.concatenate(w)
    n_win, n_loss = int(np.sum(per_seed > 0.5)), int(np.sum(per_seed < 0.5))
    n = n_win + n_loss
    sign_p = 1.0 if n == 0 else float(scipy.stats.binomtest(n_win, n, 0.5).pvalue)
    return out | {"n_seeds": int(per_seed.size), "wins": n_win, "losses": n_loss, "sign_p": sign_p}


def paired_poi_table(
    runs: pd.DataFrame,
    group: Sequence[str],
    *,
    value: str = "score",
    stratify: str | None = "env",
    cluster: str = "seed",
    match: Sequence[str] | None = None,
    pairs: Iterable[tuple[str, str]] | None = None,
    mode: str = "max",
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Probability of improvement between groups, paired by seed where the groups share seeds.

    One row per ordered pair ``(a, b)`` (all pairs if ``pairs`` is None). Runs of A and B are
    matched within each task on ``cluster`` (the seed) and on the ``match`` keys (default: the
    config columns that are neither group keys nor ``stratify``/``cluster`` and have values on
    both sides, e.g. the scenario when comparing schemes pooled over scenarios); if nothing
    matches on those keys too, on the seed alone (every A run against every B run of the seed).
    Columns:

    - ``analysis``: ``"paired"`` when every task both groups have holds at least two matched
      seeds, else ``"unpaired"`` (fewer than two shared seeds: independent arms);
    - ``p, low, high, n_min, supported``: the analysis used. Paired: P(A better than B) over
      matched pairs with a CI resampling seeds (:func:`paired_improvement`), ``n_min`` the
      fewest matched seeds in a task, supported when that CI excludes 0.5, the CI of the mean
      difference excludes 0 on the same side, and ``n_min >=``
      :data:`MIN_SEEDS_FOR_SUPPORT`. Unpaired: :func:`poi_table`'s numbers;
    - ``diff, diff_low, diff_high``: mean per-seed difference A - B in ``value``'s units
      (paired only), ``wins, losses, n_seeds, n_pairs, sign_p``;
    - ``p_unpaired, low_unpaired, high_unpaired, n_min_unpaired, supported_unpaired``: the
      independent-runs analysis (:func:`poi_table`), shown beside the paired one;
    - ``agree``: both analyses reach the same verdict (supported the same way, or neither).
    """
    check_mode(mode)
    higher = higher_is_better(mode)
    labelled = runs[np.isfinite(runs[value].to_numpy(dtype=float))]
    labelled = labelled.assign(_group=group_labels(labelled, group).astype(str))
    if match is None:
        skip = {*group, stratify, cluster, "trial_id", "_group"}
        match = [k for k in runs.attrs.get("config_keys", []) if k not in skip and k in runs]
    labels = sorted(labelled["_group"].unique())
    if pairs is None:
        wanted = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
        mirror = True
    else:
        wanted, mirror = list(pairs), False
    unpaired = poi_table(
        runs,
        group,
        value=value,
        stratify=stratify,
        pairs=wanted,
        mode=mode,
        reps=reps,
        confidence=confidence,
        seed=seed,
    ).set_index(["a", "b"])
    tasks_of = {"all": labelled} if stratify is None else dict(list(labelled.groupby(stratify)))
    rows = []
    for a, b in wanted:
        wins, diffs, n_pairs = _seed_outcomes(tasks_of, a, b, cluster, match, value, higher)
        un = unpaired.loc[(a, b)]
        row = {
            "a": a,
            "b": b,
            "p_unpaired": un["p"],
            "low_unpaired": un["low"],
            "high_unpaired": un["high"],
            "n_min_unpaired": un["n_min"],
            "supported_unpaired": bool(un["supported"]),
        }
        if wins and min(len(w) for w in wins) >= 2:
            res = paired_improvement(wins, diffs, reps=reps, confidence=confidence, seed=seed)
            n_min = min(len(w) for w in wins)
            row |= {"analysis": "paired", "n_min": n_min, "n_pairs": n_pairs} | res
        else:
            row |= {
                "analysis": "unpaired",
                "p": un["p"],
                "low": un["low"],
                "high": un["high"],
                "n_min": un["n_min"],
                "n_pairs": 0,
            }
        rows.append(row)
    table = pd.DataFrame(rows, columns=_PAIRED_COLUMNS[:-2])
    if mirror and len(table):
        table = _with_mirrored(table, labels)
    table["supported"] = _supported(table, higher)
    table["agree"] = _same_verdict(table)
    return table[_PAIRED_COLUMNS]


def _seed_outcomes(
    tasks_of: dict[Any, pd.DataFrame],
    a: str,
    b: str,
    cluster: str,
    match: Sequence[str],
    value: str,
    higher: bool,
) -> tuple[list[dict], list[dict], int]:
    """Per task, each matched seed's win share of A over B (ties count half) and mean difference
    A - B: (wins, diffs, matched pairs). Empty lists if some task has runs of both groups that
    match on nothing (the comparison is then unpaired)."""
    wins, diffs, n_pairs = [], [], 0
    for sub in tasks_of.values():
        xa, xb = sub[sub["_group"] == a], sub[sub["_group"] == b]
        if xa.empty or xb.empty:
            continue
        matched = _match_runs(xa, xb, cluster, match, value)
        if matched.empty:
            return [], [], n_pairs
        better = (matched["va"] > matched["vb"]) if higher else (matched["va"] < matched["vb"])
        matched = matched.assign(
            w=better + 0.5 * (matched["va"] == matched["vb"]), d=matched["va"] - matched["vb"]
        )
        per_seed = matched.groupby(cluster)[["w", "d"]].mean()
        wins.append(per_seed["w"].to_dict())
        diffs.append(per_seed["d"].to_dict())
        n_pairs += len(matched)
    return wins, diffs, n_pairs


def _with_mirrored(table: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """The table with every pair (a, b) also as (b, a): P and its CI flipped around 0.5, the
    difference negated, wins and losses swapped; ordered by the group labels."""
    flipped = table.copy()
    flipped["a"], flipped["b"] = table["b"], table["a"]
    for p, lo, hi in (("p", "low", "high"), ("p_unpaired", "low_unpaired", "high_unpaired")):
        flipped[p], flipped[lo], flipped[hi] = 1 - table[p], 1 - table[hi], 1 - table[lo]
    flipped["diff"], flipped["diff_low"], flipped["diff_high"] = (
        -table["diff"],
        -table["diff_high"],
        -table["diff_low"],
    )
    flipped["wins"], flipped["losses"] = table["losses"], table["wins"]
    rank = {v: i for i, v in enumerate(labels)}
    table = pd.concat([table, flipped], ignore_index=True).sort_values(
        by=["a", "b"], key=lambda c: c.map(rank), kind="stable"
    )
    return table.reset_index(drop=True)


def _supported(table: pd.DataFrame, higher: bool) -> np.ndarray:
    """Whether each row's verdict is supported. Paired: P's CI excludes 0.5, the mean
    difference's CI excludes 0 on the same side (a consistent but negligible edge with the mean
    pointing the other way is no support) and every task has enough seeds; unpaired: its own."""
    a_better = (table["low"] > 0.5) & (
        (table["diff_low"] > 0) if higher else (table["diff_high"] < 0)
    )
    b_better = (table["high"] < 0.5) & (
        (table["diff_high"] < 0) if higher else (table["diff_low"] > 0)
    )
    paired_rule = (a_better | b_better) & (table["n_min"] >= MIN_SEEDS_FOR_SUPPORT)
    return np.where(
        table["analysis"] == "paired", paired_rule, table["supported_unpaired"].astype(bool)
    ).astype(bool)


_PAIRED_COLUMNS = [
    "a",
    "b",
    "analysis",
    "p",
    "low",
    "high",
    "n_min",
    "diff",
    "diff_low",
    "diff_high",
    "wins",
    "losses",
    "n_seeds",
    "n_pairs",
    "sign_p",
    "p_unpaired",
    "low_unpaired",
    "high_unpaired",
    "n_min_unpaired",
    "supported_unpaired",
    "supported",
    "agree",
]


def _same_verdict(table: pd.DataFrame) -> np.ndarray:
    """Both analyses support the same direction, or neither supports a difference."""

    def direction(p: pd.Series, supported: pd.Series) -> np.ndarray:
        return np.where(supported.astype(bool), np.sign(p.astype(float) - 0.5), 0.0)

    return direction(table["p"], table["supported"]) == direction(
        table["p_unpaired"], table["supported_unpaired"]
    )


def _match_runs(
    xa: pd.DataFrame, xb: pd.DataFrame, cluster: str, match: Sequence[str], value: str
) -> pd.DataFrame:
    """Matched pairs of runs of two groups in one task: columns ``cluster, va, vb``.

    Matched on ``cluster`` and the ``match`` keys that have values on both sides; if that
    matches nothing, on ``cluster`` alone (all cross pairs within a seed).
    """
    if cluster not in xa or cluster not in xb:
        return pd.DataFrame(columns=[cluster, "va", "vb"])
    keys = [k for k in match if xa[k].notna().all() and xb[k].notna().all()]
    for on in ([cluster, *keys], [cluster]):
        left = xa[[*on, value]].rename(columns={value: "va"})
        right = xb[[*on, value]].rename(columns={value: "vb"})
        left = left.astype({k: str for k in on if k != cluster})
        right = right.astype({k: str for k in on if k != cluster})
        merged = left.merge(right, on=on, how="inner")
        if len(merged):
            return merged[[cluster, "va", "vb"]]
    return pd.DataFrame(columns=[cluster, "va", "vb"])


def identical_runs(
    df: pd.DataFrame,
    records: Mapping[Any, str] | None = None,
    ignore: Sequence[str] = ("perf/", "wall_time"),
) -> pd.DataFrame:
    """Runs that repeat another run exactly: same env, seed and every metric at every step.

    Two trials whose configs differ only in settings that change nothing (``pytorch_default``
    layers under two output-gain settings: no layer's init changes) produce the same numbers
    at every evaluation; counting both as evidence would count one run twice. ``df`` is the
    tidy table; metric columns starting with an ``ignore`` prefix (timings) are left out of the
    comparison. ``records`` maps a trial id to its init record (``init_record.json``: every
    layer's scheme, gain and weight statistics after init); when given, runs are identical only
    if their trials' records are equal too, and a trial without a record is never a repeat.
    Returns one row per duplicate: ``trial_id, seed`` of the dropped run and ``same_as_trial,
    same_as_seed`` of the run kept (the first by trial id). Runs with fewer than two
    evaluations are never called identical.
    """
    cols = [
        c
        for c in df.columns
        if ("/" in c or c == "env_step") and not any(c.startswith(p) for p in ignore)
    ]
    columns = ["trial_id", "seed", "same_as_trial", "same_as_seed"]
    if "env_step" not in df or df.empty:
        return pd.DataFrame(columns=columns)
    data = df[df["env_step"].notna()].sort_values([*RUN_KEYS, "env_step"], kind="stable")
    keep: dict[tuple, tuple] = {}
    rows = []
    for (trial, run_seed), sub in data.groupby(list(RUN_KEYS), sort=True, dropna=False):
        if len(sub) < 2 or (records is not None and trial not in records):
            continue
        values = sub[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        env = sub["env"].iloc[0] if "env" in sub else None
        record = None if records is None else records[trial]
        key = (env, run_seed, record, values.shape, np.nan_to_num(values, nan=np.pi).tobytes())
        if key in keep:
            rows.append([trial, run_seed, *keep[key]])
        else:
            keep[key] = (trial, run_seed)
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# helpers


def _fmt_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _partial_gamma(gamma: float, mode: str = "max") -> Callable[..., np.ndarray]:
    def optimality_gap(*strata: np.ndarray) -> np.ndarray:
        return aggregate_optimality_gap(*strata, gamma=gamma, mode=mode)

    return optimality_gap


def _metric_names(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if "/" in c]


def _env_scores(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    def column(name: str) -> np.ndarray:
        if name in frame:
            return frame[name].to_numpy(dtype=float)
        return np.full(len(frame), np.nan)

    return column("env_score_random"), column("env_score_reference")


def _iter_strata(
    runs: pd.DataFrame,
    group: Sequence[str],
    value: str,
    stratify: str | None,
    *,
    cluster: str | None = None,
) -> Iterable[tuple]:
    """Yield ``(label, {key: value}, {task: scores (n_k,)})`` per group, NaN scores dropped.

    With ``cluster`` (a column, e.g. ``seed``) a fourth item ``{task: cluster ids (n_k,)}``
    follows (every run its own cluster when the column is missing).
    """
    data = runs[np.isfinite(runs[value].to_numpy(dtype=float))]
    data = data.assign(_group=group_labels(data, group))
    for label, sub in data.groupby("_group", sort=True):
        keyvals = {k: sub[k].iloc[0] for k in group}
        parts = {"all": sub} if stratify is None else dict(list(sub.groupby(stratify, sort=True)))
        strata = {task: s[value].to_numpy(dtype=float) for task, s in parts.items()}
        if cluster is None:
            yield str(label), keyvals, strata
            continue
        clusters = {
            task: (s[cluster].to_numpy() if cluster in s else np.arange(len(s)))
            for task, s in parts.items()
        }
        yield str(label), keyvals, strata, clusters


def _run_matrix(sub: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Curves of the runs in ``sub`` on the union of their steps: ``(T,)``, ``(T, n_runs)``."""
    table = sub.groupby(["env_step", *RUN_KEYS], dropna=False)[metric].mean()
    table = table.unstack(list(RUN_KEYS))
    table.index = table.index.astype(float)
    table = table.sort_index().interpolate(method="index", limit_area="inside")
    return table.index.to_numpy(dtype=float), table.to_numpy(dtype=float)


def paired_metric_table(
    df: pd.DataFrame,
    metrics: Sequence[str],
    group: Sequence[str],
    reference: str,
    *,
    last_k: int = 3,
    window: tuple[float, float] | None = None,
    match: Sequence[str] = (),
    reps: int = 2000,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Each group's final value of each of ``metrics``, and its per-seed difference from the
    ``reference`` group (the label :func:`group_labels` gives it), per env.

    A run's final value is :func:`final_scores`'s ``score`` (``last_k`` / ``window``). Runs of a
    group and of the reference are matched by seed (and the ``match`` keys, as in the paired
    analysis); a seed's difference is the mean over its matched pairs. No direction is assumed,
    so no verdict is drawn: a table of levels and paired differences for metrics other than the
    declared score (exploratory). Returns one row per (env, metric, group):

    ``env, metric, group, runs, iqm, median`` (over the group's runs), ``seeds`` (matched with
    the reference), ``diff_mean, diff_low, diff_high`` (mean per-seed difference group -
    reference, percentile bootstrap CI over seeds; NaN for the reference itself or with fewer
    than 2 seeds), ``diff_median`` and ``above`` (seeds where the group's value is higher).
    Metrics absent from ``df`` are skipped.
    """
    rows = []
    for metric in metrics:
        if metric not in df.columns or not df[metric].notna().any():
            continue
        runs = final_scores(df, metric, last_k=last_k, window=window)
        runs = runs[runs["score"].notna()].assign(label=group_labels(runs, group))
        for env, sub in runs.groupby("env", sort=True):
            ref = sub[sub["label"] == reference]
            for label, xs in sub.groupby("label", sort=False):
                row = {
                    "env": env,
                    "metric": metric,
                    "group": label,
                    "runs": len(xs),
                    "iqm": float(iqm(xs["score"].to_numpy())),
                    "median": float(xs["score"].median()),
                }
                if label == reference:
                    row.update(seeds=len(xs), above=0)
                    row.update(dict.fromkeys(("diff_mean", "diff_low", "diff_high"), np.nan))
                    row["diff_median"] = np.nan
                else:
                    pairs = _match_runs(xs, ref, "seed", match, "score")
                    diffs = (pairs["va"] - pairs["vb"]).groupby(pairs["seed"]).mean().to_numpy()
                    est, low, high = (np.nan,) * 3
                    if len(diffs):
                        est, low, high = bootstrap_ci(
                            [diffs], lambda d: d.mean(-1), reps=reps, seed=seed
                        )
                    row.update(
                        seeds=len(diffs),
                        diff_mean=float(est),
                        diff_low=float(low),
                        diff_high=float(high),
                        diff_median=float(np.median(diffs)) if len(diffs) else np.nan,
                        above=int((diffs > 0).sum()),
                    )
                rows.append(row)
    columns = ["env", "metric", "group", "runs", "iqm", "median", "seeds", "diff_mean"]
    columns += ["diff_low", "diff_high", "diff_median", "above"]
    return pd.DataFrame(rows, columns=columns)
