"""One trial: build the agent, initialise it from the init spec, train, evaluate, checkpoint.

``run_trial`` is what both ``sweep train`` and the Ray trainable call. It writes the result files
of docs/results_layout.md into ``out_dir`` and never imports Ray: the sweep runner passes an
``on_eval`` callback (to report to Tune) and a checkpoint directory to restore from.

A seed-batched trial (``seeds_per_trial > 1``, see agent/common/seed_batch.py) trains its K seeds
as one model and writes what K plain trials would: K metrics rows per evaluation told apart by
``seed``, one init-diagnostics entry per seed, one init record per seed and layer; one checkpoint
holds all K.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.base import Agent, rng_state, seed_everything, set_rng_state
from agent.common.allocator import keep_freed_memory
from agent.common.envs import EnvSpec, scale_action
from agent.common.evaluation import evaluate
from agent.common.seed_batch import evaluate_seeds, get_batched
from agent.config import TrialConfig
from agent.registry import agents
from init_schemes import action_diagnostics

CKPT_NAME = "state.pt"


class TrialError(RuntimeError):
    """A trial that cannot go on (NaN loss, crashed env, bad checkpoint)."""


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the tidy metrics table atomically (the union of all rows' columns)."""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def init_diagnostics(agent: Agent, n_states: int, seed: int) -> dict[str, Any]:
    """States from a random-policy rollout of the real env -> the initial policy's action stats."""
    return _probe_summary(agent.init_probe(_diag_states(agent.env_spec, n_states, seed)))


def init_diagnostics_seeds(agent: Any, n_states: int, seeds: list[int]) -> dict[str, Any]:
    """``init_diagnostics`` of every seed of a seed-batched agent: {str(seed): diag}."""
    states = np.stack([_diag_states(agent.env_spec, n_states, s) for s in seeds])
    probes = agent.init_probe_seeds(states)
    return {str(s): _probe_summary(p) for s, p in zip(seeds, probes)}


def _diag_states(env_spec: EnvSpec, n_states: int, seed: int) -> np.ndarray:
    """[n_states, obs_dim] from a uniform-random-action rollout seeded by ``seed``."""
    env = env_spec.make()
    obs, _ = env.reset(seed=seed + 7919)
    rng = np.random.default_rng(seed + 7919)
    low, high = env.action_space.low, env.action_space.high
    states = []
    while len(states) < n_states:
        states.append(obs)
        a = rng.uniform(-1.0, 1.0, size=low.shape)
        obs, _, term, trunc, _ = env.step(scale_action(a, low, high))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return np.stack(states)


def _probe_summary(probe: dict[str, Any]) -> dict[str, Any]:
    diag = action_diagnostics(probe["actions"])
    for key in ("entropy", "mean_abs_mean", "std", "critic_scale"):
        diag[key] = probe.get(key)
    return diag


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

    Restores from ``restore_from/state.pt`` (or ``out_dir/checkpoints/state.pt`` if present and
    ``restore_from`` is None) so a restarted trial continues instead of starting over.
    """
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    keep_freed_memory()  # no page faults on every update's activations (glibc)
    write_json(out / "config.json", cfg.to_dict())
    seeds = cfg.run_seeds()
    agent: Agent = (get_batched(cfg.agent) if cfg.seed_batched else agents.get(cfg.agent))(cfg)
    status = {
        "state": "running", "error": None, "env_steps": 0, "planned_steps": cfg.total_steps,
        "env_scores": {"random": agent.env_spec.random_score,
                       "reference": agent.env_spec.reference_score},
        "restored_from_step": None, "restores": 0,
    }
    source = Path(restore_from) / CKPT_NAME if restore_from else ckpt_dir / CKPT_NAME
    if source.exists():
        state = torch.load(source, weights_only=False)
        agent.load_state_dict(state["agent"])
        agent.env_steps = state["env_steps"]
        set_rng_state(state["rng"])
        rows, wall0 = state["rows"], state["wall_time"]
        prev = _read_status(out)
        status["restores"] = prev.get("restores", 0) + 1
        status["restored_from_step"] = agent.env_steps
    else:
        if not cfg.seed_batched:
            seed_everything(cfg.seed)
        record = agent.initialise()  # a seed-batched agent seeds each of its seeds itself
        write_json(out / "init_record.json", record)
        rows = [{"env_step": 0, "wall_time": 0.0, "seed": s} for s in seeds]
        if cfg.diag_states:
            if cfg.seed_batched:
                diags = init_diagnostics_seeds(agent, cfg.diag_states, seeds)
            else:
                diags = {str(cfg.seed): init_diagnostics(agent, cfg.diag_states, cfg.seed)}
            write_json(out / "init_diagnostics.json", diags)
            for row in rows:
                row.update(diag_metrics(diags[str(row["seed"])]))
        for row, metrics in zip(rows, _eval_metrics(agent, cfg)):
            row.update(metrics)
        wall0 = 0.0
        write_metrics(out / "metrics.csv", rows)
    start = time.perf_counter() - wall0
    bar = _progress(cfg, agent.env_steps) if progress else None
    try:
        evals_done = len({r["env_step"] for r in rows}) - 1
        while agent.env_steps < cfg.total_steps:
            target = min(cfg.total_steps, (agent.env_steps // cfg.eval_every + 1) * cfg.eval_every)
            before, t0 = agent.env_steps, time.perf_counter()
            train_metrics = agent.train(target)  # a list, one per seed, if seed-batched
            per_seed = train_metrics if isinstance(train_metrics, list) else [train_metrics]
            for metrics in per_seed:
                _check_finite(metrics, agent.env_steps)
            sps = (agent.env_steps - before) / max(time.perf_counter() - t0, 1e-9)
            wall = time.perf_counter() - start
            new = [{"env_step": agent.env_steps, "wall_time": wall, "seed": s, **metrics,
                    "perf/env_steps_per_s": sps} for s, metrics in zip(seeds, per_seed)]
            for row, metrics in zip(new, _eval_metrics(agent, cfg)):
                if cfg.seed_batched:  # the trial's env steps per second, summed over its seeds
                    row["perf/batch_env_steps_per_s"] = sps * len(seeds)
                row.update(metrics)
            rows += new
            row = new[0] if len(new) == 1 else _mean_row(new)
            evals_done += 1
            write_metrics(out / "metrics.csv", rows)
            done = agent.env_steps >= cfg.total_steps
            if cfg.checkpoint_every and (evals_done % cfg.checkpoint_every == 0 or done):
                _save(agent, rows, row["wall_time"], ckpt_dir)
            status.update(env_steps=agent.env_steps, updated=time.time())
            if done:
                status["state"] = "finished"
            write_json(out / "status.json", status)
            if on_eval is not None:
                on_eval(row, ckpt_dir)
            if bar is not None:
                bar.set_postfix_str(f"eval {row['eval/return']:.1f}, {sps:.0f} steps/s")
                bar.update(agent.env_steps - before)
    except BaseException as err:
        status.update(state="failed", error=f"{type(err).__name__}: {err}", updated=time.time())
        write_json(out / "status.json", status)
        raise
    finally:
        if bar is not None:
            bar.close()
    status.update(state="finished", env_steps=agent.env_steps, updated=time.time())
    write_json(out / "status.json", status)
    return rows


def _read_status(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _eval_metrics(agent: Agent, cfg: TrialConfig) -> list[dict[str, Any]]:
    """One dict of eval metrics per seed of the trial (one for a plain trial)."""
    if cfg.seed_batched:
        per_seed = list(evaluate_seeds(agent, cfg.eval_episodes, cfg.run_seeds()))
    else:
        per_seed = [evaluate(agent, cfg.eval_episodes, seed=10_000 + 1000 * cfg.seed)]
    return [{
        "eval/return": float(returns.mean()),
        "eval/return_std": float(returns.std()),
        "eval/episode_returns": json.dumps([round(float(r), 3) for r in returns]),
    } for returns in per_seed]


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean over a seed-batched trial's rows of one evaluation (what progress reports)."""
    out: dict[str, Any] = {"env_step": rows[0]["env_step"]}
    for key in rows[0]:
        values = [r.get(key) for r in rows]
        if key not in out and key != "seed" and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = float(np.mean(values))
    return out


def _check_finite(metrics: dict[str, float], step: int) -> None:
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrialError(f"non-finite {', '.join(bad)} at env step {step}; the last good "
                         "checkpoint is kept")


def _save(agent: Agent, rows: list, wall: float, ckpt_dir: Path) -> None:
    state = {"agent": agent.state_dict(), "env_steps": agent.env_steps, "rng": rng_state(),
             "rows": rows, "wall_time": wall}
    tmp = ckpt_dir / (CKPT_NAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, ckpt_dir / CKPT_NAME)


def _progress(cfg: TrialConfig, initial: int):
    from tqdm import tqdm

    return tqdm(total=cfg.total_steps, initial=initial, unit="step", dynamic_ncols=True,
                desc=f"{cfg.agent} {cfg.env} seed" + (
                    f"s {','.join(map(str, cfg.run_seeds()))}" if cfg.seed_batched
                    else f" {cfg.seed}"))


def clear_checkpoints(out_dir: Path) -> None:
    shutil.rmtree(Path(out_dir) / "checkpoints", ignore_errors=True)
