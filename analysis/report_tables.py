"""The tables and verdicts of ``sweep report``: the ranking, the pairs, the score lines.

Part of :mod:`analysis.report`: rows of cells (strings) and sentences built from a
:class:`~analysis.report_context.ReportContext`; :mod:`analysis.report_sections` places them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import plots, stats
from analysis.report_context import AGG_ENV, ReportContext, is_paired
from analysis.report_render import ci, keys_text, list_text, num, steps_ci


def score_lines(ctx: ReportContext) -> list[str]:
    """The paragraphs under the title: the score, exploratory changes, paired or not, notes."""
    sc = ctx.scoring
    lines = []
    if sc.exploratory:
        lines.append(
            "**Exploratory view** (not the declared score; read its verdicts as hypotheses): "
            + "; ".join(sc.exploratory)
            + "."
        )
    auc = (
        "the normalised AUC of the eval curve is a declared score too"
        if sc.auc
        else "the AUC is shown beside it but is not a declared score"
    )
    lines.append(
        f"**Score:** final score of a run = {sc.final_text}; {sc.source_text}"
        + (f"; this view replaces the {sc.declared_text}" if sc.exploratory else "")
        + f"; {auc}."
    )
    if is_paired(ctx):
        seeds = ", ".join(str(s) for s in ctx.info.seeds) or "the same seeds"
        pooled = bool(len(ctx.intervals)) and bool(
            (ctx.intervals["n_clusters"] < ctx.intervals["n_runs"]).any()
        )
        text = (
            f"**Analysis: paired by seed.** The groups share seeds ({seeds}); a seed gives the "
            "same env seeds and evaluation start states in every arm, so comparisons use "
            "per-seed differences and CIs that resample seeds, not runs."
        )
        if pooled:
            text += (
                " Groups pool several runs per seed (other factors"
                + (f": {keys_text(ctx.match_keys)}" if ctx.match_keys else "")
                + "): their CIs resample whole seeds, and runs are matched on seed and on the "
                "pooled factors' values."
            )
        n_disagree = int((~ctx.poi["agree"]).sum()) // 2 if "agree" in ctx.poi else 0
        text += (
            f" The unpaired analysis reaches another verdict for {n_disagree} pair(s); both "
            "are shown in the tables below."
            if n_disagree
            else " The unpaired analysis reaches the same verdicts."
        )
        lines.append(text)
    elif len(ctx.poi):
        lines.append(
            "**Analysis: unpaired**: the groups share fewer than two seeds, so runs are treated "
            "as independent and CIs resample runs."
        )
    lines += ctx.notes
    return lines


def pair_headers(ctx: ReportContext, first: str, a: str, b: str) -> list[str]:
    """Headers of a pairs table: ``first`` names its rows, ``a`` and ``b`` the two sides."""
    auc = "AUC: " + f"P({a} {ctx.cmp} {b})" + ("" if ctx.scoring.auc else " (not declared)")
    if not is_paired(ctx):
        return [first, f"P({a} {ctx.cmp} {b}) [95% CI]", auc, "Verdict"]
    return [
        first,
        f"P({a} {ctx.cmp} {b}), paired [95% CI]",
        f"Seeds where {a} is better",
        f"Mean difference {a} − {b} [95% CI]",
        f"Unpaired P({a} {ctx.cmp} {b}) [95% CI]",
        auc + ", paired",
        "Verdict",
    ]


def pair_rows(
    ctx: ReportContext, table: pd.DataFrame, auc_table: pd.DataFrame, best: bool = False
) -> list[list[str]]:
    """Rows of a pairs table (``pair_headers``), one per row of ``table``."""
    auc = auc_table.set_index(["a", "b"]) if len(auc_table) else None
    rows = []
    for r in table.itertuples():
        auc_cell = "-"
        if auc is not None and (r.a, r.b) in auc.index:
            q = auc.loc[(r.a, r.b)]
            auc_cell = ci(q["p"], q["low"], q["high"], digits=2)
        verdict = _verdict(r.low, r.high, r.a, r.b, r.n_min, paired=r.analysis == "paired")
        if r.analysis == "paired" and verdict.startswith("supported") and not r.supported:
            verdict = (
                "not supported (P's CI excludes 0.5, but the mean difference's CI includes 0 "
                "or points the other way)"
            )
        if not is_paired(ctx):
            rows.append([r.b, ci(r.p, r.low, r.high, digits=2), auc_cell, verdict])
            continue
        if r.analysis != "paired":
            rows.append(
                [
                    r.b,
                    ci(r.p, r.low, r.high, digits=2),
                    "-",
                    "-",
                    "(unpaired: fewer than 2 shared seeds)",
                    auc_cell,
                    verdict,
                ]
            )
            continue
        if not r.agree:
            other = _verdict(r.low_unpaired, r.high_unpaired, r.a, r.b, int(r.n_min_unpaired))
            verdict += f" (unpaired: {other})"
        seeds = f"{int(r.wins)} of {int(r.n_seeds)}" + (
            f" (sign test p = {r.sign_p:.2g})" if r.wins + r.losses else ""
        )
        rows.append(
            [
                r.b,
                ci(r.p, r.low, r.high, digits=2),
                seeds,
                ci(r.diff, r.diff_low, r.diff_high),
                ci(r.p_unpaired, r.low_unpaired, r.high_unpaired, digits=2),
                auc_cell,
                verdict,
            ]
        )
    return rows


# --------------------------------------------------------------------------------------------
# composition


def ranking_rows(ctx: ReportContext, scope: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the ranking table of ``scope`` (an env or the aggregate)."""
    table = ctx.intervals[ctx.intervals["env"] == scope]
    metrics = [m for m in stats.AGGREGATES if m in set(table["metric"])]
    auc = ctx.auc[ctx.auc["env"] == scope].set_index("group")
    steps = ctx.steps[ctx.steps["env"] == scope].set_index("group") if len(ctx.steps) else None
    runs = ctx.runs_all if scope == AGG_ENV else ctx.runs_all[ctx.runs_all["env"] == scope]
    labels = stats.group_labels(runs, ctx.group)
    unit = " (normalised)" if scope == AGG_ENV else ""
    headers = ["Rank", "Group", "Runs"] + [plots.METRIC_NAMES[m] + unit for m in metrics]
    headers.append("AUC" + unit + ctx.scoring.auc_tag)
    norm_auc = None
    if scope != AGG_ENV and len(ctx.auc_norm):
        norm_auc = ctx.auc_norm[ctx.auc_norm["env"] == scope].set_index("group")
        headers.append("AUC (normalised)" + ctx.scoring.auc_tag)
    if steps is not None and scope in ctx.thresholds:
        at_most = "≤ " if ctx.lower else ""
        headers.append(
            f"Steps to {at_most}{num(ctx.thresholds[scope])}"
            + (" (exploratory)" if ctx.scoring.threshold_exploratory else "")
        )
    else:
        steps = None
    rows = []
    for rank, g in enumerate(ctx.order[scope], start=1):
        row = [str(rank), f"**{g}**" if rank == 1 else g, _runs_text(runs[labels == g])]
        for m in metrics:
            rec = table[(table["group"] == g) & (table["metric"] == m)].iloc[0]
            row.append(ci(rec["estimate"], rec["low"], rec["high"]))
        row.append(ci(*auc.loc[g, ["estimate", "low", "high"]]) if g in auc.index else "-")
        if norm_auc is not None:
            row.append(
                ci(*norm_auc.loc[g, ["estimate", "low", "high"]], digits=3)
                if g in norm_auc.index
                else "-"
            )
        if steps is not None:
            row.append(
                steps_ci(*steps.loc[g, ["estimate", "low", "high"]]) if g in steps.index else "-"
            )
        rows.append(row)
    return headers, rows


def _runs_text(runs: pd.DataFrame) -> str:
    states = runs["state"].value_counts()
    text = str(int(states.get("finished", 0)))
    if states.get("running", 0):
        text += f" + {int(states['running'])} running"
    if states.get("failed", 0):
        text += f" ({int(states['failed'])} failed, excluded)"
    return text


def _verdict(low: float, high: float, a: str, b: str, n_min: int, *, paired: bool = False) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no CI (too few runs)"
    if paired and n_min < stats.MIN_SEEDS_FOR_SUPPORT:
        return (
            f"too few seeds to tell ({n_min} matched seeds; a verdict needs "
            f">= {stats.MIN_SEEDS_FOR_SUPPORT})"
        )
    if n_min < stats.MIN_RUNS_FOR_SUPPORT:
        return (
            f"too few runs to tell ({n_min} in the smaller group; a verdict needs "
            f">= {stats.MIN_RUNS_FOR_SUPPORT} in each)"
        )
    if low > 0.5:
        return f"supported: {a} better"
    if high < 0.5:
        return f"supported: {b} better"
    return "not supported (CI includes 0.5)"


def verdict_summary(ctx: ReportContext, scope: str) -> str:
    """The best group of ``scope`` and what the data support about it, in sentences."""
    table = ctx.vs_best[scope]
    best = ctx.best[scope]
    if table.empty:
        return f"Only one group (**{best}**); nothing to compare."
    few = table[table["n_min"] < stats.MIN_RUNS_FOR_SUPPORT]["b"].tolist()
    table = table[table["n_min"] >= stats.MIN_RUNS_FOR_SUPPORT]
    if "supported" in table:  # paired: the mean difference must agree with P (stats rule)
        held = ~table["supported"].astype(bool)
        table = table.assign(
            low=np.where(held, np.minimum(table["low"], 0.5), table["low"]),
            high=np.where(held, np.maximum(table["high"], 0.5), table["high"]),
        )
    better = table[table["low"] > 0.5]["b"].tolist()
    unclear = table[~((table["low"] > 0.5) | (table["high"] < 0.5))]["b"].tolist()
    worse = table[table["high"] < 0.5]["b"].tolist()
    iqm = ctx.intervals[(ctx.intervals["env"] == scope) & (ctx.intervals["metric"] == "iqm")]
    iqm = iqm.set_index("group")["estimate"]
    tied = [g for g in ctx.order[scope][1:] if np.isclose(iqm[g], iqm[best])]
    extreme = "lowest" if ctx.lower else "highest"
    head = f"**{best}** has the {extreme} IQM"
    if ctx.lower:
        head += f" (lower `{ctx.metric}` is better)"
    parts = [head + (f", tied with {list_text(tied)}." if tied else ".")]
    if better:
        parts.append(
            f"The data support that it beats {len(better)} of {len(table)} other "
            f"groups ({list_text(better)})."
        )
    if unclear:
        parts.append(
            f"Against {list_text(unclear)} the difference is not supported by the CIs: "
            "these may be as good."
        )
    if worse:
        parts.append(
            f"{list_text(worse)} beat it more often than not despite a worse IQM "
            "(skewed score distributions)."
        )
    if few:
        parts.append(
            f"Against {list_text(few)} no verdict is drawn: fewer than "
            f"{stats.MIN_RUNS_FOR_SUPPORT} runs per group, too few for any test of a difference "
            "to reach the 5% level (rerun with more seeds)."
        )
    runs = ctx.runs if scope == AGG_ENV else ctx.runs[ctx.runs["env"] == scope]
    n_running = int((runs["state"] == "running").sum())
    if n_running:
        parts.append(f"Includes {n_running} running run(s) up to their last eval (partial).")
    return " ".join(parts)
