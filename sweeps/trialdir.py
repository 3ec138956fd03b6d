"""The trial directory on disk (docs/results_layout.md): atomic writers and a validating reader.

Torch-free and Ray-free, so every reader goes through it: ``agent.trial`` writes with it,
``sweeps.runner`` and ``sweeps.status`` read with it, and ``analysis.load`` validates each trial
with :func:`check_trial` before a number of it reaches a statistic.

Writers replace a file in one step (write a temporary file, flush it to disk, rename it over
the old one), so a process killed at any moment leaves either the old file or the new one,
never half of one. Readers therefore treat anything half-written as damage, and name it: the
file's path and what is wrong with it. A damaged trial is never repaired in place; nothing
already computed is deleted or overwritten.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- the layout --------------------------------------------------------------------------------
# Every file name of a sweep directory and a trial directory; no other module spells them.

SWEEP_FILE = "sweep.yaml"  # the sweep file exactly as given
RESOLVED_FILE = "sweep_resolved.json"  # the expanded sweep: trials, configs, declared score
TRIALS_DIR = "trials"  # one directory per trial id
CONFIG_FILE = "config.json"  # the fully resolved trial config
METRICS_FILE = "metrics.csv"  # tidy: one row per evaluation and seed
STATUS_FILE = "status.json"  # state, env steps, error, host and pid of the writer
INIT_RECORD_FILE = "init_record.json"  # per layer (and seed): role, scheme, gain, std
INIT_DIAGNOSTICS_FILE = "init_diagnostics.json"  # per seed: the initial policy's action stats
POLICY_FILE = "policy.pt"  # the last evaluated policy, weights only
CHECKPOINT_DIR = "checkpoints"  # never committed, never read by analysis
CHECKPOINT_FILES = ("state.pt", "state.prev.pt")  # the newest checkpoint and the one before


def trial_path(sweep_dir: str | Path, trial_id: str) -> Path:
    """``<sweep dir>/trials/<trial_id>``."""
    return Path(sweep_dir) / TRIALS_DIR / str(trial_id)


def has_checkpoint(trial_dir: str | Path) -> bool:
    """Whether the trial directory holds a checkpoint file (intact or not)."""
    return any((Path(trial_dir) / CHECKPOINT_DIR / n).exists() for n in CHECKPOINT_FILES)


def read_status(trial_dir: str | Path) -> dict[str, Any]:
    """The trial's status.json, or {} if it is missing or unreadable (a trial that has not
    started, or one being replaced: callers that must tell damage apart use check_trial)."""
    try:
        status = json.loads((Path(trial_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


STATES = ("pending", "running", "finished", "failed", "interrupted", "stopped")
"""States a trial's status.json may hold (``interrupted``: stopped by Ctrl-C / SIGTERM or a
wall-time limit after saving its checkpoint; resumable; ``stopped``: stopped early by the sweep's
scheduler, final)."""

RESUMABLE_KEYS = ("total_steps", "threads")
"""Config keys a resume may change: a longer budget (extend 50k to 100k) or the thread count.
Anything else changes what the stored weights and metrics mean, so a resume refuses it."""

# columns of metrics.csv that are not numbers
_TEXT_COLUMNS = ("eval/episode_returns",)


# --- atomic writes -----------------------------------------------------------------------------


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a kill at any moment leaves the old file or the new.

    The temporary file is named for the writing process and thread: two writers of one file
    (a trial marking itself interrupted while the sweep runner does the same) each replace it
    whole, and the last one wins, instead of one renaming the other's half-written file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(
    path: str | Path, obj: Any, default: Callable[[Any], Any] | None = None
) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=default))


def atomic_write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """The tidy table of ``rows`` (the union of their columns, in first-seen order)."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- configs -----------------------------------------------------------------------------------


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    ignore: tuple[str, ...] = (),
    *,
    common_only: bool = True,
) -> list[str]:
    """Dotted keys whose values differ between two nested configs, as ``key: old -> new``.

    ``common_only``: compare only keys both configs have. A key that one lacks was added to
    (or dropped from) the code after the other was written; its default reproduces the old
    behaviour, so stored trials stay resumable across such versions.
    """
    a, b = flatten(old), flatten(new)
    keys = (a.keys() & b.keys()) if common_only else (a.keys() | b.keys())
    out = []
    for key in sorted(keys):
        if key in ignore or a.get(key, _MISSING) == b.get(key, _MISSING):
            continue
        out.append(f"{key}: {_show(a.get(key, _MISSING))} -> {_show(b.get(key, _MISSING))}")
    return out


_MISSING = object()


def _show(v: Any) -> str:
    return "(unset)" if v is _MISSING else json.dumps(v)


# --- reading and validating a trial directory --------------------------------------------------


@dataclass
class TrialCheck:
    """What one trial directory holds and what is wrong with it (``defects``, each naming its
    file). ``rows`` are metrics.csv's rows (strings), None when the file is missing or
    unreadable."""

    path: Path
    status: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    rows: list[dict[str, str]] | None = None
    defects: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return bool(self.defects)

    @property
    def state(self) -> str:
        """The written state, ``damaged`` if anything is wrong, ``pending`` without a status."""
        if self.defects:
            return "damaged"
        return str((self.status or {}).get("state") or "pending")

    def describe(self) -> str:
        return f"{self.path}: " + "; ".join(self.defects)

    def last_step(self) -> int | None:
        if not self.rows:
            return None
        return max(int(r["env_step"]) for r in self.rows)


def read_json_file(path: Path, what: str, defects: list[str]) -> Any:
    """The parsed file; None (and a defect naming the file) if it is empty or unparseable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        defects.append(f"{what} unreadable ({err.strerror or err})")
        return None
    if not data:
        defects.append(f"{what} is empty (0 bytes)")
        return None
    try:
        return json.loads(data.decode())
    except UnicodeDecodeError:
        defects.append(f"{what} is not UTF-8 text (binary data)")
    except ValueError as err:
        defects.append(f"{what} is not valid JSON ({err}; truncated or overwritten?)")
    return None


def read_metrics(path: Path, defects: list[str]) -> list[dict[str, str]] | None:
    """metrics.csv's rows, checked row by row; None if the file is missing or unusable.

    Every problem found is appended to ``defects`` (with the row number: row 1 is the first
    line after the header); a file with any defect must not be used for statistics.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        defects.append(f"metrics.csv unreadable ({err.strerror or err})")
        return None
    if not data:
        defects.append("metrics.csv is empty (0 bytes)")
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        defects.append("metrics.csv is not UTF-8 text (binary data)")
        return None
    if "\x00" in text:
        defects.append("metrics.csv holds NUL bytes (overwritten or a disk error)")
        return None
    n_lines = text.count("\n")
    if not text.endswith("\n"):
        defects.append(f"metrics.csv is truncated mid-line (line {n_lines + 1} has no line end)")
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        defects.append(f"metrics.csv cannot be parsed as CSV ({err})")
        return None
    table = [r for r in table if r]
    if not table:
        defects.append("metrics.csv has no header")
        return None
    header = table[0]
    if "env_step" not in header:
        defects.append(f"metrics.csv has no 'env_step' column (header: {','.join(header)[:80]})")
        return None
    if len(table) == 1:
        defects.append("metrics.csv has a header but no rows")
        return None
    rows = []
    bad = len(defects)
    for i, cells in enumerate(table[1:], start=1):
        if len(cells) != len(header):
            defects.append(f"metrics.csv row {i} has {len(cells)} fields, the header {len(header)}")
            continue
        row = dict(zip(header, cells))
        problem = _row_problem(row)
        if problem:
            defects.append(f"metrics.csv row {i}: {problem}")
            continue
        rows.append(row)
    if len(defects) > bad + 3:  # a wholly garbled file: the first few rows say enough
        defects[bad + 3 :] = [f"... and {len(defects) - bad - 3} more bad rows"]
    _check_order(rows, defects)
    return rows


def _row_problem(row: dict[str, str]) -> str | None:
    for key in ("env_step", "seed"):
        value = row.get(key)
        if value is None:
            continue
        try:
            number = int(value)
        except ValueError:
            return f"{key} {value!r} is not an integer"
        if number < 0:
            return f"{key} {value!r} is negative"
    for key, value in row.items():
        if key in ("env_step", "seed") or key in _TEXT_COLUMNS or value == "":
            continue
        try:
            float(value)
        except ValueError:
            return f"{key} {value[:40]!r} is not a number"
    return None


def _check_order(rows: list[dict[str, str]], defects: list[str]) -> None:
    """Per seed: env_step strictly increasing (a repeat is a duplicated row)."""
    last: dict[str, int] = {}
    dup: dict[tuple[str, int], int] = {}
    for i, row in enumerate(rows, start=1):
        seed, step = row.get("seed", ""), int(row["env_step"])
        if seed in last and step == last[seed]:
            dup[(seed, step)] = dup.get((seed, step), 1) + 1
        elif seed in last and step < last[seed]:
            defects.append(
                f"metrics.csv env_step goes back from {last[seed]} to {step} "
                f"(seed {seed or '?'}, data row {i}): rows duplicated or mixed"
            )
        last[seed] = max(step, last.get(seed, step))
    for (seed, step), n in list(dup.items())[:3]:
        defects.append(
            f"metrics.csv has duplicated rows: seed {seed or '?'} env_step {step} appears {n} times"
        )


def config_seeds(config: Mapping[str, Any]) -> list[int] | None:
    """The seeds a trial config trains (``seeds``, or ``seed`` and ``seeds_per_trial``)."""
    seeds = config.get("seeds")
    if isinstance(seeds, list) and seeds:
        return [int(s) for s in seeds if isinstance(s, int)]
    seed = config.get("seed")
    if isinstance(seed, list) and seed:
        return [int(s) for s in seed if isinstance(s, int)]
    if isinstance(seed, int) and not isinstance(seed, bool):
        k = config.get("seeds_per_trial", 1)
        return list(range(seed, seed + (k if isinstance(k, int) and k > 0 else 1)))
    return None


def check_trial(trial_dir: str | Path, planned: Mapping[str, Any] | None = None) -> TrialCheck:
    """Read and validate one trial directory; every defect names its file.

    ``planned`` is the trial's config from sweep_resolved.json, if any. A directory without
    files (a pending trial) has no defects.
    """
    d = Path(trial_dir)
    check = TrialCheck(d)
    defects = check.defects
    status = read_json_file(d / STATUS_FILE, STATUS_FILE, defects)
    if status is not None and not isinstance(status, dict):
        defects.append(f"status.json holds a {type(status).__name__}, not an object")
        status = None
    if status is not None:
        check.status = status
        _check_status(status, defects)
    config = read_json_file(d / CONFIG_FILE, CONFIG_FILE, defects)
    if config is not None and not isinstance(config, dict):
        defects.append(f"config.json holds a {type(config).__name__}, not an object")
        config = None
    check.config = config
    if config is not None and planned is not None:
        diff = config_diff(planned, config, ignore=("threads",))
        if diff:
            defects.append(
                "config.json differs from the sweep's plan (sweep_resolved.json): "
                + "; ".join(diff[:4])
                + (" ..." if len(diff) > 4 else "")
            )
    rows = read_metrics(d / METRICS_FILE, defects)
    check.rows = rows
    diag = read_json_file(d / INIT_DIAGNOSTICS_FILE, INIT_DIAGNOSTICS_FILE, defects)
    if diag is not None and not isinstance(diag, dict):
        defects.append(f"init_diagnostics.json holds a {type(diag).__name__}, not an object")
    _check_consistency(check, config or planned or {})
    return check


def _check_status(status: dict[str, Any], defects: list[str]) -> None:
    state = status.get("state")
    if state not in STATES:
        defects.append(f"status.json state {state!r} is none of {', '.join(STATES)}")
    for key in ("env_steps", "planned_steps"):
        v = status.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            defects.append(f"status.json {key} is {v!r}, not a non-negative integer")


def _check_consistency(check: TrialCheck, config: Mapping[str, Any]) -> None:
    """The files against each other: seeds, steps, a finished trial's length."""
    status, rows, defects = check.status or {}, check.rows, check.defects
    state = status.get("state")
    steps = status.get("env_steps") if isinstance(status.get("env_steps"), int) else 0
    if rows is None:
        if state == "finished" or (state in STATES and steps and not defects):
            defects.append(
                f"metrics.csv is missing but status.json says {state} at {steps} env steps"
            )
        return
    if not rows:
        return
    seeds = config_seeds(config)
    if seeds is not None and "seed" in rows[0]:
        found = sorted({int(r["seed"]) for r in rows})
        foreign = [s for s in found if s not in seeds]
        if foreign:
            defects.append(
                f"metrics.csv has rows of seed(s) {foreign} but the trial trains "
                f"{seeds} (mixed seeds)"
            )
        missing = [s for s in seeds if s not in found]
        if missing and not foreign:
            defects.append(f"metrics.csv has no rows of seed(s) {missing} of {seeds}")
    per_seed: dict[str, int] = {}
    for r in rows:
        per_seed[r.get("seed", "")] = max(per_seed.get(r.get("seed", ""), 0), int(r["env_step"]))
    last = min(per_seed.values())
    if len(set(per_seed.values())) > 1:
        defects.append(
            "metrics.csv seeds stop at different env steps: "
            + ", ".join(f"seed {s} at {v}" for s, v in sorted(per_seed.items()))
        )
    if isinstance(steps, int) and steps > last:
        defects.append(f"status.json says {steps} env steps but metrics.csv stops at {last}")
    planned = config.get("total_steps")
    if not isinstance(planned, int):
        planned = status.get("planned_steps")
    if state == "finished" and isinstance(planned, int) and last < planned:
        defects.append(
            f"status.json says finished but metrics.csv stops at env step {last} of {planned}"
        )


def is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
