"""Sweep files: schema, expansion into trials, and the errors of malformed files (no Ray)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sweeps.cli import main
from sweeps.schema import SWEEPS_DIR, SweepError, find_sweep_file, load_sweep
from sweeps.status import format_status

MALFORMED = sorted((Path(__file__).parent / "malformed").glob("*.yaml"))
SHIPPED = sorted(SWEEPS_DIR.glob("*.yaml"))

TINY = """\
name: tiny
base:
  agent: sac
  total_steps: 400
  eval_every: 200
  eval_episodes: 1
  diag_states: 50
  sac.learning_starts: 100
  sac.batch_size: 64
  sac.hidden: [32, 32]
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def expectation(path: Path) -> tuple[str, int | None]:
    text = path.read_text()
    expect = re.search(r"^# expect: (.*)$", text, re.M)
    line = re.search(r"^# line: (\d+)$", text, re.M)
    assert expect, f"{path.name} needs a '# expect: <message>' header"
    return expect.group(1), int(line.group(1)) if line else None


def test_enough_malformed_fixtures():
    assert len(MALFORMED) >= 15


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_file_gives_its_own_message_and_exit_2(path, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expect, line = expectation(path)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert expect in err, err
    where = f"{path}:{line}:" if line else f"{path}:"
    assert where in err, err
    # run refuses the same way and writes nothing
    assert main(["run", str(path), "--storage", str(tmp_path / "out")]) == 2
    assert expect in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    path = write(
        tmp_path,
        "name: many\nbase:\n  sac.lrr: 1\n  agent: sac\ngrid:\n"
        "  init.scheme: [fanin, orthogonl]\n  env: [Pendulm-v1]\n",
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3, err
    assert any(":3: base.sac.lrr: unknown key" in e for e in err)
    assert any(":6: grid.init.scheme[1]: unknown init scheme 'orthogonl'" in e for e in err)
    assert any(":7: grid.env[0]: unknown environment 'Pendulm-v1'" in e for e in err)


def test_missing_file_and_unknown_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "no_such_sweep.yaml"]) == 2
    err = capsys.readouterr().err
    assert "no_such_sweep.yaml: no such sweep file" in err and "init_ablation.yaml" in err
    assert main(["validate", "./nope/x.yaml"]) == 2
    assert "no such sweep file" in capsys.readouterr().err
    assert main(["run", "init_ablation.yaml", "--budget", "quik", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown budget 'quik'; did you mean 'quick'?" in err and "Traceback" not in err


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_sweeps_validate_with_every_budget(path):
    sweep = load_sweep(path.name, check_budgets=True)
    assert sweep.trials
    ids = [t.trial_id for t in sweep.trials]
    assert len(set(ids)) == len(ids)


def test_init_ablation_design():
    full = load_sweep("init_ablation.yaml", "full")
    assert len(full.trials) == 3 * 5 * 2 * 5
    assert full.varying_keys == ["init.scheme", "init.scenario", "env"]
    walker = [t.config for t in full.trials if t.config["env"] == "Walker2d-v5"]
    pendulum = [t.config for t in full.trials if t.config["env"] == "Pendulum-v1"]
    assert {c["sac"]["lr"] for c in walker} == {3e-4} and {c["total_steps"] for c in walker} == {
        100_000
    }
    assert {c["sac"]["lr"] for c in pendulum} == {1e-3} and {
        c["total_steps"] for c in pendulum
    } == {10_000}
    quick = load_sweep("init_ablation", "quick")
    assert len(quick.trials) == 3 * 5 * 2
    assert {t.config["env"] for t in quick.trials} == {"Pendulum-v1"}
    assert {t.config["total_steps"] for t in quick.trials} == {4000}
    assert {t.seed for t in quick.trials} == {0, 1}
    # the 15-minute promise of the quick budget: 90k env steps on 2 cores at >= 80 steps/s each
    assert sum(t.total_steps for t in quick.trials) / (2 * 80) < 15 * 60


def test_expansion_grid_seeds_include_exclude_overrides_budget(tmp_path):
    path = write(
        tmp_path,
        TINY
        + """\
grid:
  init.scheme: [fanin, orthogonal]
  env: [Pendulum-v1, MountainCarContinuous-v0]
exclude:
  - {init.scheme: fanin, env: MountainCarContinuous-v0}
include:
  - {init.scheme: pytorch_default, env: Pendulum-v1}
  - {init.scheme: xavier, env: MountainCarContinuous-v0}
overrides:
  - when: {env: MountainCarContinuous-v0}
    set: {sac.lr: 1.0e-4, total_steps: 600}
seeds: [3, 7]
budgets:
  quick:
    grid.env: [Pendulum-v1]
    seeds: 1
    total_steps: 200
""",
    )
    sweep = load_sweep(path)
    configs = [(t.config["init"]["scheme"], t.config["env"], t.seed) for t in sweep.trials]
    assert configs == [
        ("fanin", "Pendulum-v1", 3),
        ("fanin", "Pendulum-v1", 7),
        ("orthogonal", "Pendulum-v1", 3),
        ("orthogonal", "Pendulum-v1", 7),
        ("orthogonal", "MountainCarContinuous-v0", 3),
        ("orthogonal", "MountainCarContinuous-v0", 7),
        ("pytorch_default", "Pendulum-v1", 3),
        ("pytorch_default", "Pendulum-v1", 7),
        ("xavier", "MountainCarContinuous-v0", 3),
        ("xavier", "MountainCarContinuous-v0", 7),
    ]
    assert sweep.trials[0].trial_id == "t000_fanin_Pendulum-v1_s3"
    assert sweep.trials[4].trial_id == "t002_orthogonal_MountainCarContinuous-v0_s3"
    assert [t.group for t in sweep.trials[:4]] == ["t000", "t000", "t001", "t001"]
    car = [t.config for t in sweep.trials if t.config["env"] != "Pendulum-v1"]
    assert {c["sac"]["lr"] for c in car} == {1e-4} and {c["total_steps"] for c in car} == {600}
    assert sweep.varying_keys == ["init.scheme", "env"]
    # the budget restricts the env axis (dropping the include entry on the other env too),
    # replaces the seeds and has the last word on total_steps
    quick = load_sweep(path, "quick")
    assert [(t.config["init"]["scheme"], t.seed) for t in quick.trials] == [
        ("fanin", 0),
        ("orthogonal", 0),
        ("pytorch_default", 0),
    ]
    assert {t.config["total_steps"] for t in quick.trials} == {200}
    assert quick.trials[0].trial_id == "t000_fanin_s0"
    # deterministic
    assert [t.trial_id for t in load_sweep(path).trials] == [t.trial_id for t in sweep.trials]


def test_trial_ids_are_truncated_and_unique(tmp_path):
    long_env = "MountainCarContinuous-v0"
    path = write(
        tmp_path,
        TINY
        + f"""\
grid:
  init.scenario: [small_outputs, small_critic_std, small_mean_critic]
  init.small_scheme: [small_uniform, orthogonal]
  env: [{long_env}]
  sac.hidden: [[32, 32], [64, 64, 64]]
  sac.activation: [relu, tanh]
""",
    )
    sweep = load_sweep(path)
    ids = [t.trial_id for t in sweep.trials]
    assert len(set(ids)) == len(ids) == 24
    assert all(len(i) <= 96 and re.fullmatch(r"t\d{3}_[A-Za-z0-9_.+-]+_s0", i) for i in ids)
    assert ids[0] == "t000_small_outputs_small_uniform_32-32_relu_s0"


def test_duplicate_combination_is_an_error(tmp_path):
    path = write(
        tmp_path,
        TINY + "grid: {init.scheme: [fanin, orthogonal]}\ninclude:\n  - {init.scheme: fanin}\n",
    )
    with pytest.raises(SweepError, match=r"include\[0\]: combination t002 .* repeats t000"):
        load_sweep(path)


def test_user_module_registers_a_scheme(tmp_path):
    (tmp_path / "my_inits.py").write_text(
        "import torch, init_schemes\n"
        "if 'test_lecun' not in init_schemes.schemes:\n"
        "    @init_schemes.register('test_lecun', 'N(0, 1/fan_in)', uses_gain=False)\n"
        "    def test_lecun(tensor, *, fan_in, fan_out, gain, scale):\n"
        "        torch.nn.init.normal_(tensor, 0.0, fan_in ** -0.5)\n"
    )
    path = write(tmp_path, TINY + "grid: {init.scheme: [fanin, test_lecun]}\nimports: [my_inits]\n")
    sweep = load_sweep(path)
    assert [t.config["init"]["scheme"] for t in sweep.trials] == ["fanin", "test_lecun"]
    assert sweep.imports == [("my_inits", str(tmp_path.resolve()))]


def test_bare_name_resolves_to_shipped_sweeps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, TINY, "init_ablation.yaml")  # a same-named file here loses to the shipped one
    assert find_sweep_file("init_ablation.yaml") == SWEEPS_DIR / "init_ablation.yaml"
    assert find_sweep_file("init_ablation") == SWEEPS_DIR / "init_ablation.yaml"
    assert find_sweep_file("./init_ablation.yaml") == Path("./init_ablation.yaml")
    write(tmp_path, TINY, "mine.yaml")
    assert find_sweep_file("mine.yaml").resolve() == (tmp_path / "mine.yaml").resolve()


def test_dry_run_prints_the_table_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "init_ablation.yaml", "--budget", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["trial_id", "init.scheme", "init.scenario", "seed", "total_steps"]
    rows = [line for line in out if line.startswith("t0")]
    assert len(rows) == 30
    assert rows[0].split() == ["t000_fanin_small_outputs_s0", "fanin", "small_outputs", "0", "4000"]
    assert "init_ablation, budget quick: 30 trials (15 configs x 2 seeds)" in out[-1]
    assert not (tmp_path / "results").exists()


def test_validate_reports_every_budget(capsys):
    assert main(["validate", "init_ablation.yaml"]) == 0
    out = capsys.readouterr().out
    assert "ok: 150 trials (30 configs x 5 seeds)" in out
    assert "budget quick: 30 trials (15 configs x 2 seeds), 120,000 env steps" in out


def test_existing_sweep_dir_refuses_without_resume_or_force(tmp_path, capsys):
    path = write(tmp_path, TINY + "grid: {init.scheme: [fanin]}\n")
    storage = tmp_path / "out"
    storage.mkdir()
    (storage / "sweep_resolved.json").write_text('{"keep": true}')
    assert main(["run", str(path), "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert "already holds a sweep" in err and "--resume" in err and "--force" in err
    assert (storage / "sweep_resolved.json").read_text() == '{"keep": true}'
    assert main(["run", str(path), "--storage", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_with_a_different_expansion_refuses(tmp_path, capsys):
    path = write(
        tmp_path, TINY + "grid: {init.scheme: [fanin, orthogonal]}\nbudgets:\n  quick: {seeds: 2}\n"
    )
    storage = tmp_path / "out"
    storage.mkdir()
    sweep = load_sweep(path)
    (storage / "sweep_resolved.json").write_text(json.dumps(sweep.resolved()))
    assert main(["run", str(path), "--storage", str(storage), "--budget", "quick", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "different expansion (2 trials added" in err and "without --budget" in err


def test_sweep_status_reads_trial_dirs(tmp_path, capsys):
    path = write(tmp_path, TINY + "grid: {init.scheme: [fanin, orthogonal]}\nseeds: 2\n")
    sweep = load_sweep(path)
    d = tmp_path / "sw"
    (d / "trials").mkdir(parents=True)
    (d / "sweep_resolved.json").write_text(json.dumps(sweep.resolved()))
    ids = [t.trial_id for t in sweep.trials]
    statuses = [
        ("finished", 400, None, -900.0),
        ("failed", 200, "TrialError: non-finite loss/critic at env step 200", -1000.0),
        ("running", 200, None, -1000.0),
    ]
    for tid, (state, steps, error, ret) in zip(ids, statuses):
        (d / "trials" / tid).mkdir()
        (d / "trials" / tid / "status.json").write_text(
            json.dumps(
                {
                    "state": state,
                    "error": error,
                    "env_steps": steps,
                    "planned_steps": 400,
                    "updated": 0,
                    "restores": 1 if state == "running" else 0,
                }
            )
        )
        (d / "trials" / tid / "metrics.csv").write_text(f"env_step,eval/return\n{steps},{ret}\n")
    text = format_status(d, now=100.0)
    assert "finished 1   running 1   pending 1   failed 1" in text
    assert "env steps 800 / 1,600 (50%)" in text
    assert f"{ids[1]}: TrialError: non-finite loss/critic at env step 200" in text
    assert re.search(rf"{ids[0]}\s+finished\s+400/400\s+-900.0", text)
    assert re.search(rf"{ids[3]}\s+pending\s+0/400", text)
    assert "-900.00  fanin  (1/2 seeds)" in text  # finished trials only: not the failed seed
    assert main(["status", str(d)]) == 0
    assert "failures:" in capsys.readouterr().out
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    assert "no such sweep directory" in capsys.readouterr().err


def test_budget_base_and_grid_forms(tmp_path):
    """The README's form: quick: {base: {...}, grid: {...}, seeds: N}."""
    path = write(
        tmp_path,
        TINY
        + """\
grid:
  init.scheme: [fanin, orthogonal]
  env: [Pendulum-v1, MountainCarContinuous-v0]
overrides:
  - when: {env: MountainCarContinuous-v0}
    set: {total_steps: 600}
budgets:
  quick: {base: {total_steps: 200, eval_every: 100}, grid: {init.scheme: [fanin]}, seeds: 2}
  bad: {base: {env: Pendulum-v1}}
""",
    )
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert [p.path for p in err.value.problems] == ["budgets.bad.base.env"]
    assert "'env' is a grid key; write grid.env: [...]" in str(err.value)
    path.write_text(path.read_text().replace("  bad: {base: {env: Pendulum-v1}}\n", ""))
    quick = load_sweep(path, "quick")
    steps = {
        (t.config["env"][:3], t.config["init"]["scheme"], t.seed): (
            t.config["total_steps"],
            t.config["eval_every"],
        )
        for t in quick.trials
    }
    assert steps == {
        ("Pen", "fanin", 0): (200, 100),
        ("Pen", "fanin", 1): (200, 100),
        ("Mou", "fanin", 0): (600, 100),
        ("Mou", "fanin", 1): (600, 100),
    }


def test_no_grid_means_one_config_per_seed(tmp_path):
    sweep = load_sweep(write(tmp_path, TINY + "seeds: 3\n"))
    assert [t.trial_id for t in sweep.trials] == ["t000_s0", "t000_s1", "t000_s2"]
    assert sweep.varying_keys == []


def test_unreachable_address_fails_fast_and_writes_nothing(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write(tmp_path, TINY + "grid: {init.scheme: [fanin]}\n")
    storage = tmp_path / "out"
    assert (
        main(["run", str(path), "--storage", str(storage), "--address", f"127.0.0.1:{port}"]) == 2
    )
    err = capsys.readouterr().err
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in err and "Traceback" not in err
    assert not storage.exists()


@pytest.mark.parametrize(
    "section", ["sac", "td3", "ppo", "mb_ppo", "mb_sac", "dreamer", "world_model"]
)
def test_a_misspelt_activation_fails_validation_in_every_section(tmp_path, capsys, section):
    """`activation: rleu` is caught by `sweep validate` (the file, the key, the known names and a
    suggestion), not inside a trial, in every section that has an activation."""
    agent = "mb_ppo" if section == "world_model" else section
    path = tmp_path / "typo.yaml"
    path.write_text(
        f"name: typo\nbase:\n  agent: {agent}\n  env: Pendulum-v1\n  {section}.activation: rleu\n"
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{section}.activation" in err and "rleu" in err and "relu" in err, err
    assert "typo.yaml" in err and "Traceback" not in err
