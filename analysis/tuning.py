"""What tuning costs: expected best score after n random-search trials, sensitivity, Phi.

Pure functions on arrays and tidy tables (one row per run or per configuration); the report
section and figures that use them are in :mod:`analysis.tuning_report`.

- **Expected best score after n trials** (Dodge et al. 2019, "Show Your Work"): with the N
  configurations' scores sorted, v_(1) <= ... <= v_(N), the expected maximum of n draws (with
  replacement) from their empirical distribution is

      E[max_n] = sum_i v_(i) [ (i/N)^n - ((i-1)/N)^n ],

  since P(max_n <= v_(i)) = (i/N)^n. n = 1 is the mean score of a random configuration, n -> inf
  the best one. Bands: a bootstrap over seeds (each resample draws the seed indices with
  replacement, the same ones for every configuration: seeds are paired) and optionally over the
  configurations too. Against env steps: n x the real env steps one configuration costs (its
  total_steps x its seeds), the notes' "if you include the data required for tuning" (Jordan et
  al. 2020 evaluate tuning-inclusive in the same spirit).
- **Sensitivity per hyperparameter**: the share of the variance of the configurations' scores
  explained by one knob (eta squared of a one-way ANOVA over its values, or over quantile bins of
  a continuous knob). With few configurations it is biased upwards (k groups of n explain about
  (k-1)/(n-1) of pure noise), so read it as a ranking of knobs, not as a fraction to trust.
- **Across environments** (Adkins, Bowling & White 2024): scores percentile-normalised per env
  ((x - p5) / (p95 - p5) over every run of every family in that env), and per family the
  sensitivity Phi = mean over envs of the per-env tuned performance (max over settings of the
  setting's mean normalised score in that env) minus the best single setting's mean over envs.
  Phi >= 0; 0 means one setting is the best everywhere (insensitive).
- **Robustness to the settings** (one env, no seeds needed): the share of configurations that
  reach a threshold score, with Wilson's interval, and from it the expected random-search
  trials (1 / share, draws being independent) and real env steps until the first one that does;
  and the probability that a random configuration of one family beats a random configuration of
  another (each family's configurations resampled for its bootstrap band). These put the
  uncertainty of having drawn only N configurations into the answer, which the seed bands above
  leave out.

``mode="min"`` (lower is better) turns every "best" into the minimum.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from numpy.typing import ArrayLike

from analysis.stats import probability_of_improvement_ci

__all__ = [
    "config_improvement",
    "config_scores",
    "expected_best",
    "expected_best_at_budget",
    "expected_best_curve",
    "percentile_normalise",
    "sensitivity_phi",
    "sensitivity_table",
    "success_table",
    "tuning_curves",
    "variance_explained",
    "wilson_interval",
]


def _sign(mode: str) -> float:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    return 1.0 if mode == "max" else -1.0


def expected_best(scores: ArrayLike, n: ArrayLike, *, mode: str = "max") -> np.ndarray:
    """Expected best of ``n`` i.i.d. draws from the empirical distribution of ``scores``.

    Args:
        scores: [N] the configurations' scores (NaNs are dropped).
        n: trials, an int or [K] ints >= 1.
        mode: ``max`` (expected maximum) or ``min`` (expected minimum).

    Returns:
        [K] (or a 0-d array for a scalar ``n``): Dodge et al.'s estimator; NaN if no score.
    """
    sign = _sign(mode)
    v = np.sort(sign * np.asarray(scores, dtype=float).ravel())
    v = v[~np.isnan(v)]
    n_arr = np.asarray(n)
    if np.any(n_arr < 1) or not np.issubdtype(n_arr.dtype, np.integer):
        raise ValueError(f"n must be integers >= 1, got {n!r}")
    if v.size == 0:
        return np.full(n_arr.shape, np.nan)
    i = np.arange(1, v.size + 1) / v.size
    ns = n_arr.reshape(-1, 1).astype(float)
    weights = i**ns - (i - 1 / v.size) ** ns  # [K, N]; each row sums to 1
    return (sign * weights @ v).reshape(n_arr.shape)


def expected_best_curve(
    scores: ArrayLike,
    ns: Sequence[int] | None = None,
    *,
    mode: str = "max",
    reps: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    resample: str = "seeds",
) -> pd.DataFrame:
    """Expected best score after n trials, n = 1..N, with bootstrap bands.

    Args:
        scores: [configs, seeds] the runs' scores; a configuration's score is the mean over
            its seeds (NaN: a missing run; a configuration without any run is dropped).
        ns: trial counts (default 1..N, N the configurations with a score).
        mode: ``max`` or ``min``.
        reps: bootstrap resamples (0: no bands).
        ci: coverage of the percentile interval.
        seed: bootstrap seed.
        resample: ``seeds`` (seed indices, shared by every configuration: paired seeds) or
            ``seeds+configs`` (the configurations as well: how much a new search could differ).

    Returns:
        DataFrame with columns ``n, estimate, low, high`` (one row per n).
    """
    if resample not in ("seeds", "seeds+configs"):
        raise ValueError(f"resample must be 'seeds' or 'seeds+configs', got {resample!r}")
    m = np.atleast_2d(np.asarray(scores, dtype=float))
    m = m[~np.all(np.isnan(m), axis=1)]
    n_configs, n_seeds = m.shape
    if ns is None:
        ns = range(1, n_configs + 1)
    ns = np.asarray(list(ns), dtype=int)
    with np.errstate(all="ignore"):
        estimate = (
            expected_best(np.nanmean(m, axis=1), ns, mode=mode)
            if n_configs
            else np.full(ns.shape, np.nan)
        )
    low = high = np.full(ns.shape, np.nan)
    if reps > 0 and n_configs > 0 and (n_seeds > 1 or resample == "seeds+configs"):
        rng = np.random.default_rng(seed)
        boot = np.empty((reps, ns.size))
        for b in range(reps):
            cols = rng.integers(0, n_seeds, n_seeds)
            rows = (
                rng.integers(0, n_configs, n_configs)
                if resample == "seeds+configs"
                else slice(None)
            )
            with np.errstate(all="ignore"), _no_warnings():
                means = np.nanmean(m[rows][:, cols], axis=1)
            boot[b] = expected_best(means, ns, mode=mode)
        low, high = _interval(boot, ci, axis=0)
    return pd.DataFrame({"n": ns, "estimate": estimate, "low": low, "high": high})


def config_scores(
    runs: pd.DataFrame,
    config: str = "config",
    *,
    score: str = "score",
    seed: str = "seed",
) -> tuple[np.ndarray, list[Any], list[Any]]:
    """Runs (one row each) -> ([configs, seeds] score matrix, config ids, seeds); NaN = no run."""
    pivot = runs.pivot_table(
        index=config, columns=seed, values=score, aggfunc="mean", dropna=False, sort=True
    )
    return pivot.to_numpy(dtype=float), list(pivot.index), list(pivot.columns)


def tuning_curves(
    runs: pd.DataFrame,
    cells: Sequence[str],
    *,
    config: str = "config",
    score: str = "score",
    steps: str = "steps",
    mode: str = "max",
    reps: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    resample: str = "seeds",
) -> pd.DataFrame:
    """Expected best score after n trials for every cell (e.g. agent x env).

    Args:
        runs: one row per run with the ``cells`` columns, ``config`` (the configuration's id,
            shared by its seeds), ``seed``, ``score`` and ``steps`` (the run's real env steps).
        cells: the columns whose combinations are searched separately.

    Returns:
        DataFrame with the cell columns and ``n, estimate, low, high, env_steps, configs, seeds``:
        ``env_steps`` = n x the mean real env steps of one configuration (all its seeds), the
        data a random search of n trials spends.
    """
    out = []
    keys = list(cells)
    for cell, sub in _cells(runs, keys):
        matrix, n_seeds, cost, configs = _search(sub, config, score, steps)
        curve = expected_best_curve(
            matrix, mode=mode, reps=reps, ci=ci, seed=seed, resample=resample
        )
        curve["env_steps"] = curve["n"] * cost
        curve["configs"] = configs
        curve["seeds"] = n_seeds
        for k, v in cell.items():
            curve.insert(keys.index(k), k, v)
        out.append(curve)
    if not out:
        return pd.DataFrame(
            columns=[*keys, "n", "estimate", "low", "high", "env_steps", "configs", "seeds"]
        )
    return pd.concat(out, ignore_index=True)


def expected_best_at_budget(
    runs: pd.DataFrame,
    cells: Sequence[str],
    budget: float,
    *,
    config: str = "config",
    score: str = "score",
    steps: str = "steps",
    mode: str = "max",
    reps: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Each cell's expected best score when a search may spend ``budget`` real env steps.

    n = floor(budget / the cell's steps per configuration), at least 1 (one configuration may
    cost more than the budget: ``over_budget``). For n above the configurations run the
    estimator keeps drawing from the same empirical distribution, so it approaches the best
    configuration found (``beyond_search``): an optimistic reading with few configurations.

    Returns:
        DataFrame with the cell columns and ``n, estimate, low, high, env_steps, configs,
        beyond_search, over_budget``.
    """
    rows = []
    keys = list(cells)
    for cell, sub in _cells(runs, keys):
        matrix, _, cost, configs = _search(sub, config, score, steps)
        n = max(1, int(budget // cost)) if cost > 0 else 1
        curve = expected_best_curve(matrix, [n], mode=mode, reps=reps, ci=ci, seed=seed)
        rows.append(
            {
                **cell,
                **curve.iloc[0].to_dict(),
                "n": n,
                "env_steps": n * cost,
                "configs": configs,
                "beyond_search": n > configs,
                "over_budget": n * cost > budget,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            *keys,
            "n",
            "estimate",
            "low",
            "high",
            "env_steps",
            "configs",
            "beyond_search",
            "over_budget",
        ],
    )


def wilson_interval(successes: int, trials: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a binomial share ``successes / trials`` (NaNs if no
    trials). Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0
    or N successes, which a handful of configurations often gives."""
    if trials <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    z = float(scipy.stats.norm.ppf(0.5 + ci / 2))
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    spread = np.sqrt(share * (1 - share) / trials + z * z / (4 * trials**2))
    half = z / (1 + z * z / trials) * spread
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def success_table(
    configs: pd.DataFrame,
    cells: Sequence[str],
    thresholds: dict[Any, float],
    *,
    env: str = "env",
    score: str = "score",
    steps: str = "steps",
    mode: str = "max",
    ci: float = 0.95,
) -> pd.DataFrame:
    """Per cell: how many of its configurations reach the threshold of their env.

    Args:
        configs: one row per configuration with the ``cells`` columns, ``env``, ``score`` (its
            mean over seeds) and ``steps`` (its real env steps, all seeds).
        thresholds: env -> the score to reach (``>=`` for ``max``, ``<=`` for ``min``); cells
            of an env without one are left out.

    Returns:
        DataFrame with the cell columns and ``threshold, configs, successes, share, share_low,
        share_high, trials, trials_low, trials_high, env_steps, env_steps_low,
        env_steps_high``. ``trials`` = 1 / share, the expected random-search trials until the
        first configuration that reaches the threshold (inf with no success; its interval from
        Wilson's), ``env_steps`` = trials x the mean real env steps of one configuration: the
        real data a search spends until it has a working setting.
    """
    sign = _sign(mode)
    rows = []
    for cell, sub in _cells(configs, cells):
        sub = sub[sub[score].notna()]
        if sub.empty:
            continue
        env_value = cell[env] if env in cell else sub[env].iloc[0]
        if env_value not in thresholds:
            continue
        threshold = float(thresholds[env_value])
        k, n = int((sign * sub[score] >= sign * threshold).sum()), len(sub)
        low, high = wilson_interval(k, n, ci)
        cost = float(sub[steps].mean())
        trials = [1 / v if v > 0 else np.inf for v in (k / n, high, low)]
        rows.append(
            {
                **cell,
                "threshold": threshold,
                "configs": n,
                "successes": k,
                "share": k / n,
                "share_low": low,
                "share_high": high,
                "trials": trials[0],
                "trials_low": trials[1],
                "trials_high": trials[2],
                "env_steps": trials[0] * cost,
                "env_steps_low": trials[1] * cost,
                "env_steps_high": trials[2] * cost,
            }
        )
    columns = ["threshold", "configs", "successes", "share", "share_low", "share_high"]
    columns += [f"{a}{b}" for a in ("trials", "env_steps") for b in ("", "_low", "_high")]
    return pd.DataFrame(rows, columns=[*cells, *columns])


def config_improvement(
    a: ArrayLike,
    b: ArrayLike,
    *,
    mode: str = "max",
    reps: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """P(a random configuration of A scores better than a random one of B), ties half.

    Args:
        a, b: the configurations' scores (means over seeds; NaNs dropped).
        reps: bootstrap resamples; each draws A's and B's configurations with replacement,
            independently (the families' configurations are separate draws).

    Returns:
        (P, low, high) from :func:`analysis.stats.probability_of_improvement_ci` with the
        configurations as runs of one task; NaNs when a family has no score, no band with
        ``reps`` = 0 or one configuration in each.
    """
    x, y = (np.asarray(v, dtype=float).ravel() for v in (a, b))
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size == 0 or y.size == 0:
        return float("nan"), float("nan"), float("nan")
    return probability_of_improvement_ci([x], [y], mode=mode, reps=reps, confidence=ci, seed=seed)


def variance_explained(values: ArrayLike, scores: ArrayLike, *, bins: int = 4) -> float:
    """Share of the variance of ``scores`` explained by ``values`` (eta squared, in [0, 1]).

    Groups are the distinct values when there are at most ``bins`` of them (or they are not
    numbers), else quantile bins (the same for a knob and its log: ranks decide), at most
    ``bins`` and at least two values in each. NaN if fewer than two groups, fewer than two
    values a group on average (every value alone in its group would "explain" everything), or
    no variance. Rows with a NaN score are dropped.
    """
    frame = pd.DataFrame({"v": list(values), "s": np.asarray(scores, dtype=float)})
    frame = frame[frame["s"].notna() & frame["v"].notna()]
    frame["v"] = frame["v"].map(lambda x: str(x) if isinstance(x, list | dict | tuple) else x)
    numeric = pd.api.types.is_numeric_dtype(frame["v"])
    if numeric and frame["v"].nunique() > bins:
        k = min(bins, len(frame) // 2)
        if k < 2:
            return float("nan")
        frame["g"] = pd.qcut(frame["v"].rank(method="first"), k, labels=False)
    else:
        frame["g"] = frame["v"]
    if frame["g"].nunique() < 2 or len(frame) < 2 * frame["g"].nunique():
        return float("nan")
    total = float(((frame["s"] - frame["s"].mean()) ** 2).sum())
    if total <= 0:
        return float("nan")
    means = frame.groupby("g")["s"].agg(["mean", "size"])
    between = float((means["size"] * (means["mean"] - frame["s"].mean()) ** 2).sum())
    return between / total


def sensitivity_table(
    configs: pd.DataFrame,
    keys: Sequence[str],
    cells: Sequence[str] = (),
    *,
    score: str = "score",
    mode: str = "max",
    bins: int = 4,
) -> pd.DataFrame:
    """Per cell and knob: its share of variance explained and the best configuration's value.

    Args:
        configs: one row per configuration (its score = mean over seeds) with the knob columns.
        keys: the knobs; a knob without values in a cell (another agent's) is skipped there.

    Returns:
        DataFrame with the cell columns and ``key, variance_share, configs, best_value``, sorted
        by cell then share (largest first).
    """
    sign = _sign(mode)
    rows = []
    for cell, sub in _cells(configs, cells):
        sub = sub[sub[score].notna()]
        if sub.empty:
            continue
        best = sub.loc[(sign * sub[score]).idxmax()]
        for key in keys:
            if key not in sub or sub[key].isna().all():
                continue
            rows.append(
                {
                    **cell,
                    "key": key,
                    "variance_share": variance_explained(sub[key], sub[score], bins=bins),
                    "configs": int(sub[key].notna().sum()),
                    "best_value": best[key],
                }
            )
    table = pd.DataFrame(rows, columns=[*cells, "key", "variance_share", "configs", "best_value"])
    if table.empty:
        return table
    table["_order"] = table.groupby(list(cells), sort=False).ngroup() if cells else 0
    table = table.sort_values(
        ["_order", "variance_share"], ascending=[True, False], na_position="last"
    )
    return table.drop(columns="_order").reset_index(drop=True)


def percentile_normalise(
    scores: ArrayLike,
    envs: ArrayLike,
    *,
    low: float = 5.0,
    high: float = 95.0,
    mode: str = "max",
) -> np.ndarray:
    """Adkins et al.'s per-env normalisation: (x - p_low) / (p_high - p_low), the percentiles
    taken over every score of that env (all families, settings and runs). ``mode="min"`` flips
    it so that 1 is still good: (p_high - x) / (p_high - p_low). NaN where an env's range is 0."""
    sign = _sign(mode)
    x = np.asarray(scores, dtype=float)
    env = np.asarray(envs, dtype=object)
    out = np.full(x.shape, np.nan)
    for e in pd.unique(env):
        sel = env == e
        vals = x[sel][~np.isnan(x[sel])]
        if vals.size == 0:
            continue
        p_lo, p_hi = np.percentile(vals, [low, high])
        if p_hi > p_lo:
            out[sel] = (
                (x[sel] - p_lo) / (p_hi - p_lo) if sign > 0 else (p_hi - x[sel]) / (p_hi - p_lo)
            )
    return out


def sensitivity_phi(
    runs: pd.DataFrame,
    *,
    family: str = "agent",
    setting: str = "config",
    env: str = "env",
    score: str = "normalised",
    seed: str = "seed",
    reps: int = 0,
    ci: float = 0.95,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """Adkins et al.'s hyperparameter sensitivity of each family across envs.

    Gamma(family, env, setting) = mean over seeds of ``score`` (higher is better, e.g. from
    :func:`percentile_normalise`). Per family, over the settings run in every env:

        per_env_tuned = mean_env max_setting Gamma
        cross_env_tuned = max_setting mean_env Gamma      (the best single setting)
        phi = per_env_tuned - cross_env_tuned  (>= 0)

    Args:
        runs: one row per run with the ``family``, ``setting``, ``env``, ``seed`` and ``score``
            columns; ``setting`` must identify the same hyperparameters in every env.
        reps: bootstrap resamples of the seeds (within each family, setting and env; the
            normalisation is held fixed) for ``*_low`` / ``*_high`` columns; 0: none.

    Returns:
        DataFrame, one row per family: ``family, envs, settings, per_env_tuned,
        cross_env_tuned, phi, best_setting`` (+ ``phi_low, phi_high, per_env_tuned_low, ...``
        with ``reps``). ``envs`` counts the envs; ``settings`` the settings run in all of them
        (NaN numbers if none).
    """
    rows = []
    for fam, sub in runs.groupby(family, sort=False):
        envs = list(pd.unique(sub[env]))
        present = sub.groupby(setting)[env].nunique()
        settings = sorted(present[present == len(envs)].index)
        sub = sub[sub[setting].isin(settings)]
        row: dict[str, Any] = {family: fam, "envs": len(envs), "settings": len(settings)}
        if not settings:
            rows.append(
                {
                    **row,
                    "per_env_tuned": np.nan,
                    "cross_env_tuned": np.nan,
                    "phi": np.nan,
                    "best_setting": None,
                }
            )
            continue
        seeds = sorted(pd.unique(sub[seed]))
        cube = np.full((len(settings), len(envs), len(seeds)), np.nan)  # [H, E, S]
        h = {s: i for i, s in enumerate(settings)}
        e = {v: i for i, v in enumerate(envs)}
        k = {v: i for i, v in enumerate(seeds)}
        for r in sub.itertuples(index=False):
            cube[h[getattr(r, setting)], e[getattr(r, env)], k[getattr(r, seed)]] = getattr(
                r, score
            )
        gamma = _nanmean(cube, axis=2)  # [H, E]
        per_env, cross, best = _phi_parts(gamma)
        row.update(
            per_env_tuned=per_env,
            cross_env_tuned=cross,
            phi=per_env - cross,
            best_setting=settings[best] if best is not None else None,
        )
        if reps > 0:
            rng = np.random.default_rng(rng_seed)
            idx = rng.integers(0, len(seeds), (reps, len(seeds)))
            boot = _nanmean(cube[:, :, idx], axis=3)  # [H, E, reps]
            parts = np.array([_phi_parts(boot[:, :, b])[:2] for b in range(reps)])
            stats = {
                "per_env_tuned": parts[:, 0],
                "cross_env_tuned": parts[:, 1],
                "phi": parts[:, 0] - parts[:, 1],
            }
            for name, values in stats.items():
                row[f"{name}_low"], row[f"{name}_high"] = _interval(values, ci)
        rows.append(row)
    return pd.DataFrame(rows)


def _cells(
    frame: pd.DataFrame, cells: Sequence[str]
) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """({cell column: value}, the cell's rows) per combination of ``cells`` (in order of first
    appearance, NaN a value too); without ``cells`` one cell, the whole frame."""
    keys = list(cells)
    groups = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
    for values, sub in groups:
        values = values if isinstance(values, tuple) else (values,)
        yield dict(zip(keys, values)), sub


def _search(
    runs: pd.DataFrame, config: str, score: str, steps: str
) -> tuple[np.ndarray, int, float, int]:
    """One cell's random search: ([configs, seeds] scores from :func:`config_scores`, seeds,
    mean real env steps of one configuration (all its seeds), configurations with a score)."""
    matrix, _, seeds = config_scores(runs, config, score=score)
    cost = float(runs.groupby(config)[steps].sum().mean())
    return matrix, len(seeds), cost, int((~np.all(np.isnan(matrix), axis=1)).sum())


def _interval(samples: np.ndarray, ci: float, axis: int | None = None) -> np.ndarray:
    """Percentile interval [low, high] of bootstrap ``samples`` with coverage ``ci`` (NaNs
    ignored; all-NaN: NaN)."""
    alpha = (1 - ci) / 2
    with _no_warnings():
        return np.nanquantile(samples, [alpha, 1 - alpha], axis=axis)


def _phi_parts(gamma: np.ndarray) -> tuple[float, float, int | None]:
    """[settings, envs] -> (mean_e max_h, max_h mean_e, argmax_h mean_e)."""
    with _no_warnings():
        per_env = float(np.nanmean(np.nanmax(gamma, axis=0)))
        across = np.mean(gamma, axis=1)  # a setting missing an env's runs has no cross-env mean
    if np.all(np.isnan(across)):
        return per_env, float("nan"), None
    best = int(np.nanargmax(across))
    return per_env, float(across[best]), best


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with _no_warnings():
        return np.nanmean(x, axis=axis)


class _no_warnings:
    """Silence numpy's all-NaN-slice warnings (an all-NaN slice gives NaN, as intended)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
