"""The sections of ``report.md`` / ``report.html``, in order: one function per section.

Part of :mod:`analysis.report`: :func:`compose` builds the whole document from a finished
:class:`~analysis.report_context.ReportContext`; each section function appends its headings,
paragraphs, lists, tables and figures to the :class:`~analysis.report_render.Doc`.
"""

from __future__ import annotations

import datetime as _dt
import json

from analysis import stats, tuning_report
from analysis.report_context import (
    AGG_ENV,
    DIAG_COLUMNS,
    STATE_WORDS,
    ReportContext,
    is_paired,
    n_trials,
    report_title,
)
from analysis.report_render import Doc, ci, first_line, int_text, keys_text, num
from analysis.report_tables import (
    pair_headers,
    pair_rows,
    ranking_rows,
    score_lines,
    verdict_summary,
)


def compose(ctx: ReportContext, elapsed: float) -> Doc:
    """The report of ``ctx``, section by section; ``elapsed``: seconds it took to compute."""
    doc = Doc(svg="svg" in ctx.formats, inline_images=ctx.inline_images)
    header(doc, ctx, elapsed)
    what_ran(doc, ctx)
    how_to_read(doc, ctx)
    figures(doc, ctx)
    ranking(doc, ctx)
    supported_differences(doc, ctx)
    if len(ctx.other):
        other_metrics(doc, ctx)
    init_diagnostics(doc, ctx)
    if ctx.tuning is not None:
        tuning_report.compose(doc, ctx.tuning)
    files(doc, ctx)
    return doc


def _state_counts(ctx: ReportContext) -> dict[str, int]:
    """Trials per state: the usual states first, then any other (e.g. unreadable status)."""
    states = list(STATE_WORDS)
    states += sorted(set(ctx.trials["state"]) - set(states))  # e.g. "unknown": unreadable status
    return {s: n_trials(ctx, s) for s in states}


def _reached(ctx: ReportContext) -> str:
    return "at or below" if ctx.lower else "at or above"


# --------------------------------------------------------------------------------------------
# the title and what the report is


def header(doc: Doc, ctx: ReportContext, elapsed: float) -> None:
    """Title, how the report was made, its score and direction, a budget cut."""
    doc.h(1, f"Sweep report: {report_title(ctx)}")
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    doc.p(
        f"Generated {now} from `{ctx.sweep_dir}` by `{ctx.command}` in {elapsed:.0f} s. "
        f"Metric: `{ctx.metric}`, **{ctx.direction}** (mode `{ctx.mode}`)."
    )
    for line in score_lines(ctx):
        doc.p(line)
    if ctx.up_to is not None:
        doc.p(
            f"**Budget cut:** only evaluations at env steps <= {ctx.up_to:,.0f} are used, so "
            f"final performance here is performance at {ctx.up_to:,.0f} env steps."
        )
    if ctx.lower:
        doc.p(
            f"Lower `{ctx.metric}` is better: groups are ranked lowest first, P(A < B) is the "
            "probability that A improves on B, and a threshold counts as reached at or below "
            "it. All numbers are in the metric's own units."
        )
    _progress_note(doc, ctx)


def _progress_note(doc: Doc, ctx: ReportContext) -> None:
    """A running sweep's partial data, or the failed trials of a finished one."""
    counts = _state_counts(ctx)
    n_total = len(ctx.trials)
    stopped = counts.get("stopped", 0)
    unfinished = n_total - counts["finished"] - counts["failed"] - stopped
    if unfinished:
        other = [
            f"{v} {k}" + ("" if k == "interrupted" else " (status unreadable, treated as running)")
            for k, v in counts.items()
            if v and k not in (*STATE_WORDS, "stopped")
        ]
        doc.p(
            f"**Partial data: {counts['finished']} of {n_total} trials finished; running trials "
            f"included up to their last eval** ({counts['running']} running, "
            f"{counts['pending']} pending without data, {counts['failed']} failed and excluded"
            + "".join(f", {o}" for o in other)
            + "). Numbers will change as the sweep progresses."
        )
    elif counts["failed"]:
        doc.p(
            f"**{counts['finished']} of {n_total} trials finished; {counts['failed']} failed and "
            "are excluded from the statistics** (listed below)."
        )
    if stopped:
        doc.p(
            f"**{stopped} of {n_total} trials were stopped early by the sweep's scheduler "
            "(ASHA)**: their curves are plotted, but they have no final score or AUC, so the "
            "score tables rank the configurations that survived. Survivors are not a random "
            "sample of the configurations: the tuning-cost numbers of such a sweep describe "
            "tuning with ASHA, not random search."
        )


# --------------------------------------------------------------------------------------------
# What ran


def what_ran(doc: Doc, ctx: ReportContext) -> None:
    """Trials, seeds, budget, groups and envs; the grid; env scores; failed, damaged trials."""
    info = ctx.info
    counts = _state_counts(ctx)
    doc.h(2, "What ran")
    seeds = ", ".join(str(s) for s in info.seeds) or "(not recorded)"
    budget = json.dumps(info.budget) if info.budget is not None else "(not recorded)"
    items = [
        f"Trials: {len(ctx.trials)} ({', '.join(f'{v} {k}' for k, v in counts.items() if v)}); "
        f"runs with data (trial x seed): {len(ctx.runs_all)}.",
        f"Seeds: {seeds}. Budget: `{budget}`.",
        f"Compared groups: unique combinations of {keys_text(ctx.group)}; "
        f"{len(ctx.order[ctx.scopes[-1]])} groups. Envs: {', '.join(ctx.envs)}.",
    ]
    doc.ul(items + ([ctx.diag_note] if ctx.diag_note else []))
    if info.grid:
        doc.table(
            ["Key", "Values"],
            [[f"`{k}`", ", ".join(str(v) for v in vals)] for k, vals in info.grid.items()],
        )
    _env_table(doc, ctx)
    _failed_trials(doc, ctx)
    _damaged_trials(doc, ctx)


def _env_table(doc: Doc, ctx: ReportContext) -> None:
    """Per env: its random and reference scores (returns only) and its threshold."""
    env_rows = []
    for env in ctx.envs:
        sub = ctx.runs_all[ctx.runs_all["env"] == env]
        scores = [num(sub[f"env_score_{k}"].iloc[0]) for k in ("random", "reference")]
        threshold = num(ctx.thresholds[env]) if env in ctx.thresholds else "-"
        env_rows.append([env, *(scores if ctx.returns else []), threshold])
    score_headers = ["Random score", "Reference score"] if ctx.returns else []
    doc.table(["Env", *score_headers, "Threshold for steps-to-threshold"], env_rows)
    if ctx.thresholds:
        doc.p(
            f"Threshold for steps-to-threshold: {ctx.threshold_rule}; reached when a group's "
            f"IQM learning curve is {_reached(ctx)} it."
        )


def _failed_trials(doc: Doc, ctx: ReportContext) -> None:
    trials = ctx.trials
    failed = trials[trials["state"] == "failed"]
    if len(failed):
        doc.h(3, f"Failed trials ({len(failed)}, excluded from the statistics)")
        keys = [k for k in ctx.group if k in failed.columns]
        labels = stats.group_labels(failed, keys)
        rows = []
        for (_, rec), label in zip(failed.iterrows(), labels, strict=True):
            progress = f"{int_text(rec['env_steps'])} / {int_text(rec['planned_steps'])}"
            rows.append(
                [f"`{rec['trial_id']}`", label, rec["env"], progress, first_line(rec["error"])]
            )
        doc.table(["Trial", "Group", "Env", "Env steps reached", "Error"], rows)


def _damaged_trials(doc: Doc, ctx: ReportContext) -> None:
    trials = ctx.trials
    damaged = trials[trials["state"] == "damaged"]
    if len(damaged):
        doc.h(3, f"Damaged trials ({len(damaged)}, excluded from the statistics)")
        doc.p(
            "Their files fail validation (sweeps/trialdir.py), so none of their numbers is "
            "used; nothing was changed on disk. `sweep report --strict` makes this an error."
        )
        rows = [
            [f"`{ctx.sweep_dir / 'trials' / str(rec['trial_id'])}`", rec["env"], str(rec["damage"])]
            for _, rec in damaged.iterrows()
        ]
        doc.table(["Trial directory", "Env", "Defects"], rows)


# --------------------------------------------------------------------------------------------
# How to read the numbers


def how_to_read(doc: Doc, ctx: ReportContext) -> None:
    """What each number means: the scores, the intervals, the comparisons."""
    doc.h(2, "How to read the numbers")
    doc.ul(_reading_scores(ctx) + _reading_comparisons(ctx))


def _reading_scores(ctx: ReportContext) -> list[str]:
    """Direction, final performance, IQM and the aggregates, CIs, AUC."""
    has_gap = bool((ctx.intervals["metric"] == "optimality_gap").any())
    quantity = "return" if ctx.returns else f"`{ctx.metric}`"
    return [
        f"**Direction**: {ctx.direction} for `{ctx.metric}` (mode `{ctx.mode}`); every "
        "ranking, best group, probability of improvement and threshold follows it.",
        f"**Final performance** of a run (one trial x seed) = {ctx.scoring.final_text} "
        f"({ctx.scoring.source_text}); this smooths over single lucky or unlucky "
        "evaluations.",
        "**IQM** = interquartile mean over runs (mean of the middle 50%), robust to "
        "outlier seeds; **mean/median** are over envs of the per-env mean (median only "
        "across envs)"
        + (
            "; **optimality gap** = how far runs fall short of the reference score "
            "(lower is better)."
            if has_gap
            else "."
        ),
        f"**95% CIs**: stratified percentile bootstrap over runs ({ctx.reps} resamples), "
        "resampling seeds within each env (rliable's method, via scipy); a group that pools "
        "several runs per seed (other factors pooled) resamples whole seeds, never counting "
        "runs that share a seed as independent.",
        f"**AUC** = area under the run's learning curve divided by its length: the average "
        f"{quantity} during training (a learning-speed measure"
        + ("; lower is better)." if ctx.lower else ").")
        + " Running trials' AUC covers only the steps they reached.",
    ]


def _reading_comparisons(ctx: ReportContext) -> list[str]:
    """P(improvement), paired analysis, steps to threshold, normalised scores."""
    return (
        [
            f"**Probability of improvement** P(A {ctx.cmp} B) = the chance that a run of A "
            f"{'scores lower than' if ctx.lower else 'beats'} a run of B on the same env (ties "
            "count half). **Supported** = its 95% CI excludes 0.5 and each group has at least "
            f"{stats.MIN_RUNS_FOR_SUPPORT} runs (with fewer, no rank test can reach 5% and the "
            "bootstrap CI is degenerate, so no verdict is drawn). "
            "**Not supported** means this data cannot tell the groups apart, not that they are "
            "equal; more seeds may resolve it.",
            "**Paired by seed** (when the groups share seeds): runs of two groups with the same "
            "seed (and, for pooled groups, the same values of the pooled factors) are matched; "
            "P(A better than B) is the share of matched pairs A wins, averaged per seed, with a "
            "CI that resamples seeds; the mean difference A - B per seed comes with its own CI. "
            "Supported = that CI of P excludes 0.5, the mean difference's CI excludes 0 on the "
            f"same side, and there are at least {stats.MIN_SEEDS_FOR_SUPPORT} matched seeds. "
            "When every seed agrees the bootstrap "
            "CI is [1, 1] (or [0, 0]); the exact sign test beside it says how much that is "
            "worth with few seeds (5 of 5: p = 0.062).",
        ]
        + (
            [
                "**Steps to threshold** = first env step at which a group's IQM learning curve "
                f"is {_reached(ctx)} the threshold ({ctx.threshold_rule})."
            ]
            if ctx.thresholds
            else []
        )
        + (
            [
                "Across envs, scores are normalised per env: 0 = random policy, 1 = reference "
                "score (`env_scores` in status.json)."
            ]
            if AGG_ENV in ctx.scopes
            else []
        )
    )


# --------------------------------------------------------------------------------------------
# Figures, Ranking, Which differences are supported


def figures(doc: Doc, ctx: ReportContext) -> None:
    """Every figure drawn, under its own heading, with its caption."""
    doc.h(2, "Figures")
    for section, name, caption in ctx.figures:
        doc.h(3, section)
        doc.figure(f"report/figures/{name}", caption)


def ranking(doc: Doc, ctx: ReportContext) -> None:
    """One ranking table per scope (each env, then the normalised aggregate)."""
    doc.h(
        2,
        "Ranking (final performance, 95% CIs"
        + ("; lower is better, lowest IQM first)" if ctx.lower else ")")
        + ctx.scoring.tag,
    )
    for scope in ctx.scopes:
        doc.h(3, scope)
        headers, rows = ranking_rows(ctx, scope)
        doc.table(headers, rows)


def supported_differences(doc: Doc, ctx: ReportContext) -> None:
    """Each group against the best per scope; all pairs; the multiple-comparisons caveat."""
    doc.h(2, "Which differences are supported" + ctx.scoring.tag)
    doc.p(
        f"Each group against the best group by IQM: P(best {ctx.cmp} group) is the chance that "
        "a run of the best group beats a run of the other group on the same env"
        + (f" (has a lower `{ctx.metric}`)" if ctx.lower else "")
        + (
            ", matched by seed (and by the pooled factors' values): the same seed gives the "
            "same env seeds and evaluation start states in every arm, so each seed's "
            "difference is the evidence and the CIs resample seeds. The unpaired analysis "
            "(independent runs) is shown beside it."
            if is_paired(ctx)
            else "."
        )
    )
    for scope in ctx.scopes:
        doc.h(3, scope)
        doc.p(verdict_summary(ctx, scope))
        if len(ctx.vs_best[scope]):
            doc.table(
                pair_headers(ctx, f"Group vs best (**{ctx.best[scope]}**)", "best", "group"),
                pair_rows(ctx, ctx.vs_best[scope], ctx.vs_best_auc[scope], best=True),
            )
    n_groups = len(ctx.order[ctx.scopes[-1]])
    if 2 < n_groups <= 8:
        _all_pairs(doc, ctx)
    elif n_groups > 8:
        doc.p(
            "All pairwise probabilities with CIs are in the matrix figure and "
            "`report/poi_pairs.csv`."
        )
    if n_groups > 2:
        doc.p(
            f"With {n_groups} groups there are {n_groups * (n_groups - 1) // 2} pairs; at a 95% "
            "level about 1 in 20 true ties will look supported by chance (no multiple-comparison "
            "correction is applied)."
        )


def _all_pairs(doc: Doc, ctx: ReportContext) -> None:
    """Every unordered pair of groups once, in the direction of the more likely winner."""
    doc.h(
        3,
        "All pairs" + (" (averaged over envs)" if len(ctx.envs) > 1 else "") + ctx.scoring.tag,
    )
    rank = {g: i for i, g in enumerate(ctx.order[ctx.scopes[-1]])}
    poi = ctx.poi
    ahead = (poi["p"] > 0.5) | ((poi["p"] == 0.5) & (poi["a"].map(rank) < poi["b"].map(rank)))
    pairs = poi[ahead].sort_values("p", ascending=False, kind="stable")
    doc.table(
        ["A", *pair_headers(ctx, "B", "A", "B")],
        [
            [r.a, *row]
            for r, row in zip(pairs.itertuples(), pair_rows(ctx, pairs, ctx.poi_auc), strict=True)
        ],
    )


# --------------------------------------------------------------------------------------------
# Init diagnostics, Files


def init_diagnostics(doc: Doc, ctx: ReportContext) -> None:
    """Action statistics of the untrained policy and their figures (or why there are none)."""
    if ctx.diag_table is None:
        if not ctx.diag_note:  # an uninformative probe gets no section (a line in "What ran")
            doc.h(2, "Init diagnostics")
            doc.p("No `init_diagnostics.json` in any trial; skipped.")
        return
    doc.h(2, "Init diagnostics")
    doc.p(
        "Action statistics of the untrained policy (averaged over seeds and action dims). "
        "The notes' criterion: good coverage of the action space without clipping at the "
        "bounds (clipped actions are oversampled)."
    )
    t = ctx.diag_table
    doc.table(
        [
            "Env",
            "Group",
            "Runs",
            "Coverage",
            "Clip fraction",
            "Entropy",
            "Mean |mean|",
            "Std",
            "Critic scale",
        ],
        [
            [r.env, r.group, str(r.runs), *(num(getattr(r, c)) for c in DIAG_COLUMNS)]
            for r in t.itertuples()
        ],
    )
    for name, caption in ctx.diag_figures:
        doc.figure(f"report/figures/{name}", caption)


def other_metrics(doc: Doc, ctx: ReportContext) -> None:
    """``--also``: each group's final value of more metrics and its paired difference from the
    ``--versus`` group (exploratory: no direction, no verdict)."""
    doc.h(2, "Other metrics (exploratory)")
    doc.p(
        "Metrics beside the declared score, asked for with `--also`; scored the same way (a "
        "run's final value as above). **Exploratory:** no direction is assumed and no verdict "
        "is drawn; the declared score is the one above. Per env and metric: each group's IQM "
        "and median over runs, and its difference from the reference group matched by seed "
        "(mean of the per-seed differences with a 95% bootstrap CI over seeds, their median, "
        "and the seeds where the group's value is higher). Numbers: `report/other_metrics.csv`."
    )
    for env, table in ctx.other.groupby("env", sort=True):
        versus = table["versus"].iloc[0]
        doc.h(3, f"{env}: against {versus}")
        rows = []
        for _, r in table.iterrows():
            is_ref = r["group"] == versus
            rows.append(
                [
                    f"`{r['metric']}`",
                    f"**{r['group']}**" if is_ref else str(r["group"]),
                    int_text(r["runs"]),
                    num(r["iqm"]),
                    num(r["median"]),
                    "reference" if is_ref else ci(r["diff_mean"], r["diff_low"], r["diff_high"]),
                    "-" if is_ref else num(r["diff_median"]),
                    "-" if is_ref else f"{int(r['above'])} of {int(r['seeds'])}",
                ]
            )
        doc.table(
            [
                "Metric",
                "Group",
                "Runs",
                "IQM",
                "Median",
                f"Mean difference vs {versus} [95% CI]",
                "Median difference",
                "Seeds higher",
            ],
            rows,
        )


def files(doc: Doc, ctx: ReportContext) -> None:
    """The files next to the report and what each holds."""
    doc.h(2, "Files")
    doc.ul(
        [
            "`report/metrics.parquet`: the tidy table (one row per run x evaluation).",
            "`report/final_scores.csv`: final score and AUC per run (failed runs included, "
            "marked).",
            "`report/intervals.csv`, `report/poi_pairs.csv` (final score: paired and unpaired "
            "P, per-seed differences), `report/poi_pairs_auc.csv` (the same for the AUC): the "
            "numbers behind the tables.",
            *(
                ["`report/other_metrics.csv`: the `--also` metrics per group, paired differences."]
                if len(ctx.other)
                else []
            ),
            "`report/figures/`: every figure as "
            + " and ".join(f.upper() for f in ctx.formats)
            + ".",
        ]
    )
