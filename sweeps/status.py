"""Where a sweep stands: ``sweep status DIR`` and the live view of ``sweep run``.

Both read the same facts: the planned trials of ``sweep_resolved.json`` and, per trial, its state,
env steps and last value of the sweep's metric. ``sweep status`` takes them from the trial
directories (``status.json``, ``metrics.csv``); the live view from Ray Tune's trial objects.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.trialdir import (
    CONFIG_FILE,
    INIT_DIAGNOSTICS_FILE,
    INIT_RECORD_FILE,
    METRICS_FILE,
    POLICY_FILE,
    RESOLVED_FILE,
    STATUS_FILE,
    SWEEP_FILE,
    check_trial,
    flatten,
    trial_path,
)

STATES = ("finished", "running", "pending", "failed", "interrupted", "damaged", "stopped")
"""As written in status.json, plus ``damaged`` (files that fail validation, see
sweeps/trialdir.py; kept out of every ranking), ``pending`` (no status yet) and ``stopped``
(stopped early by the sweep's scheduler, ASHA: final, never resumed)."""
STALE_S = 600.0  # a "running" trial without news for this long was probably interrupted


@dataclass
class TrialState:
    trial_id: str
    group: str
    label: str
    state: str  # one of STATES
    env_steps: int
    planned_steps: int
    value: float | None = None  # last value of the sweep's metric
    error: str | None = None
    restores: int = 0
    updated: float | None = None
    env: str = ""
    stale: str | None = None  # why a "running" trial is not running any more


def read_resolved(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / RESOLVED_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{sweep_dir}: not a sweep directory (no sweep_resolved.json)"
        ) from None
    except ValueError as err:
        raise ValueError(f"{path}: unreadable ({err})") from None


def last_row(metrics_csv: Path) -> dict[str, str] | None:
    """The last row of a trial's metrics.csv, or None."""
    rows = last_rows(metrics_csv)
    return rows[-1] if rows else None


def last_rows(metrics_csv: Path) -> list[dict[str, str]]:
    """The rows of a trial's last evaluation: one per seed (several if seed-batched)."""
    try:
        with open(metrics_csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    return [r for r in rows if r.get("env_step") == rows[-1].get("env_step")] if rows else []


def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v


def read_states(sweep_dir: Path, resolved: dict[str, Any] | None = None) -> list[TrialState]:
    """Every planned trial's state, from its directory (pending when it has none yet)."""
    sweep_dir = Path(sweep_dir)
    resolved = resolved or read_resolved(sweep_dir)
    metric = resolved.get("metric", "eval/return")
    labels = _labels(resolved)
    out = []
    for t in resolved["trials"]:
        tid, cfg = t["trial_id"], t["config"]
        d = trial_path(sweep_dir, tid)
        st = TrialState(
            tid,
            t.get("group", tid),
            labels.get(tid, tid),
            "pending",
            0,
            int(cfg.get("total_steps", 0)),
            env=str(cfg.get("env", "")),
        )
        check = check_trial(d, cfg)
        status = check.status
        if status:
            st.state = status.get("state") if status.get("state") in STATES else "running"
            st.env_steps = _int(status.get("env_steps"))
            st.planned_steps = _int(status.get("planned_steps")) or st.planned_steps
            st.error = status.get("error") or status.get("stopped_by")  # why it ended early
            st.restores = _int(status.get("restores"))
            st.updated = _float(status.get("updated"))
            if st.state == "running":
                st.stale = _dead(status)
        rows = check.rows or []
        if rows and not check.damaged:  # a seed-batched trial: the mean over its seeds
            last = max(int(r["env_step"]) for r in rows)
            values = [
                v
                for r in rows
                if int(r["env_step"]) == last and (v := _float(r.get(metric))) is not None
            ]
            st.value = sum(values) / len(values) if values else None
            st.env_steps = max(st.env_steps, last)  # status.json is written at checkpoints
            if status is None:  # metrics but no status yet: the first evaluation is running
                st.state = "running"
        if check.damaged:
            st.state, st.error, st.value = "damaged", "; ".join(check.defects), None
        out.append(st)
    return out


def trial_kind(config: dict[str, Any]) -> tuple[str, str]:
    """(agent, env) of a trial config: trials of one kind cost about the same per env step."""
    return str(config.get("agent", "")), str(config.get("env", ""))


def seconds_per_step(trial_dirs: list[Path]) -> float | None:
    """Wall seconds per env step over trials' metrics (the last row's wall_time / env_step)."""
    wall = steps = 0.0
    for d in trial_dirs:
        rows = last_rows(Path(d) / METRICS_FILE)
        try:
            step, t = float(rows[-1]["env_step"]), float(rows[-1]["wall_time"])
        except (IndexError, KeyError, TypeError, ValueError):
            continue
        if step > 0 and math.isfinite(t) and t > 0:
            wall, steps = wall + t, steps + step
    return wall / steps if steps else None


@dataclass
class KindLeft:
    """What is left of one (agent, env) kind of trial, at its measured pace."""

    agent: str
    env: str
    trials: int  # trials a resume would run (pending, running, interrupted, failed)
    env_steps: int  # their env steps left
    seconds_per_step: float | None  # wall seconds per env step of this kind so far, or None

    @property
    def seconds(self) -> float | None:
        return None if self.seconds_per_step is None else self.env_steps * self.seconds_per_step


def time_left(
    sweep_dir: Path, states: list[TrialState], resolved: dict[str, Any]
) -> list[KindLeft]:
    """Per (agent, env) with unfinished trials: how many, their env steps left and the kind's
    measured pace (its trials' wall time per env step on one core), in the sweep's order."""
    configs = {t["trial_id"]: t["config"] for t in resolved["trials"]}
    dirs: dict[tuple[str, str], list[Path]] = {}
    left: dict[tuple[str, str], list[TrialState]] = {}
    for s in states:
        kind = trial_kind(configs.get(s.trial_id, {}))
        dirs.setdefault(kind, []).append(trial_path(sweep_dir, s.trial_id))
        if s.state in ("pending", "running", "interrupted", "failed"):  # what a resume runs
            left.setdefault(kind, []).append(s)
    return [
        KindLeft(
            agent,
            env,
            len(todo),
            sum(max(s.planned_steps - s.env_steps, 0) for s in todo),
            seconds_per_step(dirs[(agent, env)]),
        )
        for (agent, env), todo in left.items()
    ]


def format_time_left(kinds: list[KindLeft]) -> list[str]:
    """Lines for `sweep status`: core-hours left per kind and in all (measured kinds only)."""
    if not kinds:
        return []
    lines = ["time left at the measured pace (wall time on one core a trial):"]
    for k in kinds:
        cost = (
            f"~{k.seconds / 3600:.1f} core-hours ({1000 * k.seconds_per_step:.3g} s per 1k steps)"
            if k.seconds is not None
            else "not measured yet"
        )
        lines.append(
            f"  {k.agent} on {k.env}: {k.trials} trials, {k.env_steps:,} env steps, {cost}"
        )
    known = [k.seconds for k in kinds if k.seconds is not None]
    if len(kinds) > 1 and known:
        more = " plus the kinds not measured yet" if len(known) < len(kinds) else ""
        lines.append(f"  in all ~{sum(known) / 3600:.1f} core-hours{more}")
    return lines


def _int(x: Any) -> int:
    v = _float(x)
    return int(v) if v is not None and math.isfinite(v) else 0


def _dead(status: dict[str, Any]) -> str | None:
    """Why a trial whose status says running is not: its process on this machine is gone."""
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} is gone"
    except OSError:  # alive, another user's
        return None
    return None


def live_writer(status: dict[str, Any]) -> int | None:
    """The pid of the process that wrote this status.json if it is still alive on this machine
    (a worker of a killed sweep that has not exited yet), else None. A live process that started
    after the status was last written only reuses the pid: not the writer."""
    pid, host = status.get("pid"), status.get("host")
    if (
        status.get("state") != "running"
        or not isinstance(pid, int)
        or pid == os.getpid()
        or host != socket.gethostname()
    ):
        return None
    started = process_start_time(pid)
    updated = _float(status.get("updated"))
    if started is None or (updated is not None and started > updated + 1.0):
        return None
    return pid


def process_start_time(pid: int) -> float | None:
    """When a live ``pid`` started (epoch seconds), from /proc; None if it is gone or a zombie
    (or off Linux)."""
    from sweeps.watchdog import _stat

    info = _stat(pid)
    if info is None or info[2] in ("Z", "X"):
        return None
    try:
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return boot + info[1] / os.sysconf("SC_CLK_TCK")


def _labels(resolved: dict[str, Any]) -> dict[str, str]:
    keys = resolved.get("varying_keys", [])
    out = {}
    for t in resolved["trials"]:
        flat = flatten(t["config"])
        out[t["trial_id"]] = " ".join(str(flat.get(k)) for k in keys) or resolved.get("name", "")
        if t.get("draw") is not None:  # a search's configurations: one group each
            out[t["trial_id"]] += f" r{t['draw']}"
    return out


# --- summaries ---------------------------------------------------------------------------------


def counts(states: list[TrialState]) -> Counter:
    c = Counter(s.state for s in states)
    return Counter({k: c.get(k, 0) for k in STATES})


def steps(states: list[TrialState]) -> tuple[int, int]:
    done = sum(
        s.planned_steps if s.state == "finished" else min(s.env_steps, s.planned_steps)
        for s in states
    )
    return done, sum(s.planned_steps for s in states)


def best_groups(
    states: list[TrialState], mode: str = "max", top: int | None = None
) -> list[tuple[str, float, int, int]]:
    """Groups ranked on comparable values only: (label, mean of the last metric, n seeds
    counted, n seeds), best first, per env (an env's groups together, envs in order).

    In an env where some trial finished, only finished trials count. Before that, only
    running or interrupted trials at the same env step (the step most of them reached) count.
    Failed and damaged trials never count. With several envs the env is added to the label.
    """
    by_env: dict[str, list[TrialState]] = {}
    for s in states:
        by_env.setdefault(s.env, []).append(s)
    rows: list[tuple[str, float, int, int]] = []
    for env, members in by_env.items():
        usable = [s for s in members if s.value is not None and math.isfinite(s.value)]
        finished = [s for s in usable if s.state == "finished"]
        suffix = f" [{env}]" if len(by_env) > 1 and env else ""
        if finished:
            chosen = finished
        else:
            partial = [s for s in usable if s.state in ("running", "interrupted")]
            steps_seen = Counter(s.env_steps for s in partial)
            if not steps_seen:
                continue
            step = max(steps_seen, key=lambda k: (steps_seen[k], k))
            chosen = [s for s in partial if s.env_steps == step]
            suffix += f" (at {step:,} steps)"
        sizes = Counter(s.label for s in members)
        groups: dict[str, list[float]] = {}
        for s in chosen:
            groups.setdefault(s.label, []).append(float(s.value))  # type: ignore[arg-type]
        env_rows = [
            (label + suffix, sum(v) / len(v), len(v), sizes[label]) for label, v in groups.items()
        ]
        env_rows.sort(key=lambda r: -r[1] if mode == "max" else r[1])
        rows += env_rows
    return rows[:top] if top else rows


def fmt_duration(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "--"
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def text_table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain aligned table (predictable in pipes and logs, unlike a terminal-width one)."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(c: Any) -> str:
    if isinstance(c, float):
        return (
            f"{c:.4g}"
            if abs(c) < 1e-3 or abs(c) >= 1e5
            else f"{c:.1f}"
            if abs(c) >= 10
            else f"{c:.3f}"
        )
    return "" if c is None else str(c)


# --- sweep status ------------------------------------------------------------------------------


def format_status(sweep_dir: Path, now: float | None = None) -> str:
    resolved = read_resolved(sweep_dir)
    states = read_states(sweep_dir, resolved)
    now = time.time() if now is None else now
    metric, mode = resolved.get("metric", "eval/return"), resolved.get("mode", "max")
    c = counts(states)
    done, planned = steps(states)
    budget = f" (budget {resolved['budget']})" if resolved.get("budget") else ""
    lines = [
        f"{resolved['name']}{budget}: {len(states)} trials in {sweep_dir}",
        "  " + "   ".join(f"{k} {c[k]}" for k in STATES if k in STATES[:4] or c[k]),
        f"  env steps {done:,} / {planned:,} ({100 * done / max(planned, 1):.0f}%)",
        "",
    ]
    rows = []
    for s in states:
        state = s.state
        if state == "running" and s.stale:
            state = f"stale ({s.stale}; resume it with sweep run ... --resume)"
        elif state == "running" and s.updated and now - s.updated > STALE_S:
            state = f"stale? (no news for {fmt_duration(now - s.updated)})"
        elif state == "stopped" and s.error:
            state = f"stopped by {s.error}"
        rows.append(
            [s.trial_id, state, f"{s.env_steps:,}/{s.planned_steps:,}", s.value, s.restores or ""]
        )
    lines.append(text_table(["trial", "state", "steps", metric, "restores"], rows))
    best = best_groups(states, mode, top=5)
    if best:
        lines += ["", f"best so far ({metric}, last evaluation, mean over seeds):"]
        lines += [f"  {v:10.2f}  {label}  ({n}/{m} seeds)" for label, v, n, m in best]
    failed = [s for s in states if s.state == "failed"]
    if failed:
        lines += ["", "failures:"]
        lines += [f"  {s.trial_id}: {s.error or 'unknown error'}" for s in failed]
    left = format_time_left(time_left(sweep_dir, states, resolved))
    if left:
        lines += ["", *left]
    damaged = [s for s in states if s.state == "damaged"]
    if damaged:
        lines += ["", "damaged trials (kept out of the ranking; nothing was changed on disk):"]
        lines += [f"  {sweep_dir}/trials/{s.trial_id}: {s.error}" for s in damaged]
    return "\n".join(lines)


RESULT_FILES = (CONFIG_FILE, STATUS_FILE, METRICS_FILE, INIT_RECORD_FILE, INIT_DIAGNOSTICS_FILE)
"""A final trial's results: what analysis reads. Never checkpoints/, tb/ or Ray's files."""
FINAL_STATES = ("finished", "stopped")


def result_files(sweep_dir: Path, policy: bool = False) -> list[Path]:
    """The files to keep (commit, copy) of a sweep directory so that ``sweep report`` works and
    ``sweep run --resume`` elsewhere reruns only what did not end: the sweep's own files and, of
    every intact trial that ended (finished, or stopped by the scheduler), its result files
    (:data:`RESULT_FILES`, plus ``policy.pt`` with ``policy``). Unfinished and damaged trials
    contribute nothing: a resume elsewhere reruns them from scratch."""
    sweep_dir = Path(sweep_dir)
    resolved = read_resolved(sweep_dir)
    out = [sweep_dir / n for n in (SWEEP_FILE, RESOLVED_FILE) if (sweep_dir / n).is_file()]
    names = RESULT_FILES + ((POLICY_FILE,) if policy else ())
    for st in read_states(sweep_dir, resolved):
        if st.state in FINAL_STATES:
            d = trial_path(sweep_dir, st.trial_id)
            out += [d / n for n in names if (d / n).is_file()]
    return out


def cmd_status(args: Any) -> int:
    sweep_dir = Path(args.dir)
    if not sweep_dir.exists() and not Path(args.dir).is_absolute():
        alt = Path("results") / args.dir
        sweep_dir = alt if alt.exists() else sweep_dir
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{args.dir}: no such sweep directory")
    from sweeps.runner import print_safely

    if getattr(args, "result_files", False):
        print_safely("\n".join(str(p) for p in result_files(sweep_dir, args.with_policy)))
        return 0
    print_safely(format_status(sweep_dir))
    damaged = [s for s in read_states(sweep_dir) if s.state == "damaged"]
    if damaged and getattr(args, "strict", False):
        raise ValueError(
            f"--strict: {len(damaged)} damaged trial(s) in {sweep_dir}: "
            + "; ".join(f"{s.trial_id}: {s.error}" for s in damaged[:3])
        )
    return 0


# --- the live view of sweep run ----------------------------------------------------------------


class LiveView:
    """Trials done/running/pending/failed, best so far per group, ETA.

    On a terminal a rich Live panel redraws twice a second; otherwise one line is printed when a
    trial finishes or fails, and at most every ``interval`` seconds in between.
    """

    def __init__(
        self,
        name: str,
        metric: str,
        mode: str,
        *,
        interval: float = 30.0,
        stream: Any = None,
        tty: bool | None = None,
    ):
        self.name, self.metric, self.mode = name, metric, mode
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self.t0 = time.time()
        self.steps0: int | None = None
        self.states: list[TrialState] = []
        self._live = None
        self._last_line = 0.0
        self._last_counts: tuple = ()
        self._last_text: tuple = ()

    def start(self) -> None:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream)
            self._live = Live(
                self._renderable(), console=console, refresh_per_second=2, transient=False
            )
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._renderable())
            self._live.stop()
            self._live = None
        else:
            self._print_line(force=True)

    def update(self, states: list[TrialState]) -> None:
        self.states = states
        if self.steps0 is None:
            self.steps0 = steps(states)[0]  # restored progress does not count towards the rate
        if self._live is not None:
            self._live.update(self._renderable())
        else:
            self._print_line()

    def eta(self) -> float | None:
        """Steps still to run (failed trials run no more) at this run's average rate so far."""
        done = steps(self.states)[0]
        left = sum(
            max(s.planned_steps - s.env_steps, 0)
            for s in self.states
            if s.state in ("pending", "running")
        )
        gained, elapsed = done - (self.steps0 or 0), time.time() - self.t0
        if gained <= 0 or elapsed <= 0:
            return None
        return left / (gained / elapsed)

    def summary(self) -> str:
        c = counts(self.states)
        done, planned = steps(self.states)
        elapsed = fmt_duration(time.time() - self.t0)
        return (
            f"{c['finished']}/{len(self.states)} finished, {c['running']} running, "
            f"{c['pending']} pending, {c['failed']} failed; env steps {done:,}/{planned:,} "
            f"({100 * done / max(planned, 1):.0f}%); elapsed {elapsed}, "
            f"ETA {fmt_duration(self.eta())}"
        )

    def _print_line(self, force: bool = False) -> None:
        """A line when a trial finishes or fails, or every ``interval`` s; at the end only if
        something changed since the last line."""
        c = counts(self.states)
        best = best_groups(self.states, self.mode, top=1)
        key = (tuple(c.values()), steps(self.states)[0], best[:1])
        now = time.time()
        finished_or_failed = (c["finished"], c["failed"]) != self._last_counts
        if key == self._last_text or not (
            force or finished_or_failed or now - self._last_line >= self.interval
        ):
            return
        self._last_counts, self._last_line, self._last_text = (c["finished"], c["failed"]), now, key
        tail = f"; best {best[0][0]}: {best[0][1]:.2f}" if best else ""
        print(f"[{self.name}] {self.summary()}{tail}", file=self.stream, flush=True)

    def _renderable(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        c = counts(self.states)
        head = Text.assemble(
            (f"{self.name}  ", "bold"),
            (f"{c['finished']} done  ", "green"),
            (f"{c['running']} running  ", "cyan"),
            (f"{c['pending']} pending  ", "white"),
            (f"{c['failed']} failed", "red"),
        )
        done, planned = steps(self.states)
        line = Text(
            f"env steps {done:,}/{planned:,} ({100 * done / max(planned, 1):.0f}%)   "
            f"elapsed {fmt_duration(time.time() - self.t0)}   "
            f"ETA {fmt_duration(self.eta())}"
        )
        table = Table(
            title=f"best so far: {self.metric} (last eval, mean over seeds)",
            title_justify="left",
            box=None,
            pad_edge=False,
        )
        table.add_column("group")
        table.add_column(self.metric, justify="right")
        table.add_column("seeds", justify="right")
        for label, v, n, m in best_groups(self.states, self.mode, top=8):
            table.add_row(label, f"{v:.2f}", f"{n}/{m}")
        parts = [head, line, table]
        failed = [s for s in self.states if s.state == "failed"][-3:]
        for s in failed:
            parts.append(Text(f"failed {s.trial_id}: {s.error or ''}"[:200], style="red"))
        return Group(*parts)
