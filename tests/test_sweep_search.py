"""Random search in sweep files (``search:``): expansion, paired seeds, stable draws, resume.

The malformed ``search_*.yaml`` files in tests/malformed/ check the error messages and lines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.runner import _check_same
from sweeps.schema import SWEEPS_DIR, Distribution, load_sweep, parse_distribution

SEARCH = """\
name: tiny_search
base:
  agent: sac
  total_steps: 400
  eval_every: 200
  sac.learning_starts: 100
grid:
  agent: [sac, ppo]
  env: [Pendulum-v1, Walker2d-v5]
seeds: 3
search:
  samples: 5
  draws: {draws}
  space:
    eval_episodes: int(1, 3)
  scoped:
    - when: {{agent: sac}}
      space:
        sac.lr: loguniform(1.0e-4, 3.0e-3)
        sac.hidden: choice([[32, 32], [64, 64]])
    - when: {{agent: sac, env: Walker2d-v5}}
      space:
        sac.lr: loguniform(1.0e-5, 3.0e-4)
    - when: {{agent: ppo}}
      space:
        ppo.ent_coef: uniform(0.0, 0.01)
budgets:
  quick: {{search.samples: 2, grid.env: [Pendulum-v1], seeds: 2}}
"""


def write(tmp_path: Path, draws: str = "shared", text: str = SEARCH) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text.format(draws=draws))
    return path


def flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_samples_per_cell_with_paired_seeds(tmp_path):
    sweep = load_sweep(write(tmp_path))
    # 2 agents x 2 envs x 5 draws x 3 seeds
    assert len(sweep.trials) == 60
    assert len({t.group for t in sweep.trials}) == 20
    assert sweep.varying_keys == ["agent", "env"]  # the cells; draws are not report groups
    by_group: dict[str, list] = {}
    for t in sweep.trials:
        by_group.setdefault(t.group, []).append(t)
    for members in by_group.values():
        assert [m.seed for m in members] == [0, 1, 2]
        configs = [{k: v for k, v in flat(m.config).items() if k != "seed"} for m in members]
        assert all(c == configs[0] for c in configs)  # every seed trains the same draw
        assert len({m.draw for m in members}) == 1
        assert members[0].trial_id.endswith(f"_r{members[0].draw}_s0")
    # draws differ between configurations of a cell
    sac_pendulum = [
        flat(ms[0].config)
        for ms in by_group.values()
        if ms[0].values["agent"] == "sac" and ms[0].values["env"] == "Pendulum-v1"
    ]
    assert len({c["sac.lr"] for c in sac_pendulum}) == 5


def test_scoped_spaces_per_agent_and_values_in_range(tmp_path):
    sweep = load_sweep(write(tmp_path))
    for t in sweep.trials:
        c = flat(t.config)
        assert 1 <= c["eval_episodes"] <= 3 and isinstance(c["eval_episodes"], int)
        if c["agent"] == "sac":
            low, high = (1e-5, 3e-4) if c["env"] == "Walker2d-v5" else (1e-4, 3e-3)
            assert low <= c["sac.lr"] <= high  # the later scoped entry wins for Walker2d
            assert c["sac.hidden"] in ([32, 32], [64, 64])
            assert set(t.values) >= {"sac.lr", "sac.hidden", "eval_episodes"}
        else:  # ppo trials keep sac's defaults and search their own knob
            assert 0.0 <= c["ppo.ent_coef"] <= 0.01
            assert "sac.lr" not in t.values
    assert set(sweep.search_keys) == {"eval_episodes", "sac.lr", "sac.hidden", "ppo.ent_coef"}


def test_shared_draws_match_across_envs_and_per_cell_draws_do_not(tmp_path):
    def draws(sweep, agent, key):
        out = {}
        for t in sweep.trials:
            c = flat(t.config)
            if c["agent"] == agent and t.seed == 0:
                out.setdefault(c["env"], []).append(c[key])
        return out

    shared = load_sweep(write(tmp_path))
    eps = draws(shared, "ppo", "ppo.ent_coef")
    assert eps["Pendulum-v1"] == eps["Walker2d-v5"]  # draw r is one setting in every env
    # different bounds: the same quantile of each env's log-uniform
    lr = draws(shared, "sac", "sac.lr")
    for a, b in zip(lr["Pendulum-v1"], lr["Walker2d-v5"]):
        qa = math.log(a / 1e-4) / math.log(3e-3 / 1e-4)
        qb = math.log(b / 1e-5) / math.log(3e-4 / 1e-5)
        assert qa == pytest.approx(qb, abs=1e-3)
    per_cell = load_sweep(write(tmp_path, draws="per_cell"))
    eps = draws(per_cell, "ppo", "ppo.ent_coef")
    assert eps["Pendulum-v1"] != eps["Walker2d-v5"]


def test_draws_are_stable_and_a_budget_runs_a_prefix(tmp_path):
    path = write(tmp_path)
    a, b = load_sweep(path), load_sweep(path)
    assert a.resolved() == b.resolved()
    quick = load_sweep(path, "quick")
    assert len(quick.trials) == 2 * 2 * 2  # agents x draws x seeds, Pendulum-v1 only
    full = {
        (flat(t.config)["agent"], t.draw, t.seed): t.config
        for t in a.trials
        if t.config["env"] == "Pendulum-v1"
    }
    for t in quick.trials:
        assert t.config == full[(t.config["agent"], t.draw, t.seed)]
    # another seed of the search draws other values
    reseeded_path = tmp_path / "reseeded.yaml"
    reseeded_path.write_text(path.read_text().replace("samples: 5\n", "samples: 5\n  seed: 7\n"))
    reseeded = load_sweep(reseeded_path)
    assert [t.config for t in reseeded.trials] != [t.config for t in a.trials]


def test_resolved_records_the_search_and_resume_sees_the_same_trials(tmp_path):
    path = write(tmp_path)
    sweep = load_sweep(path, "quick")
    resolved = sweep.resolved()
    assert resolved["search"]["samples"] == 2 and resolved["search"]["draws"] == "shared"
    assert resolved["search"]["distributions"]["sac.lr"] == ["loguniform(0.0001, 0.003)"]
    assert [t["draw"] for t in resolved["trials"]] == [t.draw for t in sweep.trials]
    searched = {t["trial_id"]: set(t["searched"]) for t in resolved["trials"]}
    for t in sweep.trials:
        own = {"sac.lr", "sac.hidden"} if t.config["agent"] == "sac" else {"ppo.ent_coef"}
        assert searched[t.trial_id] == own | {"eval_episodes"}
    storage = tmp_path / "run"
    storage.mkdir()
    (storage / "sweep_resolved.json").write_text(json.dumps(resolved))
    _check_same(load_sweep(path, "quick"), storage)  # a resume expands to the same trials
    with pytest.raises(Exception, match="different expansion"):
        _check_same(load_sweep(path), storage)


def test_status_groups_runs_by_configuration(tmp_path):
    from sweeps.status import _labels

    resolved = load_sweep(write(tmp_path), "quick").resolved()
    labels = _labels(resolved)
    # one label per configuration (its seeds share it), not one per agent
    assert len(set(labels.values())) == 4
    assert labels["t000_sac_r0_s0"] == labels["t000_sac_r0_s1"] == "sac r0"


def test_a_sweep_without_search_expands_as_before():
    sweep = load_sweep(SWEEPS_DIR / "model_based.yaml", "quick")
    resolved = sweep.resolved()
    assert "search" not in resolved
    assert all("draw" not in t for t in resolved["trials"])
    assert all(t.draw is None for t in sweep.trials) and sweep.search_keys == []
    assert sweep.trials[0].trial_id == "t000_sac_s0"


def test_dry_run_lists_the_draws(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path)
    assert main(["run", str(path), "--budget", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:2] == ["trial_id", "agent"] and "sac.lr" in header and "ppo.ent_coef" in header
    sweep = load_sweep(path, "quick")
    for t in sweep.trials:
        row = next(line for line in out.splitlines() if line.startswith(t.trial_id + " "))
        if t.config["agent"] == "sac":
            assert str(t.config["sac"]["lr"]) in row.split()
    assert "8 trials (4 configs x 2 seeds)" in out


def test_shipped_tuning_cost_searches_every_family():
    sweep = load_sweep(SWEEPS_DIR / "tuning_cost.yaml", "quick")
    agents = {t.config["agent"] for t in sweep.trials}
    assert agents == {"sac", "ppo", "mb_ppo", "mb_sac", "dreamer"}
    for agent in agents:
        trials = [t for t in sweep.trials if t.config["agent"] == agent]
        assert len({t.group for t in trials}) == 4 and len(trials) == 8
        knobs = {k for t in trials for k in t.values if k != "agent"}
        assert any(k.startswith(agent + ".") for k in knobs), agent
    mb_ppo = {k for t in sweep.trials if t.config["agent"] == "mb_ppo" for k in t.values}
    assert {
        "mb_ppo.num_sequences",
        "mb_ppo.sequence_length",
        "mb_ppo.minibatch_size",
        "mb_ppo.updates_per_iteration",
        "mb_ppo.imagine_horizon",
        "world_model.deter",
    } <= mb_ppo


@pytest.mark.parametrize(
    "text,kind,args",
    [
        ("loguniform(1e-4, 3e-3)", "loguniform", (1e-4, 3e-3)),
        (" uniform( -2, 0.5 ) ", "uniform", (-2.0, 0.5)),
        ("int(1, 10)", "int", (1, 10)),
        ("choice([relu, elu])", "choice", (("relu", "elu"),)),
        ("choice([[64, 64], [256, 256]])", "choice", (([64, 64], [256, 256]),)),
    ],
)
def test_parse_distribution(text, kind, args):
    assert parse_distribution(text) == Distribution(kind, args)


def test_draws_cover_the_range():
    import random

    d = parse_distribution("int(1, 3)")
    values = {d.draw(random.Random(f"x{i}")) for i in range(200)}
    assert values == {1, 2, 3}  # inclusive bounds
    lu = parse_distribution("loguniform(1e-4, 1e-2)")
    xs = [lu.draw(random.Random(f"y{i}")) for i in range(400)]
    assert min(xs) >= 1e-4 and max(xs) <= 1e-2
    below = sum(x < 1e-3 for x in xs) / len(xs)  # half the draws below the log-midpoint
    assert 0.4 < below < 0.6
