"""One trial: build the agent, initialise it from the init spec, train, evaluate, checkpoint.

``run_trial`` is what both ``sweep train`` and the Ray trainable call. It writes the result files
of docs/results_layout.md into ``out_dir`` and never imports Ray: the sweep runner passes an
``on_eval`` callback (to report to Tune) and a checkpoint directory to restore from.

Every trial trains K >= 1 seeds of one config through ``agent.seeds.Seeds`` (a plain trial is
K = 1; a seed-batched one, ``seeds_per_trial > 1``, trains its K seeds as one model) and writes
one metrics row per seed and evaluation, told apart by ``seed``, one init-diagnostics entry per
seed and one init record per seed and layer; one checkpoint holds all K.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.base import rng_state, set_rng_state
from agent.common.allocator import keep_freed_memory
from agent.common.evaluation import init_diagnostics  # noqa: F401  (sweeps.diagnose, tests)
from agent.config import TrialConfig
from agent.policy import save_policy
from agent.seeds import Seeds, make_seeds
from agent.tensorboard_log import TrialBoard
from sweeps.trialdir import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILES,
    CONFIG_FILE,
    INIT_DIAGNOSTICS_FILE,
    INIT_RECORD_FILE,
    METRICS_FILE,
    RESUMABLE_KEYS,
    STATUS_FILE,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    config_diff,
    has_checkpoint,
    read_json_file,
    read_status,
)

CKPT_NAME, PREV_NAME = CHECKPOINT_FILES  # the newest; the one before: the fallback if it is bad
SUM_SUFFIX = ".sha256"  # state.pt.sha256: the digest written with it (catches later damage)


class TrialError(RuntimeError):
    """A trial that cannot go on (NaN loss, crashed env, bad checkpoint)."""


class ResumeMismatch(TrialError):
    """A resume asked for another config than the stored trial's; nothing was written."""


class TrialInterrupted(KeyboardInterrupt):
    """The trial stopped on SIGINT/SIGTERM or a wall-time limit; its status is "interrupted"
    and its checkpoint holds everything evaluated so far (resume continues from there)."""

    def __init__(self, reason: str, env_steps: int | None = None, out: Path | None = None):
        super().__init__(reason)
        self.reason, self.env_steps, self.out = reason, env_steps, out

    def __str__(self) -> str:
        where = f" at env step {self.env_steps:,}" if self.env_steps is not None else ""
        return f"interrupted ({self.reason}){where}"


def write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, default=_json_default)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the tidy metrics table atomically (the union of all rows' columns)."""
    atomic_write_csv(path, rows)


def diag_metrics(diag: dict[str, Any]) -> dict[str, float]:
    out = {
        "init/action_coverage": float(np.mean(diag["coverage"])),
        "init/action_clip_frac": float(np.mean(diag["clip_frac"])),
    }
    for key in ("entropy", "mean_abs_mean", "std", "critic_scale"):
        if diag.get(key) is not None:
            out[f"init/{key}"] = float(diag[key])
    return out


def run_trial(
    cfg: TrialConfig,
    out_dir: str | Path,
    *,
    restore_from: str | Path | None = None,
    on_eval: Callable[[dict[str, Any], Path], None] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train one trial to ``cfg.total_steps``; return the metrics rows.

    Restores from the newest intact checkpoint of ``restore_from`` and ``out_dir/checkpoints``
    (``state.pt``, else ``state.prev.pt``) so a restarted trial continues instead of starting
    over; a damaged checkpoint file is named in status.json's ``warnings``. A directory that
    already holds a trial of another config is refused (:class:`ResumeMismatch`, naming the
    keys) before anything is written. SIGINT/SIGTERM (in the main thread) or an ``on_eval``
    that raises :class:`TrialInterrupted` stop the trial as "interrupted" after checkpointing
    the last evaluation.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TrialError(f"output directory {out} is a file")
    ckpt_dir = out / CHECKPOINT_DIR
    config = cfg.to_dict()
    _check_resume_config(out, config)
    source, state, warnings = _pick_checkpoint(
        ([Path(restore_from)] if restore_from else []) + [ckpt_dir], config, cfg.total_steps
    )
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    keep_freed_memory()  # no page faults on every update's activations (glibc)
    write_json(out / CONFIG_FILE, config)
    seeds = make_seeds(cfg)
    board = TrialBoard(out, config, seeds.seeds)  # TensorBoard events, x axis env steps
    status = {
        "state": "running",
        "error": None,
        "env_steps": 0,
        "planned_steps": cfg.total_steps,
        "env_scores": {
            "random": seeds.env_spec.random_score,
            "reference": seeds.env_spec.reference_score,
        },
        "restored_from_step": None,
        "restores": 0,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    if warnings:
        status["warnings"] = warnings
    if state is not None:
        rows, wall0 = _restore(seeds, state, status, source, out)
        del state
    else:
        rows, wall0 = _start(seeds, cfg, out, board), 0.0
    start = time.perf_counter() - wall0
    bar = _progress(cfg, seeds) if progress else None
    signals = _StopSignals()
    saved = recorded = seeds.env_steps  # the last checkpointed and the last written eval step
    try:
        signals.install()
        evals_done = len({r["env_step"] for r in rows}) - 1
        while seeds.env_steps < cfg.total_steps:
            signals.defer = False  # mid-update state cannot be saved: a signal stops at once
            before = seeds.env_steps
            new = _train_and_evaluate(seeds, cfg, start)
            signals.defer = True  # from here to the checkpoint a signal waits for it
            rows += new
            row = new[0] if len(new) == 1 else _mean_row(new)
            evals_done += 1
            write_metrics(out / METRICS_FILE, rows)
            board.rows(new)
            save_policy(seeds.agent, out)  # policy.pt: the last evaluated policy, weights only
            recorded = seeds.env_steps
            done = seeds.env_steps >= cfg.total_steps
            if cfg.checkpoint_every and (
                evals_done % cfg.checkpoint_every == 0 or done or signals.pending
            ):
                _save(seeds, rows, row["wall_time"], ckpt_dir, config)
                saved = seeds.env_steps
            status.update(env_steps=seeds.env_steps, updated=time.time())
            if done:
                status["state"] = "finished"
            write_json(out / STATUS_FILE, status)
            if on_eval is not None:
                on_eval(row, ckpt_dir)
            if bar is not None:
                bar.set_postfix_str(
                    f"eval {row['eval/return']:.1f}, {row['perf/env_steps_per_s']:.0f} steps/s"
                )
                bar.update(seeds.env_steps - before)
            signals.raise_pending()
    except (KeyboardInterrupt, SystemExit) as err:
        if status.get("state") == "finished":  # stopped after its last evaluation (Tune's
            board.finish(rows)  # scheduler at max_t): complete, nothing to resume
            raise
        reason = err.reason if isinstance(err, TrialInterrupted) else type(err).__name__
        if recorded == seeds.env_steps and saved != recorded and cfg.checkpoint_every:
            # stopped at an evaluation (not mid-update): keep it, so resume loses nothing
            _save(seeds, rows, rows[-1]["wall_time"], ckpt_dir, config)
            saved = recorded
        status.update(
            state="interrupted",
            error=None,
            interrupted=reason,
            env_steps=recorded,
            resumable_from_step=saved,
            updated=time.time(),
        )
        write_json(out / STATUS_FILE, status)
        if isinstance(err, SystemExit):
            raise
        raise TrialInterrupted(reason, saved, out) from None
    except BaseException as err:
        status.update(state="failed", error=f"{type(err).__name__}: {err}", updated=time.time())
        write_json(out / STATUS_FILE, status)
        raise
    finally:
        signals.restore()
        if bar is not None:
            bar.close()
        if seeds.env_steps < cfg.total_steps:
            board.close()
    board.finish(rows)
    status.update(state="finished", env_steps=seeds.env_steps, updated=time.time())
    write_json(out / STATUS_FILE, status)
    return rows


def _start(seeds: Seeds, cfg: TrialConfig, out: Path, board: TrialBoard) -> list[dict[str, Any]]:
    """A fresh trial: seed and initialise, write the init record and diagnostics, evaluate the
    initial policy (the env_step 0 rows)."""
    write_json(out / INIT_RECORD_FILE, seeds.initialise())
    rows = [{"env_step": 0, "wall_time": 0.0, "seed": s} for s in seeds.seeds]
    if cfg.diag_states:
        diags = seeds.probe(cfg.diag_states)
        write_json(out / INIT_DIAGNOSTICS_FILE, diags)
        for row in rows:
            row.update(diag_metrics(diags[str(row["seed"])]))
    for row, metrics in zip(rows, _eval_metrics(seeds, cfg)):
        row.update(metrics)
    write_metrics(out / METRICS_FILE, rows)
    board.rows(rows)
    if cfg.diag_states:
        board.init_diagnostics(diags, cfg.diag_states)
    save_policy(seeds.agent, out)
    return rows


def _restore(
    seeds: Seeds, state: dict[str, Any], status: dict[str, Any], source: Path | None, out: Path
) -> tuple[list[dict[str, Any]], float]:
    """Continue from a checkpoint: weights, env steps, random state; (rows, wall time so far)."""
    seeds.load_state_dict(state["agent"])
    seeds.env_steps = state["env_steps"]
    set_rng_state(state["rng"])
    status["restores"] = read_status(out).get("restores", 0) + 1
    status["restored_from_step"] = seeds.env_steps
    status["restored_from"] = str(source)
    return state["rows"], state["wall_time"]


def _train_and_evaluate(seeds: Seeds, cfg: TrialConfig, start: float) -> list[dict[str, Any]]:
    """Train to the next evaluation step and evaluate: the new metrics rows, one per seed."""
    target = min(cfg.total_steps, (seeds.env_steps // cfg.eval_every + 1) * cfg.eval_every)
    before, t0 = seeds.env_steps, time.perf_counter()
    per_seed = seeds.train(target)
    for metrics in per_seed:
        _check_finite(metrics, seeds.env_steps)
    sps = (seeds.env_steps - before) / max(time.perf_counter() - t0, 1e-9)
    wall = time.perf_counter() - start
    new = [
        {
            "env_step": seeds.env_steps,
            "wall_time": wall,
            "seed": s,
            **metrics,
            "perf/env_steps_per_s": sps,
        }
        for s, metrics in zip(seeds.seeds, per_seed)
    ]
    for row, metrics in zip(new, _eval_metrics(seeds, cfg)):
        if len(seeds.seeds) > 1:  # the trial's env steps per second, summed over its seeds
            row["perf/batch_env_steps_per_s"] = sps * len(seeds.seeds)
        row.update(metrics)
    return new


def _eval_metrics(seeds: Seeds, cfg: TrialConfig) -> list[dict[str, Any]]:
    """One dict of eval metrics per seed of the trial."""
    return [
        {
            "eval/return": float(returns.mean()),
            "eval/return_std": float(returns.std()),
            "eval/episode_returns": json.dumps([round(float(r), 3) for r in returns]),
        }
        for returns in seeds.evaluate(cfg.eval_episodes)
    ]


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean over a seed-batched trial's rows of one evaluation (what progress reports)."""
    out: dict[str, Any] = {"env_step": rows[0]["env_step"]}
    for key in rows[0]:
        values = [r.get(key) for r in rows]
        if (
            key not in out
            and key != "seed"
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ):
            out[key] = float(np.mean(values))
    return out


def _check_finite(metrics: dict[str, float], step: int) -> None:
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrialError(
            f"non-finite {', '.join(bad)} at env step {step}; the last good checkpoint is kept"
        )


def _save(
    seeds: Seeds, rows: list, wall: float, ckpt_dir: Path, config: dict[str, Any] | None = None
) -> None:
    """Write state.pt (with its sha256) atomically; the previous one becomes state.prev.pt.

    A kill at any moment leaves at least one intact checkpoint: the new file is complete on
    disk before the old one is moved aside, and the old one is moved, never deleted, before
    the new one takes its name.
    """
    state = {
        "agent": seeds.state_dict(),
        "env_steps": seeds.env_steps,
        "rng": rng_state(),
        "rows": rows,
        "wall_time": wall,
        "config": config,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    tmp = ckpt_dir / (CKPT_NAME + ".new")
    atomic_write_bytes(tmp, data)
    current = ckpt_dir / CKPT_NAME
    if current.exists():
        os.replace(current, ckpt_dir / PREV_NAME)
        digest = ckpt_dir / (CKPT_NAME + SUM_SUFFIX)
        if digest.exists():
            os.replace(digest, ckpt_dir / (PREV_NAME + SUM_SUFFIX))
        else:
            (ckpt_dir / (PREV_NAME + SUM_SUFFIX)).unlink(missing_ok=True)
    os.replace(tmp, current)
    atomic_write_text(ckpt_dir / (CKPT_NAME + SUM_SUFFIX), hashlib.sha256(data).hexdigest())


def _check_resume_config(out: Path, config: dict[str, Any]) -> None:
    """Refuse to continue a stored trial with another config (before writing anything)."""
    path = out / CONFIG_FILE
    if not path.is_file():
        return
    has_work = (out / METRICS_FILE).exists() or has_checkpoint(out)
    if not has_work:
        return  # nothing computed with the old config: a fresh start
    problems: list[str] = []
    stored = read_json_file(path, CONFIG_FILE, problems)
    if problems or not isinstance(stored, dict):
        raise ResumeMismatch(
            f"{path}: {'; '.join(problems) or 'not a JSON object'}; cannot "
            "check that the resume uses the same config; nothing was written"
        )
    diff = config_diff(stored, config, ignore=RESUMABLE_KEYS)
    if diff:
        raise ResumeMismatch(
            f"{out} holds a trial of another config; a resume must use the stored one "
            f"(only {', '.join(RESUMABLE_KEYS)} may change). Differing keys (stored -> "
            f"requested): {'; '.join(diff)}. Nothing was written; use another --out, or "
            "--force to delete the stored trial and start over"
        )


def _pick_checkpoint(
    dirs: list[Path], config: dict[str, Any], total_steps: int
) -> tuple[Path | None, dict[str, Any] | None, list[str]]:
    """The newest intact checkpoint among ``dirs``' state.pt and state.prev.pt.

    Returns (path, state, warnings): every damaged file is named in a warning. Raises
    TrialError if checkpoint files exist but none is intact (a silent restart would overwrite
    what they hold), or if the chosen one belongs to another config or budget.
    """
    best: tuple[Path, dict[str, Any]] | None = None
    bad: list[str] = []
    seen = 0
    for d in dirs:
        for name in (CKPT_NAME, PREV_NAME):
            path = d / name
            if not path.exists():
                continue
            seen += 1
            state, problem = _load_checkpoint(path)
            if problem:
                bad.append(f"checkpoint {path} is damaged ({problem})")
            elif best is None or state["env_steps"] > best[1]["env_steps"]:
                best = (path, state)
    if best is None:
        if seen:
            raise TrialError(
                "no intact checkpoint to resume from: "
                + "; ".join(bad)
                + ". Nothing was overwritten; delete the trial directory (or use "
                "--force) to start it over"
            )
        return None, None, []
    path, state = best
    stored = state.get("config")
    if isinstance(stored, dict):
        diff = config_diff(stored, config, ignore=RESUMABLE_KEYS)
        if diff:
            raise ResumeMismatch(
                f"checkpoint {path} was written by another config; differing "
                f"keys (stored -> requested): {'; '.join(diff)}. Nothing was "
                "written"
            )
    if state["env_steps"] > total_steps:
        raise ResumeMismatch(
            f"checkpoint {path} is at env step {state['env_steps']:,}, past "
            f"total_steps={total_steps:,}; nothing was written"
        )
    if bad:
        bad.append(f"resumed from {path} at env step {state['env_steps']:,}")
        print("warning: " + "; ".join(bad), file=sys.stderr)
    return path, state, bad


def _load_checkpoint(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(state, None) for an intact checkpoint file, (None, what is wrong) otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return None, f"unreadable: {err.strerror or err}"
    if not data:
        return None, "empty (0 bytes)"
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated zip, a pickle error, garbage
        return None, f"cannot be loaded: {type(err).__name__}: {' '.join(str(err).split())[:120]}"
    digest = path.with_name(path.name + SUM_SUFFIX)
    if digest.exists():  # a flipped bit in tensor data loads fine: the digest catches it
        expected = digest.read_text().strip()
        if expected and hashlib.sha256(data).hexdigest() != expected:
            return None, f"sha256 differs from {digest.name}: changed after it was written"
    missing = [
        k
        for k in ("agent", "env_steps", "rng", "rows", "wall_time")
        if not isinstance(state, dict) or k not in state
    ]
    if missing:
        return None, f"not a trial checkpoint (missing {', '.join(missing)})"
    return state, None


class _StopSignals:
    """SIGINT/SIGTERM while training raise TrialInterrupted at once (the partial interval is
    redone on resume); during the evaluation, write and checkpoint that follow training they
    wait until the checkpoint is on disk. A second signal always stops at once. Only the main
    thread can take signals (a Ray trial thread is stopped by Ray instead)."""

    def __init__(self) -> None:
        self.defer = False
        self.pending: str | None = None
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.defer and self.pending is None:
            self.pending = name
            return
        raise TrialInterrupted(name)

    def raise_pending(self) -> None:
        if self.pending:
            raise TrialInterrupted(self.pending)


def _progress(cfg: TrialConfig, seeds: Seeds):
    from tqdm import tqdm

    label = (
        "seeds " + ",".join(map(str, seeds.seeds))
        if len(seeds.seeds) > 1
        else f"seed {seeds.seeds[0]}"
    )
    return tqdm(
        total=cfg.total_steps,
        initial=seeds.env_steps,
        unit="step",
        dynamic_ncols=True,
        desc=f"{cfg.agent} {cfg.env} {label}",
    )


def clear_checkpoints(out_dir: Path) -> None:
    shutil.rmtree(Path(out_dir) / CHECKPOINT_DIR, ignore_errors=True)
