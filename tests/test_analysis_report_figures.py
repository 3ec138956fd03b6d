"""sweep report, figure side: report.html has a title with the sweep's name and budget, a table
of contents whose links all land on headings, a visible note instead of a broken image, and no
init-diagnostics section for an init probe that carries no information."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_analysis import write_sweep

from analysis import report


def _write(root: Path, **kwargs) -> Path:
    defaults = dict(
        schemes=("fanin", "orthogonal"),
        scenarios=("small_outputs", "no_small"),
        seeds=(0, 1),
        n_evals=4,
        level=lambda env, scheme, scenario: {"fanin": 0.4, "orthogonal": 0.8}[scheme],
    )
    return write_sweep(root, **{**defaults, **kwargs})


@pytest.fixture(scope="module")
def linked_report(tmp_path_factory) -> Path:
    root = _write(tmp_path_factory.mktemp("html") / "init_ablation")
    report.write_report(root, progress=False, reps=200, formats=("png",), html_images="link")
    return root


def test_html_title_and_table_of_contents_anchors(linked_report):
    page = (linked_report / "report.html").read_text()
    title = re.search(r"<title>(.*?)</title>", page).group(1)
    assert "init_ablation" in title and "10,000 env steps" in title
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", page).group(1)
    assert "init_ablation" in h1 and "10,000 env steps" in h1
    toc = re.search(r'<nav class="toc">(.*?)</nav>', page, re.S).group(1)
    links = re.findall(r'href="#([^"]+)"', toc)
    ids = re.findall(r'<h[23] id="([^"]+)"', page)
    assert links == ids  # every h2/h3 listed once, in order, and every link lands
    assert len(ids) == len(set(ids))  # repeated headings (one per env) get distinct anchors
    assert {"what-ran", "figures", "init-diagnostics"} <= set(ids)
    assert page.index('<nav class="toc">') < page.index('id="what-ran"')


def test_linked_figures_fall_back_to_a_visible_note(linked_report):
    page = (linked_report / "report.html").read_text()
    imgs = re.findall(r"<img [^>]*>", page)
    assert imgs and all("onerror=" in tag and "Figure missing" in tag for tag in imgs)
    # a figure missing when the page is written: a note, not an <img> pointing nowhere
    doc = report._Doc(svg=False, inline_images=False)
    doc.h(1, "t")
    doc.figure("report/figures/learning_curves", "curves")
    doc.figure("report/figures/not_written", "gone")
    html = doc.to_html(linked_report, title="t")
    assert html.count("<img ") == 1
    assert 'class="missing"' in html and "not_written.png" in html
    inline = report._Doc(svg=False, inline_images=True)
    inline.figure("report/figures/not_written", "gone")
    assert 'class="missing"' in inline.to_html(linked_report, title="t")  # no crash either


def _uniform_probe(path: Path) -> None:
    """Rewrite a trial's init_diagnostics.json as the uniform random policy's probe."""
    diag = json.loads(path.read_text())
    for entry in diag.values():
        dims = len(entry["hist"])
        entry.update(
            hist=[[0.05] * 20 for _ in range(dims)],
            coverage=[1.0] * dims,
            clip_frac=[0.02] * dims,
            entropy=float(np.log(2.0)),
            mean_abs_mean=0.0,
            std=float(1 / np.sqrt(3)),
            critic_scale=None,
        )
    path.write_text(json.dumps(diag))


def test_no_init_diagnostics_section_for_a_uniform_random_probe(tmp_path, linked_report):
    root = _write(tmp_path / "world_model_init")
    for path in (root / "trials").glob("*/init_diagnostics.json"):
        _uniform_probe(path)
    report.write_report(root, progress=False, reps=200, formats=("png",))
    md = (root / "report.md").read_text()
    assert "## Init diagnostics" not in md
    assert "uniform random policy" in md
    figures = root / "report" / "figures"
    assert not list(figures.glob("init_action_hist*")) + list(figures.glob("init_clip*"))
    # an informative probe keeps its section and figures
    md = (linked_report / "report.md").read_text()
    assert "## Init diagnostics" in md and "uniform random policy" not in md
    assert list((linked_report / "report" / "figures").glob("init_clip_vs_coverage.png"))
