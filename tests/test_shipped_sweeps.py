"""Every sweep shipped in sweeps/ validates, and expands to the trial counts its header documents.

A header documents a budget's size on its run line, e.g.
``#   sweep run init_ablation.yaml --budget quick   # 30 trials, ...``.
"""

from __future__ import annotations

import re

import pytest

from sweeps.cli import main
from sweeps.schema import SWEEPS_DIR, load_sweep

SHIPPED = sorted(SWEEPS_DIR.glob("*.yaml"))
DOCUMENTED = re.compile(r"--budget (\w+)\s+#\s*(\d+) trials")


def documented_counts(path) -> dict[str, int]:
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    return {m[1]: int(m[2]) for line in header if (m := DOCUMENTED.search(line))}


def test_every_research_question_has_a_sweep():
    names = {p.stem for p in SHIPPED}
    assert names >= {
        "init_ablation",
        "init_output_gain",
        "init_ppo",
        "model_based",
        "return_estimator",
        "proprio_aux",
        "world_model_init",
        "mb_ppo_knobs",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweep_validates_with_documented_counts(path):
    counts = documented_counts(path)
    spec_budgets = set(load_sweep(path).spec.budgets)
    assert {"quick", "full"} <= spec_budgets, "every shipped sweep has a quick and a full budget"
    assert set(counts) == spec_budgets, f"header documents {sorted(counts)}"
    for budget, n in counts.items():
        sweep = load_sweep(path, budget)
        assert len(sweep.trials) == n, f"{path.name} --budget {budget}"
        assert len({t.trial_id for t in sweep.trials}) == n


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweep_dry_run_prints_every_trial(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the bare name must resolve to sweeps/, not the cwd
    n = documented_counts(path)["quick"]
    assert main(["run", path.name, "--budget", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"t\d{3}", line)]
    assert len(rows) == n
    assert f"{n} trials" in out
    assert not (tmp_path / "results").exists()  # a dry run writes nothing
