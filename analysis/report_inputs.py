"""The inputs of ``sweep report``: checked options, the command line, runs counted once.

Part of :mod:`analysis.report`: what :func:`analysis.report.write_report` checks before it
computes anything, and the runs it leaves out of every statistic (exact repeats of another run,
runs without a value of any group key), with the notes the report prints about them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import stats
from analysis.load import AnalysisError, config_columns
from analysis.report_figures import FIGURE_FORMATS
from analysis.report_render import keys_text, list_text
from analysis.stats import MODES
from sweeps.trialdir import INIT_RECORD_FILE, trial_path

HTML_IMAGES = ("inline", "link")


def check_mode(mode: str, sweep_dir: Path) -> str:
    if mode not in MODES:
        raise AnalysisError(
            f"unknown metric mode {mode!r} for {sweep_dir} (sweep_resolved.json or --mode): "
            "expected 'max' (higher is better) or 'min' (lower is better)"
        )
    return mode


def check_metric(df: pd.DataFrame, metric: str, sweep_dir: Path) -> None:
    if metric not in df.columns or df[metric].notna().sum() == 0:
        found = [c for c in df.columns if "/" in c]
        raise AnalysisError(
            f"no values of metric {metric!r} in any metrics.csv under {sweep_dir / 'trials'}"
            + (f"; metrics found: {', '.join(found)}" if found else "; no metrics written yet")
        )


def group_keys(
    df: pd.DataFrame, group: Sequence[str] | None, sweep_dir: Path, declared: Sequence[str] = ()
) -> list[str]:
    varying = config_columns(df)
    if group is None:
        # the sweep's own axes (grid keys, include keys) when it declares them: a key that only
        # some agents have (``mb_ppo.*`` in a sweep over agents) varies but is not a factor
        axes = [k for k in declared if k in varying] or varying
        return [k for k in axes if k not in ("seed", "env")]
    unknown = [k for k in group if k not in df.columns]
    if unknown:
        raise AnalysisError(
            f"cannot group {sweep_dir} by {', '.join(unknown)}: not a varying config key; "
            f"varying keys: {', '.join(varying) or '(none)'}"
        )
    # envs are always strata (compared separately, aggregated with normalised scores)
    return [k for k in dict.fromkeys(group) if k not in ("env", "seed")]


def check_formats(formats: Sequence[str], dpi: int) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats or formats[0] != "png":
        raise AnalysisError(
            f"figure formats {list(formats)}: the first must be png (report.md and the HTML "
            f"show PNGs), the others any of {list(FIGURE_FORMATS)}"
        )
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 30 <= dpi <= 600:
        raise AnalysisError(f"dpi must be an integer in [30, 600], got {dpi!r}")
    return formats


def command_line(
    group: Sequence[str] | None,
    threshold: float | None,
    metric: str | None,
    mode: str | None,
    last_k: int | None,
    up_to: float | None,
    out_dir: str | Path | None,
    seeds: Sequence[int] | None = None,
    also: Sequence[str] | None = None,
    versus: str | None = None,
) -> str:
    """The ``sweep report`` options that shape the numbers (so a report says how it was made)."""
    parts = ["sweep report"]
    if group:
        parts.append("--group " + " ".join(group))
    if threshold is not None:
        parts.append(f"--threshold {threshold:g}")
    if metric:
        parts.append(f"--metric {metric}")
    if mode:
        parts.append(f"--mode {mode}")
    if last_k is not None:
        parts.append(f"--last-k {last_k}")
    if up_to is not None:
        parts.append(f"--up-to {up_to:g}")
    if seeds is not None:
        parts.append("--seeds " + " ".join(str(x) for x in seeds))
    if also:
        parts.append("--also " + " ".join(f"'{m}'" for m in also))
    if versus is not None:
        parts.append(f"--versus '{versus}'")
    if out_dir is not None:
        parts.append(f"--out {out_dir}")
    return " ".join(parts)


def init_records(sweep_dir: Path, trials: pd.DataFrame) -> dict[str, str]:
    """Trial id -> its ``init_record.json`` as text (trials without one are left out)."""
    out = {}
    for trial_id in trials["trial_id"]:
        path = trial_path(sweep_dir, trial_id) / INIT_RECORD_FILE
        if path.is_file():
            try:
                out[str(trial_id)] = json.dumps(json.loads(path.read_text()), sort_keys=True)
            except (OSError, ValueError):
                continue
    return out


def count_once(
    df: pd.DataFrame, group: Sequence[str], records: dict[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    """Drop runs that repeat another run exactly, and runs without a value of a group key."""
    notes = []
    twins = stats.identical_runs(df, records)
    if len(twins):
        dropped = set(zip(twins["trial_id"], twins["seed"], strict=True))
        mask = pd.Series(
            [(t, s) in dropped for t, s in zip(df["trial_id"], df["seed"], strict=True)],
            index=df.index,
        )
        first = twins.iloc[0]
        trials = sorted(set(twins["trial_id"]))
        notes.append(
            f"**Identical runs counted once:** {len(twins)} run(s) of {len(trials)} trial(s) "
            "repeat another run exactly (same env, seed and init record, every metric equal at "
            f"every evaluation), e.g. `{first['trial_id']}` seed {first['seed']} = "
            f"`{first['same_as_trial']}`: their settings change nothing for these runs. The "
            "repeats are left out of every statistic (the first trial by id is kept); left "
            f"out: {list_text([f'`{t}`' for t in trials], 4)}."
        )
        df = df[~mask]
    if group:
        # a run with no value of any group key forms no group (dreamer's runs in a view grouped
        # by ``mb_ppo.return_estimator``); one that lacks only some keys keeps its group
        missing = df[list(group)].isna().all(axis=1)
        if missing.any():
            lacking = df[missing]
            n = lacking.groupby(["trial_id", "seed"], dropna=False).ngroups
            who = ""
            if "agent" in lacking:
                who = " (agent " + ", ".join(sorted(map(str, lacking["agent"].unique()))) + ")"
            notes.append(
                f"**Runs without a group value left out:** {n} run(s){who} have no value of "
                f"{keys_text([k for k in group if lacking[k].isna().any()])}: the setting does "
                "not apply to them, so they form no group here."
            )
            df = df[~missing]
    return df, notes
