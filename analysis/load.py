"""Read a sweep directory into tidy pandas tables.

The on-disk format is the contract in ``docs/results_layout.md``::

    <sweep dir>/sweep_resolved.json
    <sweep dir>/trials/<trial_id>/{config.json, status.json, metrics.csv, init_diagnostics.json}

Three tables come out of it, each keyed by ``trial_id`` (and ``seed`` where a trial trains
several seeds together; the statistical unit, a *run*, is one ``(trial_id, seed)``):

- :func:`load_trials`: one row per trial (planned or started): state, error, progress, config.
- :func:`load_sweep`: the tidy metrics table, one row per run x evaluation step.
- :func:`load_init_diagnostics`: per run x action dim summaries and action histograms at init.

Nothing is dropped silently: failed, running and pending trials stay in every table with their
``state``; a trial without any metrics yet is kept as one placeholder row (``env_step`` missing).
A sweep that is still running can be read at any time (its files are replaced atomically).

Every trial directory is validated first (``sweeps.trialdir.check_trial``): a truncated, empty,
unparseable or inconsistent file (a row cut mid-line, duplicated rows, seeds that are not the
trial's, a "finished" trial whose metrics stop short of its steps, ...) makes the trial
``damaged``. A damaged trial keeps its row in :func:`load_trials` (state ``damaged``, the
defects in ``damage``, each naming its file) and one placeholder row in :func:`load_sweep`, so
none of its numbers reaches a statistic; ``df.attrs["damaged"]`` lists them, and
``strict=True`` raises :class:`AnalysisError` instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sweeps.trialdir import (
    CONFIG_FILE,
    INIT_DIAGNOSTICS_FILE,
    METRICS_FILE,
    RESOLVED_FILE,
    TRIALS_DIR,
    check_trial,
    trial_path,
)

__all__ = [
    "RUN_KEYS",
    "STATES",
    "AnalysisError",
    "SweepInfo",
    "config_columns",
    "flatten_config",
    "load_init_diagnostics",
    "load_sweep",
    "load_trials",
    "metric_columns",
    "read_sweep_info",
]

RUN_KEYS = ("trial_id", "seed")
"""Columns that identify a run, the statistical unit."""

STATES = ("pending", "running", "finished", "failed", "interrupted", "damaged", "stopped")
"""Trial states: those written to ``status.json`` (``pending`` also means 'no status yet'),
and ``damaged`` for a trial whose files fail validation (``stopped``: stopped early by the
sweep's scheduler; its curve is real, it has no final score)."""

# Columns of the tidy metrics table that are neither config keys nor metrics.
_BASE_COLUMNS = (
    "trial_id",
    "seed",
    "env",
    "state",
    "env_step",
    "wall_time",
    "planned_steps",
    "env_score_random",
    "env_score_reference",
)
_SEED_KEYS = ("seed", "seeds")


class AnalysisError(Exception):
    """A sweep directory that cannot be analysed; the message names the offending path."""


@dataclass(frozen=True)
class SweepInfo:
    """What ``sweep_resolved.json`` says about a sweep (empty fields if the file is missing)."""

    path: Path
    name: str
    metric: str
    budget: Any
    seeds: list[Any]
    grid: dict[str, list[Any]]
    varying_keys: list[str]
    planned_trials: list[dict[str, Any]] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)
    mode: str = "max"
    """The metric's direction from the sweep file: ``max`` (higher is better) or ``min``."""


def read_sweep_info(sweep_dir: str | Path) -> SweepInfo:
    """Read ``sweep_resolved.json``; raise :class:`AnalysisError` if the directory is missing."""
    path = Path(sweep_dir)
    if not path.is_dir():
        raise AnalysisError(f"sweep directory not found: {path}")
    resolved_path = path / RESOLVED_FILE
    resolved: dict[str, Any] = {}
    if resolved_path.is_file():
        resolved = _read_json(resolved_path, what=RESOLVED_FILE) or {}
    return SweepInfo(
        path=path,
        name=str(resolved.get("name") or path.name),
        metric=str(resolved.get("metric") or "eval/return"),
        budget=resolved.get("budget"),
        seeds=list(resolved.get("seeds") or []),
        grid=dict(resolved.get("grid") or {}),
        varying_keys=[str(k) for k in resolved.get("varying_keys") or []],
        planned_trials=list(resolved.get("trials") or []),
        resolved=resolved,
        mode=str(resolved.get("mode") or "max").strip().lower(),
    )


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config dict to dotted keys: ``{"init": {"scheme": s}}`` -> ``init.scheme``.

    Lists and other non-mapping values are leaves.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def load_trials(sweep_dir: str | Path, *, strict: bool = False) -> pd.DataFrame:
    """One row per trial, planned or started.

    Returns a DataFrame of shape (n_trials, 10 + n_varying_keys) with columns ``trial_id, env,
    state, error, env_steps, planned_steps, updated, env_score_random, env_score_reference,
    damage`` and one column per varying config key (dotted names, ``seed`` excluded). Trials
    listed in ``sweep_resolved.json`` without a directory yet are ``pending``; trials whose files
    fail validation are ``damaged`` with their defects in ``damage`` (None otherwise).
    ``df.attrs`` holds ``config_keys`` (the varying keys), ``sweep_dir`` and ``damaged`` (one
    ``{"trial_id", "path", "defects"}`` per damaged trial). ``strict``: raise
    :class:`AnalysisError` naming every damaged trial instead.
    """
    info = read_sweep_info(sweep_dir)
    records = _scan_trials(info)
    damaged = [
        {
            "trial_id": r["trial_id"],
            "path": str(trial_path(info.path, r["trial_id"])),
            "defects": r["damage"],
        }
        for r in records
        if r["damage"]
    ]
    if damaged and strict:
        raise AnalysisError(
            f"{len(damaged)} damaged trial(s) in {info.path} (strict): "
            + "; ".join(f"{d['path']}: {d['defects']}" for d in damaged)
        )
    if not records:
        raise AnalysisError(
            f"no trials in {info.path}: expected trial directories under "
            f"{info.path / 'trials'} or a 'trials' list in {info.path / 'sweep_resolved.json'}"
        )
    keys = _varying_keys(info, [r["config"] for r in records])
    rows = []
    for rec in records:
        row = {k: rec[k] for k in _TRIAL_FIELDS}
        row.update({k: rec["config"].get(k) for k in keys})
        rows.append(row)
    trials = pd.DataFrame(rows, columns=[*_TRIAL_FIELDS, *keys])
    trials = _tidy_config_columns(trials, keys)
    for col in ("env_steps", "planned_steps"):  # a damaged status may hold anything there
        trials[col] = pd.to_numeric(trials[col], errors="coerce").astype("Int64")
    trials.attrs.update(config_keys=list(keys), sweep_dir=str(info.path), damaged=damaged)
    return trials


def load_sweep(
    sweep_dir: str | Path, trials: pd.DataFrame | None = None, *, strict: bool = False
) -> pd.DataFrame:
    """The tidy metrics table of a sweep (finished or still running).

    Returns a DataFrame with one row per run x evaluation step, shape (n_rows, n_columns), with
    columns ``trial_id, seed, env, state`` + varying config keys (dotted) + ``env_step, wall_time,
    planned_steps, env_score_random, env_score_reference`` + every metric column found in any
    ``metrics.csv`` (``eval/return``, ``loss/actor``, ...; ``eval/episode_returns`` stays a JSON
    string). Trials without metrics yet keep one placeholder row with a missing ``env_step``.
    ``df.attrs`` holds ``config_keys`` and ``metric_columns``.

    ``trials`` (from :func:`load_trials` on the same directory) avoids reading the status files
    twice. A damaged trial keeps one placeholder row (state ``damaged``, no metrics);
    ``df.attrs["damaged"]`` lists them; ``strict`` raises :class:`AnalysisError` instead.
    """
    if trials is None:
        trials = load_trials(sweep_dir, strict=strict)
    elif strict and trials.attrs.get("damaged"):
        load_trials(trials.attrs.get("sweep_dir", sweep_dir), strict=True)
    info = read_sweep_info(trials.attrs.get("sweep_dir", sweep_dir))
    keys: list[str] = list(trials.attrs["config_keys"])
    damaged = set(trials.loc[trials["state"] == "damaged", "trial_id"].astype(str))
    frames = []
    for trial_id in trials["trial_id"]:
        trial_dir = trial_path(info.path, trial_id)
        metrics = None if str(trial_id) in damaged else _read_metrics(trial_dir / METRICS_FILE)
        if metrics is None or metrics.empty:
            seeds = _config_seeds(_trial_config(info, trial_id))
            metrics = pd.DataFrame({"seed": seeds, "env_step": np.nan})
        elif "seed" not in metrics.columns:
            seeds = _config_seeds(_trial_config(info, trial_id))
            metrics.insert(0, "seed", seeds[0] if len(seeds) == 1 else np.nan)
        metrics.insert(0, "trial_id", trial_id)
        frames.append(metrics)
    data = pd.concat(frames, ignore_index=True, sort=False)
    trial_cols = ["trial_id", "env", "state", *keys, "planned_steps"]
    trial_cols += ["env_score_random", "env_score_reference"]
    data = data.merge(trials[trial_cols], on="trial_id", how="left", validate="many_to_one")
    metric_cols = [c for c in data.columns if c not in _BASE_COLUMNS and c not in keys]
    data["env_step"] = pd.to_numeric(data["env_step"], errors="coerce").astype("Int64")
    data["seed"] = pd.to_numeric(data["seed"], errors="coerce").astype("Int64")
    if "wall_time" not in data.columns:
        data["wall_time"] = np.nan
    for col in metric_cols:
        if col != "eval/episode_returns" and data[col].dtype == object:
            converted = pd.to_numeric(data[col], errors="coerce")
            if converted.notna().sum() >= data[col].notna().sum():
                data[col] = converted
    ordered = ["trial_id", "seed", "env", "state", *keys, "env_step", "wall_time"]
    ordered += ["planned_steps", "env_score_random", "env_score_reference", *metric_cols]
    data = data[ordered].sort_values(["trial_id", "seed", "env_step"], kind="stable")
    data = data.reset_index(drop=True)
    data.attrs.update(
        config_keys=keys,
        metric_columns=metric_cols,
        sweep_name=info.name,
        damaged=list(trials.attrs.get("damaged", [])),
    )
    return data


def load_init_diagnostics(
    sweep_dir: str | Path, trials: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Action statistics at initialisation from every trial's ``init_diagnostics.json``.

    Returns ``(summary, hist)``, both empty DataFrames if no trial wrote the file:

    - ``summary``: one row per run x action dim, shape (n_runs * n_dims, ...), columns
      ``trial_id, seed, env, state`` + config keys + ``action_dim, coverage, clip_frac, entropy,
      mean_abs_mean, std, critic_scale``.
    - ``hist``: one row per run x action dim x bin, columns ``trial_id, seed, env, state`` +
      config keys + ``action_dim, bin, bin_lo, bin_hi, frac`` where ``frac`` is the bin's share of
      the sampled actions (each histogram rescaled to sum to 1).
    """
    if trials is None:
        trials = load_trials(sweep_dir)
    info = read_sweep_info(trials.attrs.get("sweep_dir", sweep_dir))
    keys: list[str] = list(trials.attrs["config_keys"])
    summary_rows: list[dict[str, Any]] = []
    hist_rows: list[dict[str, Any]] = []
    for trial in trials.to_dict("records"):
        path = trial_path(info.path, trial["trial_id"]) / INIT_DIAGNOSTICS_FILE
        if not path.is_file() or trial["state"] == "damaged":
            continue
        diag = _read_json(path, what=INIT_DIAGNOSTICS_FILE, missing_ok=True)
        if not isinstance(diag, Mapping):
            continue
        base = {k: trial[k] for k in ("trial_id", "env", "state", *keys)}
        for seed, entry in diag.items():
            _diagnostic_rows(base, _as_int(seed), entry, summary_rows, hist_rows)
    summary = pd.DataFrame(summary_rows)
    hist = pd.DataFrame(hist_rows)
    for frame in (summary, hist):
        if not frame.empty:
            frame["seed"] = frame["seed"].astype("Int64")
        frame.attrs["config_keys"] = keys
    return summary, hist


def config_columns(df: pd.DataFrame) -> list[str]:
    """The config-key columns of a table made by this module (``df.attrs`` or a name heuristic)."""
    keys = df.attrs.get("config_keys")
    if keys is not None:
        return [k for k in keys if k in df.columns]
    return [c for c in df.columns if c not in _BASE_COLUMNS and "/" not in c and c != "error"]


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of the tidy table (names containing '/', e.g. ``eval/return``)."""
    cols = df.attrs.get("metric_columns")
    if cols is not None:
        return [c for c in cols if c in df.columns]
    return [c for c in df.columns if "/" in c]


# --------------------------------------------------------------------------------------------
# internals

_TRIAL_FIELDS = (
    "trial_id",
    "env",
    "state",
    "error",
    "env_steps",
    "planned_steps",
    "updated",
    "env_score_random",
    "env_score_reference",
    "damage",
)


def _read_json(path: Path, what: str, missing_ok: bool = False) -> Any:
    """Read JSON, retrying briefly in case a writer is replacing the file right now."""
    for attempt in range(3):
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            if missing_ok:
                return None
            raise AnalysisError(f"{what} not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            if attempt == 2:
                if missing_ok:
                    return None
                raise AnalysisError(f"cannot parse {what} at {path}: {err}") from err
            time.sleep(0.05)
    return None


def _scan_trials(info: SweepInfo) -> list[dict[str, Any]]:
    """Trial records (config, status) from the planned list and the trials/ directory."""
    planned = {str(t.get("trial_id")): t.get("config") or {} for t in info.planned_trials}
    trial_root = info.path / TRIALS_DIR
    on_disk = []
    if trial_root.is_dir():
        on_disk = sorted(p.name for p in trial_root.iterdir() if p.is_dir())
    order = list(planned) + [t for t in on_disk if t not in planned]
    records = []
    for trial_id in order:
        trial_dir = trial_root / trial_id
        check = check_trial(trial_dir, planned.get(trial_id) or None)
        config = (
            check.config if isinstance(check.config, dict) else dict(planned.get(trial_id) or {})
        )
        status: Any = check.status or {}
        scores = status.get("env_scores") if isinstance(status.get("env_scores"), Mapping) else {}
        state = "damaged" if check.damaged else str(status.get("state") or "pending")
        records.append(
            {
                "trial_id": trial_id,
                "config": flatten_config(config),
                "env": _env_name(config),
                "state": state,
                "error": status.get("error"),
                "env_steps": status.get("env_steps"),
                "planned_steps": status.get("planned_steps"),
                "updated": status.get("updated"),
                "env_score_random": _as_float(scores.get("random")),
                "env_score_reference": _as_float(scores.get("reference")),
                "damage": "; ".join(check.defects) or None,
            }
        )
    return records


def _trial_config(info: SweepInfo, trial_id: str) -> dict[str, Any]:
    """The trial's config.json, or its entry in sweep_resolved.json if not written yet."""
    path = trial_path(info.path, trial_id) / CONFIG_FILE
    config = _read_json(path, what=CONFIG_FILE, missing_ok=True) if path.is_file() else None
    if not isinstance(config, Mapping):
        planned = {str(t.get("trial_id")): t.get("config") for t in info.planned_trials}
        config = planned.get(str(trial_id)) or {}
    return dict(config)


def _env_name(config: Mapping[str, Any]) -> str:
    env = config.get("env")
    if isinstance(env, Mapping):
        env = env.get("id") or env.get("name")
    return str(env) if env is not None else "unknown"


def _varying_keys(info: SweepInfo, configs: Iterable[dict[str, Any]]) -> list[str]:
    """Config keys whose value differs between trials (declared ones first), minus seeds."""
    configs = list(configs)
    all_keys: list[str] = []
    for cfg in configs:
        all_keys += [k for k in cfg if k not in all_keys]
    computed = []
    for key in all_keys:
        values = {json.dumps(cfg.get(key), sort_keys=True, default=str) for cfg in configs}
        if len(values) > 1:
            computed.append(key)
    declared = [k for k in info.varying_keys if k in all_keys or k == "env"]
    keys = declared + [k for k in computed if k not in declared]
    return [k for k in keys if k not in _SEED_KEYS and k not in _BASE_COLUMNS]


def _tidy_config_columns(frame: pd.DataFrame, keys: Iterable[str]) -> pd.DataFrame:
    """Make config columns groupable and parquet-safe: lists/dicts -> JSON, mixed types -> str."""
    for key in keys:
        col = frame[key]
        if col.map(lambda v: isinstance(v, list | dict | tuple)).any():
            frame[key] = col.map(
                lambda v: json.dumps(v) if isinstance(v, list | dict | tuple) else v
            )
            col = frame[key]
        types = {type(v) for v in col if v is not None and not _is_nan(v)}
        if len(types) > 1 and not types <= {int, float}:
            frame[key] = col.map(lambda v: None if v is None or _is_nan(v) else str(v))
    return frame


def _read_metrics(path: Path) -> pd.DataFrame | None:
    """Read metrics.csv; a line still being written (ragged/empty) is dropped."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, on_bad_lines="skip", engine="python")
    except pd.errors.EmptyDataError:
        return None
    except (OSError, pd.errors.ParserError) as err:
        raise AnalysisError(f"cannot read metrics file {path}: {err}") from err
    if "env_step" not in frame.columns:
        raise AnalysisError(f"metrics file {path} has no 'env_step' column")
    frame["env_step"] = pd.to_numeric(frame["env_step"], errors="coerce")
    return frame[frame["env_step"].notna()].reset_index(drop=True)


def _config_seeds(config: Mapping[str, Any]) -> list[Any]:
    for key in _SEED_KEYS:
        value = config.get(key)
        if isinstance(value, list | tuple) and value:
            return list(value)
        if value is not None:
            return [value]
    return [np.nan]


def _diagnostic_rows(
    base: dict[str, Any],
    seed: Any,
    entry: Mapping[str, Any],
    summary_rows: list[dict[str, Any]],
    hist_rows: list[dict[str, Any]],
) -> None:
    coverage = np.atleast_1d(np.asarray(entry.get("coverage", []), dtype=float))
    clip = np.atleast_1d(np.asarray(entry.get("clip_frac", []), dtype=float))
    hists = np.asarray(entry.get("hist", []), dtype=float)
    if hists.ndim == 1 and hists.size:
        hists = hists[None, :]
    n_dims = max(coverage.size, clip.size, hists.shape[0] if hists.ndim == 2 else 0)
    scalars = {
        k: _as_float(entry.get(k)) for k in ("entropy", "mean_abs_mean", "std", "critic_scale")
    }
    run = {**base, "seed": seed}
    for dim in range(n_dims):
        summary_rows.append(
            {
                **run,
                "action_dim": dim,
                "coverage": coverage[dim] if dim < coverage.size else np.nan,
                "clip_frac": clip[dim] if dim < clip.size else np.nan,
                **scalars,
            }
        )
    if hists.ndim != 2 or not hists.size:
        return
    edges = np.asarray(entry.get("edges", []), dtype=float)
    if edges.size != hists.shape[1] + 1:
        edges = np.linspace(-1.0, 1.0, hists.shape[1] + 1)
    for dim, counts in enumerate(hists):
        total = counts.sum()
        fracs = counts / total if total > 0 else counts
        for b, frac in enumerate(fracs):
            hist_rows.append(
                {
                    **run,
                    "action_dim": dim,
                    "bin": b,
                    "bin_lo": edges[b],
                    "bin_hi": edges[b + 1],
                    "frac": frac,
                }
            )


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _as_int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return np.nan


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


# ``from analysis import load`` gives this module; calling it loads a sweep: analysis.load(DIR)
# is load_sweep(DIR) (analysis/__init__.py makes the module callable)
__import__("analysis").callable_module(__name__, load_sweep)
