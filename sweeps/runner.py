"""``sweep run``, ``sweep validate`` and ``sweep status``: a sweep file on Ray Tune.

    sweep validate FILE [--budget NAME]
    sweep run FILE [--budget NAME] [--storage DIR] [--address ADDR] [--max-concurrent N]
                   [--dry-run] [--resume] [--force]
    sweep status DIR

Each trial is one call of a function trainable that builds the agent from the trial's resolved
config and runs ``agent.trial.run_trial`` into ``<storage>/trials/<trial_id>/``; at every
evaluation it reports the metrics to Tune with the trial's checkpoint, and when Ray restarts it
(a retry, or ``--resume`` after the sweep was stopped or killed) it restores from
``tune.get_checkpoint()``. Only this module knows Ray; the agent package never imports it.

Without ``--address`` an embedded local Ray starts and stops with the command. To run on a
cluster, start Ray on each machine with the same Python environment and a ``--storage``
directory that every node sees (a shared filesystem)::

    ray start --head --port 6379 --num-cpus 8 --disable-usage-stats    # on the head node
    ray start --address HEAD_IP:6379 --num-cpus 8                      # on each worker
    sweep run init_ablation.yaml --address HEAD_IP:6379 --storage /shared/results/init_ablation
    ray stop                                                           # on each node, when done

(``--address auto`` finds a cluster started on this machine.) Ray 2.60 starts clusters with token
authentication when a token exists (``~/.ray/auth_token``); a driver given an explicit address
then needs ``export RAY_AUTH_MODE=token`` and the same token.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from sweeps.cli import CLIError
from sweeps.schema import Sweep, import_user_module, load_sweep
from sweeps.status import (
    LiveView,
    TrialState,
    fmt_duration,
    format_status,
    last_rows,
    read_states,
    seconds_per_step,
    text_table,
    trial_kind,
)
from sweeps.trialdir import (
    METRICS_FILE,
    RESOLVED_FILE,
    STATUS_FILE,
    SWEEP_FILE,
    TRIALS_DIR,
    atomic_write_json,
    check_trial,
    config_diff,
    flatten,
    read_status,
    trial_path,
)

RAY_DIR = "ray"  # Ray Tune's experiment directory inside the sweep directory
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM: trials checkpointed, resumable
EXIT_TIME_LIMIT = 75  # --time-limit reached (EX_TEMPFAIL: run again with --resume)
MIN_START_S = 30.0  # never start a trial with less wall time than this left
OWNED = (SWEEP_FILE, RESOLVED_FILE, RAY_DIR, TRIALS_DIR)  # what --force removes
_TUNE_STATE = {
    "PENDING": "pending",
    "PAUSED": "pending",
    "RUNNING": "running",
    "TERMINATED": "finished",
    "ERROR": "failed",
}


# --- the CLI -----------------------------------------------------------------------------------


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "run",
        help="run a sweep file on Ray Tune",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("file", help="sweep YAML: a path, or the name of one shipped in sweeps/")
    s.add_argument("--budget", help="named overlay of the file, e.g. quick or full")
    s.add_argument(
        "--storage", help="sweep directory (default: the file's storage, else results/<name>)"
    )
    s.add_argument(
        "--address",
        help="connect to a running Ray cluster (e.g. auto, HOST:6379, "
        "ray://HOST:10001) instead of starting a local one",
    )
    s.add_argument(
        "--max-concurrent",
        type=int,
        metavar="N",
        help="trials at once (default: as many as the CPUs allow)",
    )
    s.add_argument("--dry-run", action="store_true", help="print the trials, run nothing")
    _max_trials_option(s)
    s.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in the storage "
        "directory: finished trials are kept, the others restart from their last "
        "checkpoint",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="delete the sweep in the storage directory and start over",
    )
    s.add_argument(
        "--only",
        action="append",
        metavar="SELECTOR",
        help="run only these trials now (repeatable; a trial runs if it matches any): a "
        "trial-id glob ('t000_*', '*_s0') or KEY=V1,V2 on the trial config "
        "('agent=sac,ppo', 'seed=0'). The sweep directory keeps the whole design; the "
        "others stay pending for a later --resume",
    )
    s.add_argument(
        "--time-limit",
        metavar="DURATION",
        type=parse_duration,
        help="wall time for this run, like a cluster job's (2h30m, 90m, 3600s): "
        "trials that cannot finish in time (by the sweep's measured time per step) "
        "are not started, running ones checkpoint and stop at their last "
        "evaluation before the limit; exit status 75, continue with --resume",
    )
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("validate", help="check a sweep file and run nothing")
    s.add_argument("file", help="sweep YAML: a path, or the name of one shipped in sweeps/")
    s.add_argument("--budget", help="show this budget's expansion (every budget is checked)")
    _max_trials_option(s)
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("status", help="trials of a sweep directory by state")
    s.add_argument("dir", help="sweep directory, e.g. results/init_ablation")
    s.add_argument(
        "--strict",
        action="store_true",
        help="exit with an error (status 2) if any trial directory is damaged",
    )
    s.add_argument(
        "--result-files",
        action="store_true",
        help="print, one per line, the files to keep of the trials that ended (finished or "
        "stopped) and the sweep's own files, never checkpoints: git add $(sweep status DIR "
        "--result-files) commits a campaign that resumes elsewhere",
    )
    s.add_argument(
        "--with-policy",
        action="store_true",
        help="with --result-files: also each ended trial's policy.pt (for sweep eval)",
    )
    s.set_defaults(func=_cmd_status)


def _max_trials_option(s: argparse.ArgumentParser) -> None:
    from sweeps.schema import MAX_TRIALS

    s.add_argument(
        "--max-trials",
        type=int,
        default=MAX_TRIALS,
        metavar="N",
        help=f"refuse a sweep of more than N trials, counted before expanding the "
        f"grid (default {MAX_TRIALS:,}); raise it to run a bigger one",
    )


def _cmd_status(args: argparse.Namespace) -> int:
    from sweeps.status import cmd_status

    return cmd_status(args)


def cmd_validate(args: argparse.Namespace) -> int:
    limit = getattr(args, "max_trials", None)
    sweep = load_sweep(args.file, args.budget, max_trials=limit)
    print_safely(f"{sweep.file}: ok: {_describe(sweep)}")
    if args.budget is None:
        for name in sweep.spec.budgets:
            budget = load_sweep(sweep.file, name, check_budgets=False, max_trials=limit)
            print_safely(f"  budget {name}: {_describe(budget)}")
    return 0


def _describe(sweep: Sweep) -> str:
    groups = len({t.group for t in sweep.trials})
    steps = sum(t.total_steps * len(t.seeds) for t in sweep.trials)
    return (
        f"{len(sweep.trials)} trials ({groups} configs x {len(sweep.seeds)} seeds), "
        f"{steps:,} env steps"
    )


def print_dry_run(sweep: Sweep, only: set[str] | None = None) -> None:
    """The trial table; with ``only`` (``--only``), the selected trials and a count line."""
    keys = [*sweep.varying_keys, *sweep.search_keys]  # search keys: "-" where not searched
    extra = [] if "total_steps" in keys else ["total_steps"]
    shown = [t for t in sweep.trials if only is None or t.trial_id in only]
    rows = [
        [
            t.trial_id,
            *(_short(t.values.get(k, "-")) for k in keys),
            t.seeds_label,
            *(t.total_steps for _ in extra),
        ]
        for t in shown
    ]
    budget = f", budget {sweep.budget}" if sweep.budget else ""
    selected = ""
    if len(shown) < len(sweep.trials):
        steps = sum(t.total_steps * len(t.seeds) for t in shown)
        selected = (
            f"\n--only selects {len(shown)} of them ({steps:,} env steps); "
            "the others stay pending in the sweep directory"
        )
    print_safely(
        text_table(["trial_id", *keys, "seed", *extra], rows)
        + f"\n\n{sweep.name}{budget}: {_describe(sweep)}; storage {sweep.storage}"
        + selected
        + (f"\n{scheduler_text(sweep)}" if sweep.spec.scheduler is not None else "")
    )


def scheduler_text(sweep: Sweep) -> str:
    """One line on what the sweep's early-stopping scheduler will do, for dry runs and starts."""
    sch = sweep.spec.scheduler
    assert sch is not None
    max_t = max(t.total_steps for t in sweep.trials)
    rungs = sch.rungs(max_t)
    where = (
        f"may stop a trial at env steps {', '.join(f'{r:,}' for r in rungs)}"
        if rungs
        else f"can stop no trial: grace_period {sch.grace_period:,} is not below total_steps"
    )
    return (
        f"scheduler: ASHA on {sweep.spec.metric} ({sweep.spec.mode}), reduction factor "
        f"{sch.reduction_factor:g}, {sch.brackets} bracket(s): {where}; the env steps above "
        "are an upper bound, and a stopped trial is final (state stopped, no final score)"
    )


def print_safely(text: str) -> None:
    """print() that stays quiet when the reader went away (`sweep run ... --dry-run | head`)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _short(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def cmd_run(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.file, args.budget, max_trials=getattr(args, "max_trials", None))
    if args.storage:
        sweep.spec.storage = args.storage
    only = select_trials(sweep.trials, getattr(args, "only", None))
    if args.dry_run:
        print_dry_run(sweep, only)
        return 0
    if args.resume and args.force:
        raise CLIError("--resume and --force exclude each other")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise CLIError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    storage = sweep.storage.resolve()
    if storage.exists() and not storage.is_dir():
        raise CLIError(f"storage {storage} exists and is not a directory")
    existing = [name for name in OWNED if (storage / name).exists()]
    if existing and not (args.resume or args.force):
        raise CLIError(
            f"{storage} already holds a sweep ({', '.join(existing)}); pass --resume "
            "to continue it, --force to delete it and start over, or --storage DIR"
        )
    if args.resume and RESOLVED_FILE not in existing:
        raise CLIError(
            f"nothing to resume in {storage} (no sweep_resolved.json); run without "
            "--resume to start the sweep"
        )
    cpus = os.cpu_count() or 1
    if not args.address and sweep.spec.resources.cpus > cpus:
        raise CLIError(
            f"resources.cpus is {sweep.spec.resources.cpus:g} per trial but this "
            f"machine has {cpus} CPUs; lower it or pass --address of a cluster"
        )
    if args.resume:
        _check_same(sweep, storage)
        states = [s for s in read_states(storage) if s.trial_id in only]
        if all(s.state == "finished" for s in states):
            which = "selected " if len(only) < len(sweep.trials) else ""
            print(f"{sweep.name}: all {len(states)} {which}trials already finished in {storage}")
            return 0
    deadline = time.time() + args.time_limit if getattr(args, "time_limit", None) else None
    started = _connect_ray(sweep, args)  # before writing anything: a bad --address leaves no trace
    try:
        if args.force and existing:
            for name in existing:
                target = storage / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        (storage / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        if not args.resume:
            (storage / SWEEP_FILE).write_text(sweep.text)
            atomic_write_json(storage / RESOLVED_FILE, sweep.resolved())
        return _run_tune(sweep, storage, args, deadline, only)
    finally:
        if started:
            import ray

            ray.shutdown()


def parse_duration(text: str) -> float:
    """'2h30m', '90m', '45s', '1h', '1.5h' or plain seconds '3600' -> seconds (> 0)."""
    import re

    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", t)
        if not parts or "".join(n + u for n, u in parts) != t.replace(" ", ""):
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a duration (e.g. 2h30m, 90m, 45s or seconds)"
            )
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': the time limit must be positive")
    return seconds


def select_trials(trials: list, selectors: list[str] | None) -> set[str]:
    """The ids of ``trials`` that ``--only`` selects: every trial without selectors, else those
    matching any selector, a trial-id glob or ``KEY=V1,V2`` (a dotted config key, values read
    as YAML: ``agent=sac,ppo``, ``seed=0``, ``init.scheme=fanin``). A selector that matches
    nothing, or names a key no trial has, is a CLIError naming what exists."""
    import fnmatch

    import yaml

    from initablate.registry import suggest

    if not selectors:
        return {t.trial_id for t in trials}
    flat = {t.trial_id: flatten(t.config) for t in trials}
    keys = sorted(set().union(*flat.values())) if flat else []
    chosen: set[str] = set()
    for sel in selectors:
        key, eq, raw = sel.partition("=")
        if eq:
            key = key.strip()
            if key not in keys:
                raise CLIError(
                    f"--only {sel}: no trial config has the key '{key}'" + suggest(key, keys)
                )
            wanted = [yaml.safe_load(v) for v in raw.split(",")]
            hit = {tid for tid, cfg in flat.items() if cfg.get(key) in wanted}
            if not hit:
                seen = sorted({str(cfg.get(key)) for cfg in flat.values()})
                raise CLIError(
                    f"--only {sel}: no trial has {key} in {raw.split(',')} "
                    f"(the sweep's values: {', '.join(seen[:12])})"
                )
        else:
            hit = {t.trial_id for t in trials if fnmatch.fnmatchcase(t.trial_id, sel)}
            if not hit:
                ids = [t.trial_id for t in trials]
                raise CLIError(
                    f"--only {sel}: matches no trial id (they run {ids[0]} .. {ids[-1]}; "
                    "`sweep run FILE --dry-run` lists them)"
                )
        chosen |= hit
    return chosen


def seed_major(trials: list) -> list[str]:
    """Trial ids in launch order: every configuration's seed 0, then every seed 1, ... A sweep
    stopped part-way (a wall-time limit, the end of a session) then holds complete seed blocks,
    so its arms can already be compared seed by seed."""
    return [t.trial_id for t in sorted(trials, key=lambda t: t.seed)]


def _check_same(sweep: Sweep, storage: Path) -> None:
    stored = json.loads((storage / RESOLVED_FILE).read_text())
    old = {t["trial_id"]: t["config"] for t in stored["trials"]}
    new = {t.trial_id: t.config for t in sweep.trials}
    # keys only one side has were added to (or dropped from) the code after the sweep was
    # stored; their defaults reproduce the old behaviour (trialdir.config_diff), so they pass
    diffs = {k: config_diff(old[k], new[k]) for k in new.keys() & old.keys()}
    if old.keys() == new.keys() and not any(diffs.values()):
        return
    added = len(new.keys() - old.keys())
    removed = len(old.keys() - new.keys())
    changed = sum(1 for d in diffs.values() if d)
    hint = ""
    if stored.get("budget") != sweep.budget:
        hint = (
            f"; it was started with --budget {stored['budget']}"
            if stored.get("budget")
            else "; it was started without --budget"
        )
    raise CLIError(
        f"the sweep in {storage} was started from a different expansion ({added} "
        f"trials added, {removed} removed, {changed} changed){hint}. Resume with the "
        "same file and budget, or use --force or another --storage"
    )


# --- Ray Tune ----------------------------------------------------------------------------------


def _quiet_ray() -> None:
    """Tune's own progress tables and per-failure tracebacks are replaced by the live view and
    by status.json / `sweep status`."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name, level in (
        ("ray.tune.execution.tune_controller", logging.CRITICAL),
        ("ray.tune.tune", logging.CRITICAL),
        ("ray.tune.execution.experiment_state", logging.ERROR),
        ("ray.tune.impl.tuner_internal", logging.ERROR),
        ("ray.tune.utils.util", logging.ERROR),
        # "Failed to fetch metrics": Tune's result.json loggers are off on
        # purpose (the trials write metrics.csv; TUNE_DISABLE_AUTO_CALLBACK_LOGGERS)
        ("ray.tune.analysis.experiment_analysis", logging.ERROR),
        ("ray._private.authentication.authentication_token_setup", logging.ERROR),
    ):
        logging.getLogger(name).setLevel(level)


def _connect_ray(sweep: Sweep, args: argparse.Namespace) -> bool:
    """Start the embedded local Ray, or connect to --address; True if this call did either
    (an already initialised Ray, as in tests, is used as it is)."""
    _quiet_ray()
    import ray

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if args.address:
                _check_reachable(args.address)
                ray.init(address=args.address, **kwargs)
            else:
                cpus = os.cpu_count() or 1
                if args.max_concurrent:
                    cpus = max(cpus, math.ceil(args.max_concurrent * sweep.spec.resources.cpus))
                # Ray renices its workers to +15 by default; trials are the work here, so they
                # get the driver's priority (on a shared machine +15 starves them)
                os.environ.setdefault("RAY_worker_niceness", "0")
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, **kwargs)
                from sweeps import watchdog

                watchdog.start()  # a driver killed with -9 leaves no Ray processes behind
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as err:
            where = f"Ray at {args.address}" if args.address else "a local Ray"
            msg = " ".join(str(err).split())[:300]
            if "uthentic" in msg:
                msg += (
                    " (the cluster uses token authentication: export RAY_AUTH_MODE=token, with "
                    "the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
                )
            raise CLIError(f"cannot start or reach {where}: {msg}") from None
        started = True
        _quiet_ray()  # ray.init reconfigures its loggers
    return started


def _wait_for_writers(
    storage: Path, running: list[str], timeout_s: float = 60.0, poll_s: float = 0.5
) -> bool:
    """Before trials are (re)started: wait for processes of an earlier run that still write to
    their trial directories (a killed sweep's workers until its watchdog reaps them), so two
    processes never train one trial; after ``timeout_s`` refuse, naming them. True if it
    waited (the trials' files may have changed meanwhile)."""
    from sweeps.status import live_writer

    deadline, said = time.time() + timeout_s, False
    while True:
        live = {}
        for tid in running:
            status = read_status(trial_path(storage, tid))
            pid = live_writer(status) if status else None
            if pid is not None:
                live[tid] = pid
        if not live:
            return said
        names = ", ".join(f"{tid} (pid {pid})" for tid, pid in sorted(live.items()))
        if time.time() >= deadline:
            raise CLIError(
                f"trials still being written by processes of an earlier run: {names}. "
                "Stop those processes (or wait for them to end) and run again; "
                "nothing was changed"
            )
        if not said:
            print(
                f"waiting up to {timeout_s:.0f} s for processes of an earlier run to end: {names}",
                flush=True,
            )
            said = True
        time.sleep(poll_s)


def _run_tune(
    sweep: Sweep,
    storage: Path,
    args: argparse.Namespace,
    deadline: float | None = None,
    only: set[str] | None = None,
) -> int:
    from ray import tune

    table = {
        t.trial_id: {
            "config": t.config,
            "out_dir": str(trial_path(storage, t.trial_id)),
            "imports": sweep.imports,
            "metric": sweep.spec.metric,
            "deadline": deadline,
            "min_start_s": MIN_START_S,
        }
        for t in sweep.trials
    }
    groups: dict[str, list[str]] = {}
    kinds: dict[tuple[str, str], list[str]] = {}  # (agent, env) -> trial dirs
    for t in sweep.trials:
        groups.setdefault(t.group, []).append(str(trial_path(storage, t.trial_id)))
        kinds.setdefault(trial_kind(t.config), []).append(str(trial_path(storage, t.trial_id)))
    for t in sweep.trials:  # where _can_finish measures the time per step
        table[t.trial_id].update(
            group_dirs=groups[t.group],
            kind_dirs=kinds[trial_kind(t.config)],
            trials_root=str(storage / TRIALS_DIR),
        )
    states = {s.trial_id: s for s in read_states(storage)}
    if _wait_for_writers(
        storage, [t.trial_id for t in sweep.trials if states[t.trial_id].state == "running"]
    ):
        states = {s.trial_id: s for s in read_states(storage)}  # as the late writers left them
    # finished trials are never rerun; damaged ones are named and left as they are
    # nor those an early-stopping scheduler stopped: its decision is final
    todo = [
        t
        for t in sweep.trials
        if states[t.trial_id].state not in ("finished", "damaged", "stopped")
        and (only is None or t.trial_id in only)
    ]
    if not todo:
        return _report(sweep, storage, only=only)
    res = sweep.spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(ray_trainable, trials=table), {"cpu": res.cpus, "gpu": res.gpus}
    )
    view = LiveView(sweep.name, sweep.spec.metric, sweep.spec.mode)
    global _VIEW
    _VIEW = _ViewState(view, sweep, storage, only)
    exp_dir = storage / RAY_DIR
    try:
        # A resume is a new Tune experiment over the unfinished trials: each restores from its
        # own trials/<id>/checkpoints (Tune's copies under ray/ are not needed, so a sweep
        # directory committed without ray/ and checkpoints resumes on another machine too)
        if exp_dir.exists():
            shutil.rmtree(exp_dir)
        # Tune's own CSV/JSON/TensorBoard loggers would put a second TensorBoard run per trial
        # under ray/ (x axis: Tune iterations); each trial writes its own to <trial>/tb with
        # env steps on the x axis. TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=0 brings Tune's back.
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        stops: dict[str, int] = {}  # trial id -> env step where the scheduler stopped it
        tuner = tune.Tuner(
            trainable,
            param_space={"trial_id": tune.grid_search(seed_major(todo))},
            tune_config=tune.TuneConfig(
                scheduler=_scheduler(sweep, stops),
                max_concurrent_trials=args.max_concurrent,
                reuse_actors=True,
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_name,
            ),
            run_config=tune.RunConfig(
                name=RAY_DIR,
                storage_path=str(storage),
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=sweep.spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                callbacks=[new_progress_callback()],
            ),
        )
        view.update(_VIEW.initial())
        view.start()
        import signal

        with contextlib.suppress(ValueError):  # the handlers to put back after Tune's run
            for sig in (signal.SIGINT, signal.SIGTERM):
                _OLD_HANDLERS[sig] = signal.getsignal(sig)
        try:
            tuner.fit()
        finally:
            with contextlib.suppress(Exception):  # the view's last line: what the trials wrote
                view.update(_VIEW.initial(running=True))
            view.stop()
        signalled = _VIEW.signalled
    finally:
        _VIEW = None
        _restore_signals()
    _mark_stopped(storage, stops, {t.trial_id: t.total_steps for t in todo})
    _mark_interrupted(storage, [t.trial_id for t in todo], signalled or "the sweep was stopped")
    if signalled:
        return _report(sweep, storage, interrupted=signalled, only=only)
    if deadline is not None and any(
        s.state in ("pending", "interrupted", "running")
        for s in read_states(storage)
        if only is None or s.trial_id in only
    ):
        return _report(sweep, storage, time_limit=args.time_limit, only=only)
    return _report(sweep, storage, only=only)


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes (ray.init retries a dead GCS address for a long time)."""
    import socket

    if "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        raise CLIError(
            f"cannot reach a Ray cluster at {address}: {err}; start one with "
            "`ray start --head --port PORT` (see `sweep run --help`)"
        ) from None


def _report(
    sweep: Sweep,
    storage: Path,
    *,
    interrupted: str | None = None,
    time_limit: float | None = None,
    only: set[str] | None = None,
) -> int:
    states = read_states(storage)
    failed = [s for s in states if s.state == "failed"]
    damaged = [s for s in states if s.state == "damaged"]
    unfinished = [s for s in states if s.state in ("pending", "running", "interrupted")]
    # --only: the run is judged by the trials it was asked to run; the others wait
    left_out = [s for s in unfinished if only is not None and s.trial_id not in only]
    unfinished = [s for s in unfinished if s not in left_out]
    print(format_status(storage).split("\n\n")[0])
    for s in failed:
        print(f"failed {s.trial_id}: {s.error}")
    for s in damaged:
        print(f"damaged {s.trial_id}: {s.error}")
    resume = (
        f"sweep run {sweep.file} "
        + (f"--budget {sweep.budget} " if sweep.budget else "")
        + f"--storage {storage} --resume"
    )
    if time_limit is not None or interrupted:
        done = sum(s.state == "finished" for s in states)
        stopped = [s for s in states if s.state == "interrupted"]
        waiting = [s for s in states if s.state == "pending"]
        why = (
            f"time limit {fmt_duration(time_limit)} reached"
            if time_limit is not None
            else f"interrupted ({interrupted})"
        )
        print(
            f"{why}: {done}/{len(states)} trials finished; {len(stopped)} stopped at a "
            f"checkpoint ("
            + (
                ", ".join(
                    f"{s.trial_id} at {s.env_steps:,}/{s.planned_steps:,}" for s in stopped[:6]
                )
                + (" ..." if len(stopped) > 6 else "")
                or "none"
            )
            + f"); {len(waiting)} not started"
        )
        left = sum(max(s.planned_steps - s.env_steps, 0) for s in unfinished)
        print(
            f"{left:,} env steps left; continue with: {resume}"
            + (" --time-limit DURATION" if time_limit is not None else "")
        )
        _left_out(left_out, resume)
        print(f"results in {storage}; `sweep status {storage}` lists every trial")
        return EXIT_INTERRUPTED if interrupted else EXIT_TIME_LIMIT
    _left_out(left_out, resume)
    if unfinished:
        print(f"{len(unfinished)} trials unfinished; continue with: {resume}")
    if damaged:
        print(
            f"{len(damaged)} damaged trials were left as they are (not rerun, nothing "
            "overwritten); inspect them, or delete a trial's directory to rerun it"
        )
    print(f"results in {storage}; `sweep status {storage}` lists every trial")
    return 1 if failed or unfinished or damaged else 0


def _left_out(states: list, resume: str) -> None:
    if states:
        print(
            f"{len(states)} trials were not selected by --only and wait; run them with: "
            f"{resume} [--only SELECTOR]"
        )


def _scheduler(sweep: Sweep, stops: dict[str, int]) -> Any:
    """Tune's ASHAScheduler for the sweep's ``scheduler:`` (None without one), on env steps;
    it records in ``stops`` each trial it stops before its total_steps."""
    sch = sweep.spec.scheduler
    if sch is None:
        return None
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            decision = super().on_trial_result(tune_controller, trial, result)
            step = int(result.get("env_step", 0))
            if decision == TrialScheduler.STOP and step < planned[trial.config["trial_id"]]:
                stops[trial.config["trial_id"]] = step
            return decision

    planned = {t.trial_id: t.total_steps for t in sweep.trials}
    return RecordingASHA(
        time_attr="env_step",
        metric=sweep.spec.metric,
        mode=sweep.spec.mode,
        max_t=max(planned.values()),
        grace_period=sch.grace_period,
        reduction_factor=sch.reduction_factor,
        brackets=sch.brackets,
    )


def _mark_stopped(
    storage: Path, stops: dict[str, int], planned: dict[str, int], wait_s: float = 30.0
) -> None:
    """After Tune returned: the trials the scheduler stopped become "stopped" (final: --resume
    leaves them, the report gives them no final score). Their workers wrote "interrupted" on
    the way out; a trial still "running" gets up to ``wait_s`` for that write to land first."""
    deadline = time.time() + wait_s
    for tid, step in sorted(stops.items()):
        path = trial_path(storage, tid) / STATUS_FILE
        status = read_status(path.parent)
        while status.get("state") == "running" and time.time() < deadline:
            time.sleep(0.2)
            status = read_status(path.parent)
        if not status or status.get("state") in ("finished", "failed"):
            continue  # it ended on its own after all (or never started)
        status.update(
            state="stopped",
            stopped_by=f"ASHA at env step {step:,} of {planned.get(tid, 0):,}",
            updated=time.time(),
        )
        status.pop("interrupted", None)
        atomic_write_json(path, status)


def _mark_interrupted(storage: Path, trial_ids: list[str], reason: str) -> list[str]:
    """After Tune stopped: trials of this run still marked "running" (their process was
    stopped by Ray without a word) become "interrupted"; returns every interrupted trial."""
    out = []
    for tid in trial_ids:
        path = trial_path(storage, tid) / STATUS_FILE
        status = read_status(path.parent)
        if not status:
            continue
        if status.get("state") == "running":
            status.update(state="interrupted", interrupted=reason, updated=time.time())
            atomic_write_json(path, status)
        if status.get("state") == "interrupted":
            out.append(tid)
    return out


def trial_name(trial: Any) -> str:
    return str(trial.config["trial_id"])


# --- the live view, fed by a Tune callback -----------------------------------------------------


class _ViewState:
    def __init__(self, view: LiveView, sweep: Sweep, storage: Path, only: set[str] | None = None):
        self.view, self.storage = view, storage
        # with --only the view (counts, ETA, best) covers the selected trials: this run's work
        self.trials = {t.trial_id: t for t in sweep.trials if only is None or t.trial_id in only}
        self.metric = sweep.spec.metric
        self.last = 0.0
        self.errors: dict[str, str] = {}
        self.ended: dict[str, str] = {}  # TERMINATED trials: the state their status.json says
        self.signalled: str | None = None  # SIGINT/SIGTERM received by the driver
        # trials finished before this run (a resume) stay finished whatever Tune restored
        self.finished = {
            s.trial_id: s for s in read_states(storage) if s.state in ("finished", "damaged")
        }  # not run again

    def initial(self, running: bool = False) -> list[TrialState]:
        """The selected trials as their directories say (``running`` ones shown as pending
        unless ``running``: before Tune starts, nothing runs)."""
        states = [s for s in read_states(self.storage) if s.trial_id in self.trials]
        for s in states:
            if s.state == "running" and not running:
                s.state = "pending"
        return states

    def refresh(self, trials: list, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        by_id = {str(t.config.get("trial_id")): t for t in trials}
        states = []
        for tid, plan in self.trials.items():
            if tid in self.finished:
                states.append(self.finished[tid])
                continue
            st = TrialState(
                tid,
                plan.group,
                plan.label,
                "pending",
                0,
                plan.total_steps,
                env=str(plan.config.get("env", "")),
            )
            tt = by_id.get(tid)
            if tt is not None:
                st.state = _TUNE_STATE.get(tt.status, "pending")
                if tt.status == "TERMINATED":  # returned: finished, or stopped by the limit
                    st.state = self._ended(tid)
                result = tt.last_result or {}
                st.env_steps = int(result.get("env_step") or 0)
                v = result.get(self.metric)
                st.value = float(v) if isinstance(v, (int, float)) else None
                if st.state == "failed":
                    st.error = self.errors.get(tid) or self._error(tid)
            states.append(st)
        self.view.update(states)

    def _ended(self, tid: str) -> str:
        if tid not in self.ended:
            status = read_status(trial_path(self.storage, tid))
            self.ended[tid] = str(status.get("state") or "pending")
        return self.ended[tid]

    def _error(self, tid: str) -> str | None:
        status = read_status(trial_path(self.storage, tid))
        if not status:
            return None
        self.errors[tid] = status.get("error")
        return self.errors[tid]


_VIEW: _ViewState | None = None
_OLD_HANDLERS: dict[int, Any] = {}


def _watch_signals() -> None:
    """Called as Tune's run starts (after Tune set its SIGINT handler): SIGINT and SIGTERM are
    recorded for the final message and both end the run Tune's graceful way (trials stop at
    their last checkpoint, the experiment state is saved). A second signal stops at once."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    tune_handler = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if _VIEW is not None and _VIEW.signalled is None:
            _VIEW.signalled = signal.Signals(signum).name
            print(
                f"\n{_VIEW.signalled}: stopping the trials at their last checkpoint "
                "(again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            signal.signal(signal.SIGTERM, _OLD_HANDLERS.get(signal.SIGTERM, signal.SIG_DFL))
            if callable(tune_handler):
                tune_handler(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        _OLD_HANDLERS.setdefault(sig, signal.getsignal(sig))
        signal.signal(sig, handler)


def _restore_signals() -> None:
    import signal

    for sig, handler in _OLD_HANDLERS.items():
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(sig, handler)
    _OLD_HANDLERS.clear()


def new_progress_callback() -> Any:
    """A Tune callback feeding the current run's live view. It pickles by reference to this
    function, so a resumed Tuner (which unpickles its RunConfig) feeds the new run's view."""
    from ray import tune

    class ProgressCallback(tune.Callback):
        def setup(self, **info: Any) -> None:
            _watch_signals()

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            if _VIEW is not None:
                _VIEW.refresh(trials)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
            if _VIEW is not None:
                _VIEW.refresh(trials, force=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any):
            if _VIEW is not None:
                _VIEW.refresh(trials, force=True)

        def __reduce__(self):
            return (new_progress_callback, ())

    return ProgressCallback()


# --- the trainable (runs in a Ray worker) ------------------------------------------------------


def ray_trainable(params: dict[str, Any], trials: dict[str, dict[str, Any]]) -> None:
    """One trial: build the agent from its resolved config, train, report every evaluation with
    a checkpoint; restore from Tune's checkpoint when Ray restarts the trial."""
    from ray import tune

    spec = trials[params["trial_id"]]
    for module, directory in spec["imports"]:
        import_user_module(module, [directory] if directory else [])
    from agent.config import build_config
    from agent.trial import CKPT_NAME, TrialError, TrialInterrupted, run_trial

    out = Path(spec["out_dir"])
    cfg = build_config(spec["config"])
    metric = spec["metric"]
    done = _finished_row(out, cfg)
    if done is not None:  # finished before the sweep was stopped: never rerun
        tune.report(done)
        return
    deadline = spec.get("deadline")
    if deadline is not None and not _can_finish(spec, cfg, deadline):
        return  # not started: stays pending (or interrupted) for the next --resume
    reported: dict[str, int | None] = {"mtime": None}
    stop = (
        None
        if deadline is None
        else deadline_check(deadline, cfg.total_steps, spec.get("min_start_s", MIN_START_S))
    )

    def on_eval(row: dict[str, Any], ckpt_dir: Path) -> None:
        value = row.get(metric, row.get("eval/return"))
        if isinstance(value, float) and not math.isfinite(value):
            raise TrialError(f"non-finite {metric} at env step {row['env_step']}")
        if stop is not None:
            stop(row["env_step"])
        state = ckpt_dir / CKPT_NAME
        mtime = state.stat().st_mtime_ns if state.exists() else None
        checkpoint = None
        if mtime is not None and mtime != reported["mtime"]:  # a new checkpoint was written
            checkpoint = tune.Checkpoint.from_directory(str(ckpt_dir))
            reported["mtime"] = mtime
        tune.report(_numeric(row), checkpoint=checkpoint)

    checkpoint = tune.get_checkpoint()
    try:
        if checkpoint is None:
            run_trial(cfg, out, on_eval=on_eval)
        else:
            with checkpoint.as_directory() as restore_from:
                run_trial(cfg, out, restore_from=restore_from, on_eval=on_eval)
    except TrialInterrupted as err:
        if err.reason == "time limit":
            return  # checkpointed and marked interrupted: a clean end for Tune (no retry)
        _mark_failed(out, cfg, err)
        raise
    except BaseException as err:
        _mark_failed(out, cfg, err)
        raise


def deadline_check(
    deadline: float, total_steps: int, margin_s: float, clock: Any = time.time
) -> Any:
    """An ``on_eval`` step for a wall-time limit: at each evaluation, if the next one (as long
    as the last interval, +20%) would end within ``margin_s`` of ``deadline``, raise
    TrialInterrupted("time limit"); run_trial then checkpoints this evaluation and stops."""
    from agent.trial import TrialInterrupted

    last = {"time": clock()}

    def check(env_step: int) -> None:
        now = clock()
        interval, last["time"] = now - last["time"], now
        if env_step < total_steps and now + 1.2 * interval + margin_s > deadline:
            raise TrialInterrupted("time limit")

    return check


def _can_finish(spec: dict[str, Any], cfg: Any, deadline: float) -> bool:
    """Whether the trial's remaining steps fit before ``deadline`` at the sweep's measured
    time per env step (its own so far, else its config group's, else that of the sweep's
    trials of the same agent on the same env, else the sweep's; a sweep with no measurement
    yet starts it and lets the evaluation-time check stop it)."""
    left = deadline - time.time()
    if left < spec.get("min_start_s", MIN_START_S):
        return False
    out = Path(spec["out_dir"])
    own = seconds_per_step([out])
    done = _status_steps(out)
    remaining = max(cfg.total_steps - done, 0)
    rate = own
    if rate is None:
        root = Path(spec.get("trials_root", out.parent))
        rate = (
            seconds_per_step([Path(p) for p in spec.get("group_dirs", [])])
            or seconds_per_step([Path(p) for p in spec.get("kind_dirs", [])])
            or seconds_per_step([p for p in root.iterdir() if p.is_dir()] if root.is_dir() else [])
        )
    return rate is None or remaining * rate <= left


def _status_steps(out: Path) -> int:
    try:
        return int(read_status(out).get("env_steps") or 0)
    except (ValueError, TypeError):
        return 0


def _numeric(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _finished_row(out: Path, cfg: Any) -> dict[str, Any] | None:
    """The last metrics row of a trial that already finished with this very config (and whose
    files are intact: a damaged one is not finished)."""
    check = check_trial(out)
    status, config = check.status or {}, check.config
    if check.damaged or status.get("state") != "finished" or config != cfg.to_dict():
        return None
    if int(status.get("env_steps") or 0) < cfg.total_steps:
        return None
    rows = last_rows(out / METRICS_FILE)  # one per seed; a seed-batched trial reports the mean
    sums: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            try:
                sums.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                continue
    return {k: sum(v) / len(v) for k, v in sums.items()} if rows else None


def _mark_failed(out: Path, cfg: Any, err: BaseException) -> None:
    """run_trial records its own failures; this covers errors before its loop started."""
    from agent.trial import write_json

    path = out / STATUS_FILE
    status = read_status(out)
    if status.get("state") in ("failed", "finished"):  # finished: Tune stopped it after its
        return  # last evaluation (a scheduler's stop at max_t), which completed it
    if isinstance(err, KeyboardInterrupt | SystemExit):  # stopped, not failed
        if status:
            status.update(state="interrupted", interrupted=type(err).__name__, updated=time.time())
            write_json(path, status)
        return
    scores: dict[str, Any] = {"random": None, "reference": None}
    try:
        from agent.common.envs import get_env

        spec = get_env(cfg.env)
        scores = {"random": spec.random_score, "reference": spec.reference_score}
    except Exception:  # the env itself may be what failed
        pass
    status.update(
        state="failed",
        error=f"{type(err).__name__}: {err}",
        env_steps=int(status.get("env_steps") or 0),
        planned_steps=cfg.total_steps,
        updated=time.time(),
    )
    status.setdefault("env_scores", scores)
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, status)
