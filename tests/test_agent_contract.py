"""The contract every registered agent keeps, checked on the agent's own ``smoke`` config.

Parametrized over ``agent.registry.agents``: an agent registered later is covered without editing
this file, and fails here until its class exports ``smoke`` (dotted overrides for a run of a few
seconds on one CPU thread; see agent/sac.py). For each agent:

1. exact resume: a run stopped (its budget extended, then interrupted at an evaluation) and
   resumed from its checkpoints gives the uninterrupted run's metrics rows exactly;
2. determinism: the same seed gives the same rows; another seed trains differently;
3. init by role: ``initialise()`` gives every parameterised layer of ``networks()`` a role and a
   record, redraws every weight matrix, and leaves other modules (targets) as copies;
4. checkpoint round trip: ``state_dict`` into a fresh agent gives the same parameters, the same
   ``act`` outputs (recurrent state from ``eval_state``) and the same further training;
5. clear errors: an unknown key of a section the agent reads is a ConfigError naming it with a
   suggestion; a non-finite training metric fails the trial (TrialError naming the metric,
   status.json "failed") and keeps the last good checkpoint.

What is compared is exact (==), timings aside: any state a checkpoint misses (an RNG, a
normaliser, a half-filled rollout or replay, an env's time limit, a filtered latent) shows up.
"""

from __future__ import annotations

import difflib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import agent as _agent_package  # noqa: F401  (registers the in-tree agents)
from agent.base import seed_everything
from agent.common.envs import stack_obs
from agent.config import ConfigError, TrialConfig, build_config
from agent.registry import agents
from agent.trial import TrialError, TrialInterrupted, run_trial
from init_schemes import ROLES

NAMES = agents.names()


# --- helpers ---------------------------------------------------------------------------------


def smoke(name: str) -> dict[str, Any]:
    """The agent's smoke config, or a failure saying how to add one."""
    cls = agents.get(name)
    settings = getattr(cls, "smoke", None)
    if not isinstance(settings, dict) or not settings:
        pytest.fail(
            f"agent '{name}' ({cls.__module__}.{cls.__qualname__}) has no smoke config: add a "
            "class attribute right below its `sections`, e.g. `smoke: ClassVar[dict[str, Any]] "
            "= {'env': 'Pendulum-v1', 'total_steps': 300, 'eval_every': 100, "
            f"'{cls.sections[0] if cls.sections else name}.hidden': [32, 32], ...}}` (dotted "
            "overrides; a run of a few seconds on one CPU thread, with at least 3 evaluations "
            "after step 0)",
            pytrace=False,
        )
    return dict(settings)


def config(name: str, overrides: dict[str, Any] | None = None) -> TrialConfig:
    settings = smoke(name)
    return build_config({"seed": 0, **settings, "agent": name, **(overrides or {})})


def make_agent(name: str, overrides: dict[str, Any] | None = None, *, init_seed: int = 0):
    """A fresh agent of the smoke config, initialised after seeding the global RNGs."""
    seed_everything(init_seed)
    a = agents.get(name)(config(name, overrides))
    a.initialise()
    return a


def curve(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every column but timings, row by row."""
    return [{k: v for k, v in r.items() if not _timing(k)} for r in rows]


def _timing(key: str) -> bool:
    return key == "wall_time" or key.startswith("perf/")


def metrics_table(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "metrics.csv")
    return table[[c for c in table.columns if not _timing(c)]]


def status(out: Path) -> dict[str, Any]:
    return json.loads((out / "status.json").read_text())


def train_keys(row: dict[str, Any]) -> set[str]:
    """The columns training wrote (not evaluation, init diagnostics, timings or bookkeeping)."""
    return {
        k
        for k in row
        if not _timing(k) and k not in ("env_step", "seed") and not k.startswith(("eval/", "init/"))
    }


def all_modules(a: Any) -> dict[str, nn.Module]:
    """The agent's module attributes (networks, target copies, ...), by attribute name."""
    return {k: v for k, v in vars(a).items() if isinstance(v, nn.Module)}


def params(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{k}": v.detach().clone()
        for name, m in modules.items()
        for k, v in m.state_dict().items()
    }


def real_observations(a: Any, n: int, steps: int, seed: int) -> list[Any]:
    """``steps`` batches of ``n`` observations from a uniform-random rollout of the agent's env."""
    env = a.env_spec.make()
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    seen = []
    low, high = env.action_space.low, env.action_space.high
    while len(seen) < n * steps:
        seen.append(obs)
        action = low + (high - low) * rng.uniform(0.0, 1.0, size=low.shape)
        obs, _, term, trunc, _ = env.step(action.astype(np.float32))
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return [stack_obs(seen[i * n : (i + 1) * n]) for i in range(steps)]


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """Through bytes, as a checkpoint file does (no object is shared with the source agent)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=NAMES)
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def full_run(name, tmp_path_factory) -> tuple[list[dict[str, Any]], Path]:
    """The smoke config's uninterrupted run: (rows, its directory)."""
    out = tmp_path_factory.mktemp(f"{name}_full")
    return run_trial(config(name), out), out


# --- the smoke config itself -----------------------------------------------------------------


def test_smoke_config_is_a_valid_small_plain_trial(name):
    cfg = config(name)
    assert not cfg.seed_batched, "a smoke config trains one seed"
    assert cfg.total_steps >= 3 * cfg.eval_every, (
        f"{name}.smoke: total_steps must allow 3 evaluations after step 0 (the resume test "
        f"stops at the first and the second); got total_steps={cfg.total_steps}, "
        f"eval_every={cfg.eval_every}"
    )
    assert cfg.checkpoint_every == 1 and cfg.threads == 1


# --- 1. exact resume -------------------------------------------------------------------------


def test_resume_from_checkpoints_continues_the_curve_exactly(name, full_run, tmp_path):
    """Three calls, two restores: a run of one evaluation interval, extended to the full budget
    (a bigger replay loads the smaller one), interrupted at the second evaluation, resumed."""
    rows, full_out = full_run
    cfg = config(name)
    every, total = cfg.eval_every, cfg.total_steps
    out = tmp_path / "trial"

    first = run_trial(config(name, {"total_steps": every}), out)
    assert curve(first) == curve(rows[: len(first)])

    def stop_at_second_eval(row: dict[str, Any], ckpt_dir: Path) -> None:
        if row["env_step"] == 2 * every:
            raise TrialInterrupted("contract test")

    with pytest.raises(TrialInterrupted) as err:
        run_trial(cfg, out, on_eval=stop_at_second_eval)
    assert err.value.env_steps == 2 * every
    stopped = status(out)
    assert stopped["state"] == "interrupted" and stopped["restored_from_step"] == every
    assert (out / "checkpoints" / "state.pt").is_file()

    resumed = run_trial(cfg, out)
    done = status(out)
    assert done["state"] == "finished" and done["env_steps"] == total
    assert done["restored_from_step"] == 2 * every
    assert curve(resumed) == curve(rows)
    pd.testing.assert_frame_equal(metrics_table(out), metrics_table(full_out), check_exact=True)


# --- 2. determinism --------------------------------------------------------------------------


def test_same_seed_gives_the_same_curve_and_another_seed_another(name, full_run, tmp_path):
    rows, _ = full_run
    cfg = config(name)
    evals = [*range(0, cfg.total_steps, cfg.eval_every), cfg.total_steps]
    assert [r["env_step"] for r in rows] == evals
    assert all(math.isfinite(r["eval/return"]) for r in rows)

    again = run_trial(config(name), tmp_path / "again")
    assert curve(again) == curve(rows)

    step = 2 * cfg.eval_every  # the other seed's run stops there (a shorter budget)
    other = run_trial(
        config(name, {"seed": cfg.seed + 1, "total_steps": step}), tmp_path / "other_seed"
    )
    last, other_last = curve(rows)[evals.index(step)], curve(other)[-1]
    shared = train_keys(last) & train_keys(other_last)
    assert shared, f"{name}: train() reported no metric by env step {step}"
    assert [k for k in sorted(shared) if last[k] != other_last[k]], (
        f"{name}: seeds {cfg.seed} and {cfg.seed + 1} trained identically"
    )


# --- 3. every layer initialised by role ------------------------------------------------------


def test_initialise_gives_every_layer_a_role_and_redraws_every_weight(name):
    cls = agents.get(name)
    seed_everything(0)
    a = cls(config(name))
    nets = a.networks()
    assert nets, f"{name}.networks() is empty"
    before = params(nets)
    records = a.initialise()
    by_layer = {r["layer"]: r for r in records}
    assert len(by_layer) == len(records), "a layer is recorded twice"

    expected = set()
    for net_name, net in nets.items():
        for mod_name, mod in net.named_modules():
            own = dict(mod.named_parameters(recurse=False))
            if not own:
                continue
            layer = f"{net_name}.{mod_name}"
            matrices = isinstance(mod, nn.Linear | nn.modules.conv._ConvNd | nn.RNNCellBase) or any(
                p.ndim >= 2 for p in own.values()
            )
            if getattr(mod, "role", None) is None:
                # only vector parameters (e.g. LayerNorm's affine) may keep their defaults
                assert not matrices, f"{layer} ({type(mod).__name__}) has no role"
                continue
            expected.add(layer)
            assert layer in by_layer, f"{layer} ({type(mod).__name__}) is not in the init record"
            assert by_layer[layer]["role"] == mod.role and mod.role in ROLES, layer
            if matrices:
                for pname, p in own.items():
                    if p.ndim >= 2:
                        assert not torch.equal(p, before[f"{layer}.{pname}"]), (
                            f"{layer}.{pname} kept its construction-time values"
                        )
    assert set(by_layer) == expected, f"records of no layer: {sorted(set(by_layer) - expected)}"

    # modules outside networks() (target networks) are copies of a network after after_init
    inside = {id(m) for net in nets.values() for m in net.modules()}
    net_params = {k: params({k: v}) for k, v in nets.items()}
    for attr, module in all_modules(a).items():
        if id(module) in inside or not any(p.ndim >= 2 for p in module.parameters()):
            continue
        state = {k.split(".", 1)[1]: v for k, v in params({attr: module}).items()}
        copies = [
            n
            for n, p in net_params.items()
            if {k.split(".", 1)[1] for k in p} == set(state)
            and all(torch.equal(v, state[k.split(".", 1)[1]]) for k, v in p.items())
        ]
        assert copies, (
            f"{name}: agent.{attr} is outside networks() and no copy of a network "
            "after initialise(): the init spec never reaches it"
        )


# --- 4. checkpoint round trip ----------------------------------------------------------------


def test_state_dict_round_trip_acts_and_trains_identically(name):
    cfg = config(name)
    source = make_agent(name, init_seed=0)
    source.train(cfg.total_steps // 2)  # past learning starts / the first model updates
    state = roundtrip(source.state_dict())
    target = make_agent(name, init_seed=1)  # other initial weights
    nets_before = params(target.networks())
    assert any(not torch.equal(v, params(source.networks())[k]) for k, v in nets_before.items()), (
        "differently seeded agents start with the same weights"
    )
    target.load_state_dict(state)
    target.env_steps = source.env_steps

    want, got = params(all_modules(source)), params(all_modules(target))
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []

    batches = real_observations(source, n=8, steps=5, seed=123)
    s_state, t_state = source.eval_state(8), target.eval_state(8)
    for obs in batches:  # a short episode: recurrent agents carry their state along
        s_act, s_state = source.act(obs, s_state)
        t_act, t_state = target.act(obs, t_state)
        assert s_act.shape == (8, *source.env_spec.make().action_space.shape)
        assert np.array_equal(s_act, t_act)
        assert np.all(np.abs(s_act) <= 1.0)

    until = source.env_steps + cfg.eval_every
    results = []
    for a in (source, target):
        seed_everything(7)
        results.append(curve([a.train(until)])[0])
    assert results[0] == results[1]
    assert train_keys(results[0]), f"{name}.train() reported no metric"


# --- 5. clear errors -------------------------------------------------------------------------


def _typo(fields: list[str]) -> tuple[str, str]:
    """(a misspelt field, the field) such that the field is the closest match."""
    for field in fields:
        typo = field + field[-1]
        if len(field) >= 4 and difflib.get_close_matches(typo, fields, n=1, cutoff=0.5) == [field]:
            return typo, field
    raise AssertionError(f"no field to misspell among {fields}")


def test_an_unknown_key_in_each_section_is_named_with_a_suggestion(name):
    cls = agents.get(name)
    assert cls.sections, f"{name}.sections is empty"
    for section in cls.sections:
        typo, field = _typo(list(agents.get(section).Config.model_fields))
        with pytest.raises(ConfigError) as err:
            config(name, {f"{section}.{typo}": 1})
        assert [k for k, _ in err.value.problems] == [f"{section}.{typo}"]
        assert re.search(
            rf"{section}\.{typo}: unknown key; did you mean '{field}'", str(err.value)
        ), str(err.value)


def test_a_non_finite_metric_fails_the_trial_naming_it(name, tmp_path, monkeypatch):
    cls = agents.get(name)
    train = cls.train
    cfg = config(name)
    poisoned: list[str] = []

    def train_then_poison(self, until):
        metrics = train(self, until)
        if self.env_steps <= cfg.eval_every:
            return metrics
        keys = sorted(k for k, v in metrics.items() if isinstance(v, float) and not _timing(k))
        assert keys, f"{name}.train() returned no float metric"
        key = next((k for k in keys if k.startswith("loss/")), keys[0])
        poisoned.append(key)
        return {**metrics, key: math.nan}

    monkeypatch.setattr(cls, "train", train_then_poison)
    with pytest.raises(TrialError) as err:
        run_trial(cfg, tmp_path)
    key = poisoned[0]
    assert re.search(
        rf"non-finite {re.escape(key)}\b.*at env step {2 * cfg.eval_every}", str(err.value)
    ), str(err.value)
    failed = status(tmp_path)
    assert failed["state"] == "failed" and key in failed["error"]
    kept = torch.load(tmp_path / "checkpoints" / "state.pt", weights_only=False)
    assert kept["env_steps"] == cfg.eval_every  # the last good evaluation's checkpoint
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["env_step"].tolist() == [0, cfg.eval_every]
