"""The score a sweep declares (its ``analysis:`` block) and what a report's options change.

Part of :mod:`analysis.report`: :func:`read_scoring` finds the declaration (recorded in
``sweep_resolved.json``, the sweep file the runs started with, or the sweep file named by
``source``) and lists every option that makes a report an exploratory view of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.load import AnalysisError
from sweeps.trialdir import SWEEP_FILE


@dataclass
class Scoring:
    """The score a sweep declares (``analysis:``) and what this view changes about it."""

    last_k: int | None  # final = mean of the last k evaluations ...
    window: tuple[float, float] | None  # ... or of those in [from, to] (env steps)
    threshold: float | None  # declared steps-to-threshold value
    auc: bool  # the AUC is a declared score
    declared_text: str  # what was declared, in words
    source_text: str  # where the declaration comes from
    after_runs: bool  # declared after the runs (only in the current sweep file)
    exploratory: list[str] = field(default_factory=list)  # what this view changes
    threshold_exploratory: bool = False

    @property
    def final_text(self) -> str:
        if self.window is not None:
            lo, hi = self.window
            return f"mean of its evaluations at {lo:,.0f}-{hi:,.0f} env steps"
        return f"mean of its last {self.last_k} evaluations"

    @property
    def tag(self) -> str:
        """Suffix for every table this view's final score touches."""
        return " (exploratory)" if self.exploratory else ""

    @property
    def auc_tag(self) -> str:
        return "" if self.auc else " (not a declared score)"


def _final_words(final: dict[str, Any]) -> str:
    if "last" in final:
        return f"mean of the last {final['last']} evaluations"
    return f"mean of the evaluations at {final['from']:,.0f}-{final['to']:,.0f} env steps"


def _declared_analysis(info: Any, sweep_dir: Path) -> tuple[dict[str, Any] | None, str, bool]:
    """``(analysis, where, after_runs)``: the declared score of a sweep directory.

    In order: ``sweep_resolved.json`` (what the run recorded), the sweep file the run was
    started with (``sweep.yaml``, copied at the start), and the sweep file named by ``source``
    (or the shipped ``sweeps/`` file of that name): a declaration found only there was added
    after the runs, and the report says so. Validated by ``sweeps.schema.parse_analysis`` (the
    same rules and messages as ``sweep validate``; imported lazily, torch- and Ray-free).
    """
    recorded = info.resolved.get("analysis")
    if recorded:
        return recorded, "recorded in `sweep_resolved.json` when the sweep started", False
    candidates = [(sweep_dir / SWEEP_FILE, False)]
    source = info.resolved.get("source")
    if source:
        from sweeps.schema import SWEEPS_DIR

        candidates += [(Path(source), True), (SWEEPS_DIR / Path(source).name, True)]
    for path, after in candidates:
        if not path.is_file():
            continue
        parsed = _read_analysis(path, info.budget)
        if parsed is None:
            continue
        if after:
            where = (
                f"declared in `{path.parent.name}/{path.name}` after these runs (the sweep file "
                "they ran with has no `analysis:` block)"
            )
        else:
            where = "declared in the sweep file the runs were started with (`sweep.yaml`)"
        return parsed, where, after
    return None, "", False


def _read_analysis(path: Path, budget: str | None) -> dict[str, Any] | None:
    import yaml

    from sweeps.schema import parse_analysis

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise AnalysisError(f"cannot read the declared score in {path}: {err}") from None
    if not isinstance(data, dict):
        return None
    top_raw = data.get("analysis")
    budgets = data.get("budgets")
    entry = budgets.get(budget) if isinstance(budgets, dict) and isinstance(budget, str) else None
    budget_raw = entry.get("analysis") if isinstance(entry, dict) else None
    if top_raw is None and budget_raw is None:
        return None
    problems: list[Any] = []
    top = None
    if top_raw is not None:
        top, problems = parse_analysis(top_raw, ("analysis",))
    spec = top
    if budget_raw is not None and not problems:
        spec, problems = parse_analysis(budget_raw, ("budgets", budget, "analysis"), base=top)
    if problems:
        raise AnalysisError("; ".join(pr.format(str(path)) for pr in problems))
    return spec.resolved()


def read_scoring(
    sweep_dir: Path,
    info: Any,
    last_k: int | None,
    up_to: float | None,
    threshold: float | None,
    metric: str | None,
    mode: str | None,
) -> Scoring:
    """The declared score of ``sweep_dir`` and the options (arguments) that depart from it."""
    declared, where, after = _declared_analysis(info, sweep_dir)
    if declared is None:
        final: dict[str, Any] = {"last": 3}
        declared_text = "default"
        where = "the default: the sweep file declares no `analysis:`"
    else:
        final = declared.get("final") or {"last": 3}
        declared_text = "declared"
    declared_threshold = declared.get("threshold") if declared else None
    k, window = final.get("last"), None
    if "from" in final:
        window = (float(final["from"]), float(final["to"]))
    reasons = []
    if last_k is not None and (window is not None or last_k != k):
        reasons.append(
            f"final score = mean of the last {last_k} evaluations (`--last-k {last_k}`), "
            f"not the {declared_text} {_final_words(final)}"
        )
        k, window = last_k, None
    if up_to is not None:
        reasons.append(
            f"`--up-to {up_to:g}`: performance at {up_to:,.0f} env steps, not the "
            f"{declared_text} final score"
        )
        if window is not None:  # the window lies beyond the cut: the last evaluations before it
            k, window = 3, None
    if metric and metric != info.metric:
        reasons.append(f"metric `{metric}` is not the sweep's metric `{info.metric}`")
    if mode and mode != info.mode:
        reasons.append(f"mode `{mode}` is not the sweep's mode `{info.mode}`")
    threshold_exploratory = threshold is not None and (
        declared_threshold is None or float(threshold) != float(declared_threshold)
    )
    if threshold_exploratory:
        reasons.append(
            f"steps-to-threshold at `--threshold {threshold:g}`, a value not declared in the "
            "sweep file"
        )
    return Scoring(
        last_k=k if window is None else None,
        window=window,
        threshold=None if declared_threshold is None else float(declared_threshold),
        auc=bool(declared and declared.get("auc")),
        declared_text=f"{declared_text} score: {_final_words(final)}",
        source_text=where,
        after_runs=after,
        exploratory=reasons,
        threshold_exploratory=threshold_exploratory,
    )
