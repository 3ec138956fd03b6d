"""analysis.report: `sweep report` on synthetic directories in the documented layout.

(The lead adds the test on a directory written by a tiny real sweep once sweeps/ runs.)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from fixtures_analysis import write_sweep

from analysis import AnalysisError, report, stats
from analysis.load import load_sweep

LEVELS = {"orthogonal": 0.8, "fanin": 0.4}


def _write(root: Path, **kwargs) -> Path:
    defaults = dict(
        schemes=("fanin", "orthogonal"),
        scenarios=("small_outputs", "no_small"),
        seeds=(0, 1, 2),
        n_evals=5,
        level=lambda env, scheme, scenario: LEVELS[scheme],
    )
    return write_sweep(root, **{**defaults, **kwargs})


@pytest.fixture(scope="module")
def partial_sweep(tmp_path_factory):
    """Two envs; a failed run, a running run, a pending run and a seed-batched trial."""
    root = _write(
        tmp_path_factory.mktemp("report") / "init_ablation",
        envs=("Pendulum-v1", "Walker2d-v4"),
        failed=[("Pendulum-v1", "fanin", "no_small", 1)],
        running=[("Walker2d-v4", "orthogonal", "no_small", 2)],
        pending=[("Walker2d-v4", "fanin", "no_small", 0)],
        batched=[("Walker2d-v4", "fanin", "small_outputs")],
    )
    report.write_report(root, progress=False, reps=500)
    return root


def test_writes_report_files(partial_sweep):
    root = partial_sweep
    md, html = root / "report.md", root / "report.html"
    assert md.is_file() and html.is_file()
    figures = root / "report" / "figures"
    for name in [
        "learning_curves",
        "final_intervals",
        "init_grid_heatmap",
        "probability_of_improvement",
        "performance_profiles",
        "init_clip_vs_coverage",
        "init_action_hist_Pendulum-v1",
        "init_action_hist_Walker2d-v4",
    ]:
        assert (figures / f"{name}.png").stat().st_size > 1000, name
        assert (figures / f"{name}.svg").stat().st_size > 1000, name
    # every figure link in report.md is relative and resolves
    links = re.findall(r"\]\(([^)]+\.(?:png|svg))\)", md.read_text())
    assert len(links) >= 16
    assert all(not Path(link).is_absolute() and (root / link).is_file() for link in links)
    # the HTML is self-contained: images inlined, nothing fetched
    text = html.read_text()
    assert text.count('src="data:image/png;base64,') == 8
    assert not re.search(r'src="(?!data:)', text) and "<link" not in text


def test_tidy_table_saved(partial_sweep):
    df = pd.read_parquet(partial_sweep / "report" / "metrics.parquet")
    # 2 envs x 2 x 2 x 3 seeds = 24 runs; 23 with data (6 rows or fewer) + 1 pending placeholder
    assert df.groupby(["trial_id", "seed"]).ngroups == 24
    assert set(df["state"]) == {"finished", "failed", "running", "pending"}
    assert {"init.scheme", "init.scenario", "env", "eval/return"} <= set(df.columns)


def test_report_content_partial_failed_ranking(partial_sweep):
    md = (partial_sweep / "report.md").read_text()
    banner = "Partial data: 19 of 22 trials finished; running trials included up to their last eval"
    assert banner in md
    assert "1 running, 1 pending without data, 1 failed" in md
    # failed trial listed with its error
    assert "`Pendulum-v1-fanin-no_small-s1`" in md and "RuntimeError: NaN in actor loss" in md
    # what ran: grid, seeds, budget
    assert "| `init.scenario` | small_outputs, no_small |" in md
    assert "Seeds: 0, 1, 2." in md and '"env_steps": 10000' in md
    # ranking: orthogonal groups first in every scope, with CIs
    for scope in ("Pendulum-v1", "Walker2d-v4", "all envs (normalised)"):
        section = md.split(f"### {scope}\n", 1)[1]
        ranks = re.findall(r"^\| (\d) \| \**([a-z_ /]+?)\**? \|", section, flags=re.M)[:4]
        assert [g.split(" / ")[0] for _, g in ranks] == ["orthogonal"] * 2 + ["fanin"] * 2, scope
    assert re.search(r"\| 2 \(1 failed, excluded\) \|", md)
    assert re.search(r"\| 2 \+ 1 running \|", md)
    # 3 seeds a group: orthogonal beats fanin in every pairing, but 3 vs 3 is too few runs for
    # any test to reach 5%, so the report draws no verdict (test_report_on_finished... has 5)
    assert "supported: orthogonal" not in md
    # the groups share seeds, so runs are matched by seed: the failed run leaves 2 matched seeds
    assert "too few seeds to tell (2 matched seeds; a verdict needs >= 4)" in md
    assert "no verdict is drawn: fewer than 4 runs per group" in md
    assert "Init diagnostics" in md and "| Clip fraction |" in md


def test_report_on_finished_single_env_sweep_with_threshold(tmp_path):
    root = _write(
        tmp_path / "done", diagnostics=False, failed=[("Pendulum-v1", "fanin", "no_small", 0)]
    )
    path = report.write_report(root, threshold=-900.0, progress=False, reps=300)
    md = path.read_text()
    assert path == root / "report.md"
    assert "Partial data" not in md  # nothing left to run
    assert "11 of 12 trials finished; 1 failed and are excluded from the statistics" in md
    assert "Steps to -900.0" in md
    assert "No `init_diagnostics.json` in any trial; skipped." in md
    assert "All pairs" in md  # 4 groups: the pairwise table is in the report
    assert "### all envs (normalised)" not in md  # one env: no cross-env aggregate


def test_group_option_changes_groups(tmp_path):
    root = _write(tmp_path / "grp", seeds=(0, 1))
    md = report.write_report(root, group=["init.scheme"], progress=False, reps=200).read_text()
    assert "unique combinations of `init.scheme`; 2 groups" in md
    assert "| 1 | **orthogonal** | 4 |" in md
    # 4 runs each, but 2 seeds pooled over 2 scenarios: matched by seed (and scenario), the
    # seed is the unit, and 2 seeds are too few for a verdict; the unpaired analysis, which
    # counts the 4 runs as independent, is shown beside it
    assert "| fanin | 1.00 [1.00, 1.00] | 2 of 2 (sign test p = 0.5) |" in md
    assert "too few seeds to tell (2 matched seeds" in md
    assert "(unpaired: supported: orthogonal better)" in md


def test_main_exit_codes(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert report.main([str(missing), "--no-progress"]) == 2
    assert str(missing) in capsys.readouterr().err

    root = _write(tmp_path / "ok", seeds=(0, 1), scenarios=("no_small",), diagnostics=False)
    assert report.main([str(root), "--no-progress", "--group", "nosuch.key"]) == 2
    err = capsys.readouterr().err
    assert "nosuch.key" in err and "init.scheme" in err

    assert report.main([str(root), "--no-progress", "--metric", "eval/missing"]) == 2
    assert "no values of metric 'eval/missing'" in capsys.readouterr().err

    parser = report.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args([str(root), "--no-progress", "--reps", "200", "--threshold", "-500"])
    assert report.main(args) == 0
    assert "report.md" in capsys.readouterr().out

    # the hook sweeps.cli calls: `sweep report DIR ...` dispatches to main
    cli = argparse.ArgumentParser(prog="sweep")
    report.add_subcommand(cli.add_subparsers(dest="command"))
    args = cli.parse_args(["report", str(missing), "--group", "a", "b", "--no-progress"])
    assert args.group == ["a", "b"] and args.func(args) == 2


def test_no_metrics_yet_is_an_error(tmp_path):
    root = _write(tmp_path / "early", seeds=(0,), scenarios=("no_small",))
    for trial in (root / "trials").iterdir():
        (trial / "metrics.csv").unlink()
    with pytest.raises(AnalysisError, match=r"no values of metric 'eval/return'.*early"):
        report.write_report(root, progress=False)


def test_up_to_and_out_write_an_early_budget_report_elsewhere(tmp_path):
    root = _write(tmp_path / "early", seeds=(0, 1, 2, 3), diagnostics=False)
    out = tmp_path / "at3k"
    assert (
        report.main(
            [str(root), "--no-progress", "--reps", "200", "--up-to", "3000", "--out", str(out)]
        )
        == 0
    )
    md = (out / "report.md").read_text()
    assert "only evaluations at env steps <= 3,000 are used" in md
    assert (out / "report.html").is_file() and (out / "report" / "metrics.parquet").is_file()
    assert not (root / "report.md").exists()  # the sweep's own report is left alone
    df = pd.read_parquet(out / "report" / "metrics.parquet")
    assert 0 < df["env_step"].max() <= 3000 < load_sweep(root)["env_step"].max()
    # the curves rise until 70% of the budget: at 3k every group is below its final level
    full = stats.final_scores(load_sweep(root), "eval/return")
    early = stats.final_scores(df, "eval/return")
    assert (early["score"].to_numpy() < full["score"].to_numpy()).all()
    assert report.main([str(root), "--no-progress", "--up-to", "-1"]) == 2


def test_default_groups_are_the_sweeps_axes_not_keys_only_some_trials_have(tmp_path):
    # a sweep over agents resolves agent sections only where they apply: "mb.knob" is set in
    # the orthogonal trials alone, so it "varies", but it is no axis of the sweep
    root = _write(tmp_path / "axes", seeds=(0, 1, 2, 3), diagnostics=False)
    for config_path in root.glob("trials/*orthogonal*/config.json"):
        config = json.loads(config_path.read_text())
        config_path.write_text(json.dumps({**config, "mb": {"knob": 7}}))
    md = report.write_report(root, progress=False, reps=200).read_text()
    assert "unique combinations of `init.scheme`, `init.scenario`" in md
    assert "7" not in re.findall(r"^\| 1 \| \*\*([^*]+)\*\*", md, flags=re.M)[0]


def test_png_only_report_drops_svgs_and_records_its_command(tmp_path, capsys):
    root = _write(tmp_path / "light", seeds=(0, 1), diagnostics=False)
    report.write_report(root, progress=False, reps=200)  # default: png + svg
    fig_dir = root / "report" / "figures"
    n_png = len(list(fig_dir.glob("*.png")))
    assert n_png > 0 and len(list(fig_dir.glob("*.svg"))) == n_png
    (fig_dir / "learning_curves_old_group.png").write_bytes(b"stale")  # from an older report

    inline_size = (root / "report.html").stat().st_size
    assert "data:image/png;base64," in (root / "report.html").read_text()
    assert (
        report.main(
            [
                str(root),
                "--no-progress",
                "--reps",
                "200",
                "--formats",
                "png",
                "--dpi",
                "80",
                "--group",
                "init.scheme",
                "--up-to",
                "4000",
                "--html-images",
                "link",
            ]
        )
        == 0
    )
    page = (root / "report.html").read_text()
    assert "data:image" not in page and (root / "report.html").stat().st_size < inline_size / 5
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert srcs and all((root / src).is_file() for src in srcs)
    assert not list(fig_dir.glob("*.svg"))  # the earlier report's vector copies are gone
    assert not (fig_dir / "learning_curves_old_group.png").exists()
    md = (root / "report.md").read_text()
    assert "[SVG]" not in md and "](report/figures/" in md
    linked = set(re.findall(r"\]\(report/figures/([^)]+\.png)\)", md))
    assert linked and linked <= {p.name for p in fig_dir.glob("*.png")}
    assert "by `sweep report --group init.scheme --up-to 4000`" in md

    capsys.readouterr()
    assert report.main([str(root), "--no-progress", "--formats", "svg,png"]) == 2
    assert "the first must be png" in capsys.readouterr().err
    assert report.main([str(root), "--no-progress", "--dpi", "5"]) == 2
    assert "dpi must be an integer" in capsys.readouterr().err
