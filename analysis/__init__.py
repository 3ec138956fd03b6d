"""Analysis of sweep results: tidy data, rliable-style statistics, comparison plots, report.

Reads result files only (``docs/results_layout.md``); never imports torch or Ray. Data flows
load -> stats -> plots -> report::

    import analysis
    df = analysis.load_sweep("results/init_ablation")       # one row per run x eval step
    runs = analysis.final_scores(df, "eval/return")          # one row per (trial_id, seed)
    table = analysis.interval_table(runs, ["init.scheme", "init.scenario"])
    best_first = analysis.rank_groups(table, "iqm", mode="max")   # mode="min": lower is better
    fig, axes = analysis.plot_intervals(table)
    analysis.write_report("results/init_ablation")           # report.md + report.html
"""

from analysis.load import (
    AnalysisError,
    flatten_config,
    load_init_diagnostics,
    load_sweep,
    load_trials,
    read_sweep_info,
)
from analysis.plots import (
    group_palette,
    plot_action_histograms,
    plot_clip_vs_coverage,
    plot_heatmap,
    plot_intervals,
    plot_learning_curves,
    plot_performance_profiles,
    plot_probability_of_improvement,
    save_figure,
    theme,
)
from analysis.report import write_report
from analysis.stats import (
    aggregate_iqm,
    aggregate_mean,
    aggregate_median,
    aggregate_optimality_gap,
    bootstrap_ci,
    final_scores,
    group_labels,
    higher_is_better,
    interval_table,
    iqm,
    is_return_metric,
    learning_curves,
    normalise_scores,
    normalised_auc,
    performance_profile,
    poi_table,
    probability_of_improvement,
    probability_of_improvement_ci,
    profile_table,
    rank_groups,
    steps_to_threshold,
    threshold_table,
)

__all__ = [
    "AnalysisError",
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_optimality_gap",
    "bootstrap_ci",
    "final_scores",
    "flatten_config",
    "group_labels",
    "group_palette",
    "higher_is_better",
    "interval_table",
    "iqm",
    "is_return_metric",
    "learning_curves",
    "load_init_diagnostics",
    "load_sweep",
    "load_trials",
    "normalise_scores",
    "normalised_auc",
    "performance_profile",
    "plot_action_histograms",
    "plot_clip_vs_coverage",
    "plot_heatmap",
    "plot_intervals",
    "plot_learning_curves",
    "plot_performance_profiles",
    "plot_probability_of_improvement",
    "poi_table",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "profile_table",
    "rank_groups",
    "read_sweep_info",
    "save_figure",
    "steps_to_threshold",
    "theme",
    "threshold_table",
    "write_report",
]
