"""Analysis of sweep results: tidy data, rliable-style statistics, comparison plots, report.

Reads result files only (``docs/results_layout.md``); never imports torch or Ray. Data flows
load -> stats -> plots -> report::

    import analysis
    df = analysis.load("results/init_ablation")             # one row per run x eval step
    runs = analysis.final_scores(df, "eval/return")          # one row per (trial_id, seed)
    table = analysis.interval_table(runs, ["init.scheme", "init.scenario"])
    best_first = analysis.rank_groups(table, "iqm", mode="max")   # mode="min": lower is better
    fig, axes = analysis.plot_intervals(table)
    analysis.write_report("results/init_ablation")           # report.md + report.html

``analysis.load`` is both the loading module (``analysis.load.load_trials``) and a function:
``analysis.load(DIR)`` is ``analysis.load_sweep(DIR)``. Names are imported on first use, so
``import analysis`` stays light until you use it.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

#: public name -> the module defining it
_NAMES = {
    # analysis.load
    "AnalysisError": "analysis.load",
    "flatten_config": "analysis.load",
    "load_init_diagnostics": "analysis.load",
    "load_sweep": "analysis.load",
    "load_trials": "analysis.load",
    "read_sweep_info": "analysis.load",
    # analysis.plots
    "group_palette": "analysis.plots",
    "plot_action_histograms": "analysis.plots",
    "plot_clip_vs_coverage": "analysis.plots",
    "plot_heatmap": "analysis.plots",
    "plot_intervals": "analysis.plots",
    "plot_learning_curves": "analysis.plots",
    "plot_performance_profiles": "analysis.plots",
    "plot_probability_of_improvement": "analysis.plots",
    "save_figure": "analysis.plots",
    "theme": "analysis.plots",
    # analysis.report
    "write_report": "analysis.report",
    # analysis.stats
    "aggregate_iqm": "analysis.stats",
    "aggregate_mean": "analysis.stats",
    "aggregate_median": "analysis.stats",
    "aggregate_optimality_gap": "analysis.stats",
    "bootstrap_ci": "analysis.stats",
    "final_scores": "analysis.stats",
    "group_labels": "analysis.stats",
    "higher_is_better": "analysis.stats",
    "interval_table": "analysis.stats",
    "iqm": "analysis.stats",
    "is_return_metric": "analysis.stats",
    "learning_curves": "analysis.stats",
    "normalise_scores": "analysis.stats",
    "normalised_auc": "analysis.stats",
    "performance_profile": "analysis.stats",
    "poi_table": "analysis.stats",
    "probability_of_improvement": "analysis.stats",
    "probability_of_improvement_ci": "analysis.stats",
    "profile_table": "analysis.stats",
    "rank_groups": "analysis.stats",
    "steps_to_threshold": "analysis.stats",
    "threshold_table": "analysis.stats",
}

__all__ = sorted([*_NAMES, "load", "plots", "report", "stats"])


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in ("load", "plots", "report", "stats", "report_cli", "style"):
        value = importlib.import_module(f"analysis.{name}")
    else:
        raise AttributeError(f"module 'analysis' has no attribute '{name}'")
    globals()[name] = value
    return value


class _CallableModule(types.ModuleType):
    """A module that is also a function (``analysis.load(DIR)``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["__call_target__"](*args, **kwargs)


def callable_module(name: str, function: Callable[..., Any]) -> None:
    """Make module ``name`` callable: calling it calls ``function``."""
    module = sys.modules[name]
    module.__call_target__ = function
    module.__class__ = _CallableModule


def __dir__() -> list[str]:
    return __all__
