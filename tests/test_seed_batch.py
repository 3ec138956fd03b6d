"""Seed-batched trials: K seeds of one config trained as one stacked model.

What must hold: each seed's initial weights and random streams are those of a plain run of that
seed, nothing couples the seeds (each seed's curve is the plain run's, up to the float32 rounding
of a batched matmul instead of a plain one), results stay per seed, and a resumed batched trial
continues exactly.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from agent import build_config, run_trial
from agent.base import seed_everything
from agent.common.networks import GaussianActor
from agent.common.seed_batch import SeedRNG, get_batched, load_member, seed_stack
from agent.config import ConfigError
from agent.sac import SAC, SeedBatchedSAC
from analysis.load import load_sweep as load_results
from sweeps.cli import main
from sweeps.schema import SweepError, load_sweep

SMALL = {
    "agent": "sac",
    "env": "Pendulum-v1",
    "eval_every": 100,
    "eval_episodes": 2,
    "diag_states": 50,
    "sac.hidden": [32, 32],
    "sac.batch_size": 32,
    "sac.learning_starts": 100,
}


def config(**extra):
    return build_config({**SMALL, "total_steps": 400, **extra})


def numeric(rows: list[dict]) -> pd.DataFrame:
    """The rows' metrics, timings and JSON columns left out, indexed by (seed, env_step)."""
    df = pd.DataFrame(rows)
    keep = [
        c
        for c in df.columns
        if c not in ("wall_time", "eval/episode_returns") and not c.startswith("perf/")
    ]
    return df[keep].set_index(["seed", "env_step"]).sort_index()


def assert_same_curve(batched: pd.DataFrame, plain: pd.DataFrame) -> None:
    """Equal columns and rows; values equal up to float32 rounding (the batched matmuls sum in
    another order than the plain ones, so bits differ; a different random stream, a shared
    parameter or a wrong init would differ at the first update, by far more)."""
    assert list(batched.columns) == list(plain.columns)
    assert list(batched.index) == list(plain.index)
    assert np.allclose(
        batched.to_numpy(float), plain.to_numpy(float), rtol=1e-4, atol=1e-5, equal_nan=True
    )


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"sac.layer_norm": True, "sac.alpha": 0.2, "sac.warmup": "uniform"},
        {"sac.actor_step": "after_critic"},
    ],
    ids=["default", "ln_fixed", "after_critic"],
)
def test_k1_batched_path_gives_the_plain_curve(extra, tmp_path):
    plain = run_trial(config(seed=3, **extra), tmp_path / "plain")
    batched = run_trial(config(seeds=[3], **extra), tmp_path / "batched")
    assert json.loads((tmp_path / "batched" / "config.json").read_text())["seeds"] == [3]
    assert_same_curve(numeric(batched), numeric(plain))
    # the init diagnostics sample the same actions: same RNG stream, same initial weights
    diag = [
        json.loads((tmp_path / d / "init_diagnostics.json").read_text())["3"]
        for d in ("plain", "batched")
    ]
    assert diag[0]["hist"] == diag[1]["hist"] and diag[0]["entropy"] == diag[1]["entropy"]


@pytest.mark.parametrize("layer_norm", [False, True])
def test_each_seeds_initial_weights_and_stream_equal_a_plain_runs(layer_norm):
    seeds = [0, 1, 2, 7, 11]  # K=5, not contiguous
    extra = {
        "init.scheme": "orthogonal",
        "init.scenario": "small_std",
        "sac.layer_norm": layer_norm,
    }
    batched = SeedBatchedSAC(config(seeds=seeds, **extra))
    records = batched.initialise()
    assert batched.actor.trunk[0].weight.shape == (5, 32, 3)
    assert batched.critic[0].weight.shape == (10, 32, 4)  # twin Q: seed-major [K * 2]
    for k, seed in enumerate(seeds):
        plain = SAC(config(seed=seed, **extra))
        seed_everything(seed)
        plain_records = plain.initialise()
        stream = torch.get_rng_state()
        member = batched.member_state_dict(k)
        for name, net in plain.networks().items():
            want = dict(net.named_parameters())
            assert set(member[name]) == set(want)
            for pname, value in member[name].items():
                assert torch.equal(value, want[pname]), (seed, name, pname)
        mine = [{k: v for k, v in r.items() if k != "seed"} for r in records if r["seed"] == seed]
        assert mine == plain_records
        assert torch.equal(batched.rng.gens[k].get_state(), stream)
    # the target critic starts equal to the critic; seeds differ from each other
    assert all(torch.equal(a, b) for a, b in zip(batched.critic_params, batched.target_params))
    w = batched.actor.trunk[0].weight
    assert not torch.equal(w[0], w[1])


def test_seeds_are_independent_and_rows_are_per_seed(tmp_path):
    rows = run_trial(config(seed=4, seeds_per_trial=3), tmp_path / "batched")
    table = pd.read_csv(tmp_path / "batched" / "metrics.csv")
    assert len(table) == 3 * 5 and sorted(set(table["seed"])) == [4, 5, 6]
    assert table.groupby("seed")["env_step"].apply(list).tolist() == [[0, 100, 200, 300, 400]] * 3
    trained = table[table["env_step"] > 0]
    assert trained["perf/batch_env_steps_per_s"].notna().all()
    step0 = table[table["env_step"] == 0]
    assert step0["init/action_coverage"].notna().all()
    diag = json.loads((tmp_path / "batched" / "init_diagnostics.json").read_text())
    assert sorted(diag) == ["4", "5", "6"]
    record = json.loads((tmp_path / "batched" / "init_record.json").read_text())
    assert {r["seed"] for r in record} == {4, 5, 6}
    # every seed's curve is its plain run's: nothing is shared between the seeds
    batched = numeric(rows)
    for seed in (4, 5, 6):
        plain = numeric(run_trial(config(seed=seed), tmp_path / f"plain{seed}"))
        assert_same_curve(batched.loc[[seed]], plain)
    assert batched.loc[4, "eval/return"].iloc[-1] != batched.loc[5, "eval/return"].iloc[-1]


def test_resume_of_a_batched_trial_continues_the_curve_exactly(tmp_path):
    full = run_trial(config(seeds=[2, 9], total_steps=600), tmp_path / "full")
    first = run_trial(config(seeds=[2, 9], total_steps=300), tmp_path / "resumed")
    resumed = run_trial(config(seeds=[2, 9], total_steps=600), tmp_path / "resumed")
    status = json.loads((tmp_path / "resumed" / "status.json").read_text())
    assert status["restored_from_step"] == 300 and status["restores"] == 1
    assert len(first) == 2 * 4 and len(resumed) == 2 * 7
    assert numeric(resumed).equals(numeric(full))  # exact: same code path, same state


def test_analysis_reads_a_batched_trial_as_one_run_per_seed(tmp_path):
    sweep = tmp_path / "sweep"
    trial = sweep / "trials" / "t000_s0-2"
    cfg = config(seeds=[0, 1, 2], total_steps=200)
    run_trial(cfg, trial)
    (sweep / "sweep_resolved.json").write_text(
        json.dumps(
            {
                "name": "b",
                "seeds": [0, 1, 2],
                "grid": {},
                "varying_keys": [],
                "trials": [{"trial_id": "t000_s0-2", "config": cfg.to_dict()}],
            }
        )
    )
    df = load_results(sweep)
    assert df.groupby(["trial_id", "seed"]).size().to_dict() == {
        ("t000_s0-2", 0): 3,
        ("t000_s0-2", 1): 3,
        ("t000_s0-2", 2): 3,
    }


def test_stacked_layers_keep_members_apart():
    torch.manual_seed(0)
    plain = [SAC(config(seed=s)).critic for s in range(3)]
    stacked = seed_stack(plain[0], 3)
    for k, member in enumerate(plain):
        load_member(stacked, k, member)
    x = torch.randn(3, 5, 4)
    twin = x.unsqueeze(1).expand(3, 2, 5, 4).reshape(6, 5, 4)
    out = stacked(twin).view(3, 2, 5)
    for k, member in enumerate(plain):
        want = member(x[k].expand(2, 5, 4)).squeeze(-1)
        assert torch.allclose(out[k], want, atol=1e-6)
    rng = SeedRNG(2)
    torch.manual_seed(5)
    rng.capture(0)
    torch.manual_seed(6)
    rng.capture(1)
    noise = rng.randn_like(torch.zeros(2, 4, 3))
    torch.manual_seed(6)
    assert torch.equal(noise[1], torch.randn(4, 3))
    with pytest.raises(ValueError, match="cannot stack a LogStd layer"):
        seed_stack(GaussianActor(3, 1, [8]), 2)  # a shared free vector would couple the seeds


def test_config_and_agent_support_errors():
    cfg = build_config({"seed": 3, "seeds_per_trial": 4})
    assert cfg.seed_batched and cfg.run_seeds() == [3, 4, 5, 6]
    assert build_config({"seeds": [5, 1]}).seed == 5
    assert not build_config({"seed": 2}).seed_batched
    with pytest.raises(ConfigError, match="seeds_per_trial=3 but seeds lists 2"):
        build_config({"seeds_per_trial": 3, "seeds": [0, 1]})
    with pytest.raises(ConfigError, match="seed=1 must be the first of seeds"):
        build_config({"seed": 1, "seeds": [0, 1]})
    with pytest.raises(
        ConfigError,
        match=r"seeds_per_trial: agent 'ppo' cannot train seeds "
        r"together.*agents that can: sac",
    ):
        build_config({"agent": "ppo", "seeds_per_trial": 2})
    with pytest.raises(Exception, match="agent 'ppo' cannot train seeds together"):
        get_batched("ppo")


SWEEP = """name: sb
base: {agent: sac, total_steps: 200, eval_every: 100, sac.hidden: [16]}
grid: {init.scheme: [fanin, orthogonal]}
seeds: 5
"""


def write(tmp_path, text: str, name: str = "sb.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sweep_seeds_per_trial_replaces_single_seed_trials(tmp_path, capsys):
    plain = load_sweep(write(tmp_path, SWEEP))
    assert len(plain.trials) == 10 and all("seeds" not in t.config for t in plain.trials)
    vec = load_sweep(
        write(
            tmp_path,
            SWEEP + "budgets: {two: {seeds: [3, 8]}}\n"
            "overrides:\n  - when: {init.scheme: fanin}\n"
            "    set: {seeds_per_trial: vectorized}\n",
        )
    )
    fanin = [t for t in vec.trials if t.config["init"]["scheme"] == "fanin"]
    assert [
        (t.trial_id, t.seeds, t.config["seeds"], t.config["seeds_per_trial"]) for t in fanin
    ] == [("t000_fanin_s0-4", [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], 5)]
    assert [t.seed for t in vec.trials if t.group == "t001"] == [0, 1, 2, 3, 4]  # plain
    two = load_sweep(vec.file, "two")
    assert [t.trial_id for t in two.trials][:1] == ["t000_fanin_s3+8"]
    chunks = load_sweep(
        write(
            tmp_path, SWEEP.replace("sac.hidden", "seeds_per_trial: 2, sac.hidden"), "chunks.yaml"
        )
    )
    assert [t.seeds for t in chunks.trials if t.group == "t000"] == [[0, 1], [2, 3], [4]]
    assert "seeds" not in chunks.trials[2].config  # a chunk of one seed is a plain trial
    assert build_config(chunks.trials[0].config).run_seeds() == [0, 1]
    assert main(["run", str(vec.file), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[:3] == ["t000_fanin_s0-4", "fanin", "0-4"]


def test_sweep_rejects_bad_seeds_per_trial(tmp_path):
    with pytest.raises(
        SweepError,
        match=r"sb.yaml:2: base.seeds_per_trial: must be a positive "
        r"number.*'vectorized'.*got 'all'",
    ):
        load_sweep(write(tmp_path, SWEEP.replace("sac.hidden", "seeds_per_trial: all, sac.hidden")))
    with pytest.raises(SweepError, match=r"base.seeds: set seeds with the top-level `seeds`"):
        load_sweep(write(tmp_path, SWEEP.replace("sac.hidden", "seeds: [1, 2], sac.hidden")))
    with pytest.raises(SweepError, match="agent 'ppo' cannot train seeds together"):
        load_sweep(
            write(
                tmp_path,
                SWEEP.replace("agent: sac", "agent: ppo, seeds_per_trial: 5").replace(
                    ", sac.hidden: [16]", ""
                ),
            )
        )


@pytest.mark.slow
def test_batched_sac_learns_pendulum_on_every_seed(tmp_path):
    """Random play scores about -1200; each of 3 seeds trained together passes -500."""
    cfg = build_config(
        {
            "agent": "sac",
            "env": "Pendulum-v1",
            "seed": 0,
            "seeds_per_trial": 3,
            "total_steps": 5000,
            "eval_every": 2500,
            "eval_episodes": 5,
            "sac.lr": 1e-3,
            "sac.hidden": [64, 64],
            "sac.batch_size": 128,
        }
    )
    table = numeric(run_trial(cfg, tmp_path))
    first = table.xs(0, level="env_step")["eval/return"]
    last = table.xs(5000, level="env_step")["eval/return"]
    assert (first < -700).all(), first.tolist()
    assert (last >= -500).all() and math.isfinite(last.mean()), last.tolist()
