"""Write synthetic sweep directories in the documented layout (docs/results_layout.md).

The answer is known by construction: a run's normalised return rises linearly to its group's
``level`` (plus a per-seed offset) by 70% of the budget and stays flat, so the mean of the last
three evaluations - the "final performance" - is exactly ``level + offset``. Raw returns are
``random + norm * (reference - random)`` with the env scores below.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ENV_SCORES = {
    "Pendulum-v1": {"random": -1200.0, "reference": -150.0},
    "Walker2d-v4": {"random": 0.0, "reference": 4000.0},
}
ACTION_DIMS = {"Pendulum-v1": 1, "Walker2d-v4": 6}


def import_rliable_library():
    """``rliable.library`` (the reference bootstrap), importable with pandas 3.

    rliable's bootstrap builds on ``arch``; arch < 8 fails to import with pandas >= 3
    (``pandas.util._decorators.deprecate_kwarg`` gained a leading ``klass`` argument). If that
    happens, arch is imported once more with a shim that supplies the old call signature; the
    shim is removed again right after. With arch >= 8 the plain import works.
    """
    try:
        from rliable import library

        return library
    except TypeError:
        pass
    for name in [m for m in sys.modules if m == "arch" or m.startswith(("arch.", "rliable.l"))]:
        del sys.modules[name]
    import pandas.util._decorators as decorators

    original = decorators.deprecate_kwarg

    def compat(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            return original(FutureWarning, *args, **kwargs)
        return original(*args, **kwargs)

    decorators.deprecate_kwarg = compat
    try:
        from rliable import library
    finally:
        decorators.deprecate_kwarg = original
    return library


def norm_curve(final: float, fractions: np.ndarray) -> np.ndarray:
    """Normalised return at the given fractions of the budget: linear to ``final`` at 70%."""
    return final * np.minimum(1.0, fractions / 0.7)


def write_trial(
    root: Path,
    trial_id: str,
    config: dict[str, Any],
    finals: Mapping[int, float],
    *,
    budget: int,
    n_evals: int,
    state: str = "finished",
    stop_fraction: float = 1.0,
    error: str | None = None,
    diagnostics: Mapping[int, dict[str, Any]] | None = None,
    extra_columns: bool = True,
) -> Path:
    """Write ``trials/<trial_id>/`` with one metrics row per seed in ``finals`` per evaluation."""
    trial_dir = root / "trials" / trial_id
    trial_dir.mkdir(parents=True, exist_ok=True)
    env = config["env"]
    scores = ENV_SCORES[env]
    span = scores["reference"] - scores["random"]
    steps = np.linspace(0, budget, n_evals + 1).round().astype(int)
    steps = steps[steps <= stop_fraction * budget + 1e-9]
    header = [
        "env_step",
        "wall_time",
        "seed",
        "eval/return",
        "eval/return_std",
        "eval/episode_returns",
    ]
    if extra_columns:
        header += ["train/return", "loss/actor", "perf/env_steps_per_s", "init/action_clip_frac"]
    lines = [",".join(header)]
    for i, step in enumerate(steps):
        for seed, final in finals.items():
            ret = scores["random"] + span * norm_curve(final, np.asarray(step / budget))
            row = [str(step), f"{1.5 * i:.2f}", str(seed), f"{float(ret):.6f}", "1.0"]
            row.append('"[' + f"{float(ret):.3f}, {float(ret):.3f}" + ']"')
            if extra_columns:
                clip = "0.1" if step == 0 else ""
                row += [f"{float(ret) - 1:.6f}", "0.5", "1000.0", clip]
            lines.append(",".join(row))
    (trial_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    (trial_dir / "config.json").write_text(json.dumps(config, indent=1))
    status = {
        "state": state,
        "error": error,
        "env_steps": int(steps[-1]),
        "planned_steps": budget,
        "updated": 1_700_000_000.0,
        "env_scores": scores,
    }
    (trial_dir / "status.json").write_text(json.dumps(status))
    if diagnostics is not None:
        (trial_dir / "init_diagnostics.json").write_text(
            json.dumps({str(s): d for s, d in diagnostics.items()})
        )
    return trial_dir


def fake_diagnostics(env: str, scheme: str, scenario: str, seed: int) -> dict[str, Any]:
    """Init diagnostics whose clip fraction grows with the scheme's spread (for plots/tables)."""
    n_dims = ACTION_DIMS[env]
    spread = {"fanin": 0.3, "orthogonal": 0.8, "kaiming": 1.5}.get(scheme, 0.5)
    if scenario == "small_out":
        spread *= 0.1
    edges = np.linspace(-1.0, 1.0, 21)
    centres = (edges[:-1] + edges[1:]) / 2
    dens = np.exp(-0.5 * (centres / spread) ** 2)
    clip = 0.5 * (1 - np.tanh(1.0 / spread))
    dens[0] += clip * dens.sum()
    dens[-1] += clip * dens.sum()
    hist = [list(dens / dens.sum()) for _ in range(n_dims)]
    return {
        "edges": list(edges),
        "hist": hist,
        "coverage": [float(np.mean(dens > 0.02 * dens.max()))] * n_dims,
        "clip_frac": [float(clip + 0.001 * seed)] * n_dims,
        "entropy": float(np.log(spread + 1e-3)),
        "mean_abs_mean": 0.1 * spread,
        "std": spread,
        "critic_scale": None,
    }


def write_sweep(
    root: Path,
    *,
    schemes: Sequence[str] = ("fanin", "orthogonal"),
    scenarios: Sequence[str] = ("small_out", "all"),
    envs: Sequence[str] = ("Pendulum-v1",),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    level: Callable[[str, str, str], float] | None = None,
    offsets: Sequence[float] | None = None,
    budget: int = 10_000,
    n_evals: int = 10,
    failed: Iterable[tuple[str, str, str, int]] = (),
    running: Iterable[tuple[str, str, str, int]] = (),
    pending: Iterable[tuple[str, str, str, int]] = (),
    batched: Iterable[tuple[str, str, str]] = (),
    diagnostics: bool = True,
) -> Path:
    """Write a full grid sweep under ``root``; return ``root``.

    Every (env, scheme, scenario, seed) is its own trial ``<env>-<scheme>-<scenario>-s<seed>``
    except combos in ``batched``, written as one seed-batched trial ``...-batch`` holding all
    seeds. ``failed`` runs stop at 40% with an error; ``running`` runs stop at 60%; ``pending``
    runs are planned in sweep_resolved.json but have no directory. The final normalised score of
    a run is ``level(env, scheme, scenario) + offsets[seed index]``.
    """
    root.mkdir(parents=True, exist_ok=True)
    level = level or (lambda env, scheme, scenario: 0.5)
    offsets = list(offsets) if offsets is not None else list(np.linspace(-0.1, 0.1, len(seeds)))
    failed, running, pending, batched = set(failed), set(running), set(pending), set(batched)
    planned = []
    for env in envs:
        for scheme in schemes:
            for scenario in scenarios:
                base = {
                    "agent": "sac",
                    "env": env,
                    "init": {"scheme": scheme, "scenario": scenario},
                    "sac": {"lr": 3e-4, "hidden": [64, 64]},
                }
                finals = {s: level(env, scheme, scenario) + offsets[i] for i, s in enumerate(seeds)}
                diag = {s: fake_diagnostics(env, scheme, scenario, s) for s in seeds}
                if (env, scheme, scenario) in batched:
                    trial_id = f"{env}-{scheme}-{scenario}-batch"
                    config = {**base, "seed": list(seeds)}
                    planned.append({"trial_id": trial_id, "config": config})
                    write_trial(
                        root,
                        trial_id,
                        config,
                        finals,
                        budget=budget,
                        n_evals=n_evals,
                        diagnostics=diag if diagnostics else None,
                    )
                    continue
                for seed in seeds:
                    trial_id = f"{env}-{scheme}-{scenario}-s{seed}"
                    config = {**base, "seed": seed}
                    planned.append({"trial_id": trial_id, "config": config})
                    key = (env, scheme, scenario, seed)
                    if key in pending:
                        continue
                    kwargs: dict[str, Any] = {}
                    if key in failed:
                        kwargs = {
                            "state": "failed",
                            "stop_fraction": 0.4,
                            "error": "RuntimeError: NaN in actor loss",
                        }
                    elif key in running:
                        kwargs = {"state": "running", "stop_fraction": 0.6}
                    write_trial(
                        root,
                        trial_id,
                        config,
                        {seed: finals[seed]},
                        budget=budget,
                        n_evals=n_evals,
                        diagnostics={seed: diag[seed]} if diagnostics else None,
                        **kwargs,
                    )
    grid = {"env": list(envs), "init.scheme": list(schemes), "init.scenario": list(scenarios)}
    varying = [k for k, v in grid.items() if len(v) > 1] + ["seed"]
    resolved = {
        "name": root.name,
        "budget": {"env_steps": budget},
        "metric": "eval/return",
        "seeds": list(seeds),
        "grid": grid,
        "varying_keys": varying,
        "trials": planned,
    }
    (root / "sweep_resolved.json").write_text(json.dumps(resolved, indent=1))
    (root / "sweep.yaml").write_text(f"name: {root.name}\n")
    return root
