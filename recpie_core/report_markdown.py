"""The evaluation report as a reader sees it: the markdown page and the ladder plot.

``report.build_report`` computes every number; this module only lays them out.
"""

from __future__ import annotations

import math
from pathlib import Path

from recpie_core.io import atomic_write
from recpie_core.rec.evaluate import improvement_table
from recpie_core.rec.paired import paired_markdown
from recpie_core.rec.render import results_markdown

REFERENCE = "recpie"
_METRIC_LABEL = {"rmse": "RMSE (stars)", "mae": "MAE (stars)", "auc": "AUC"}
_RUNG_SAYS = {
    "recpie_r0": "no explanations (constant tokens)",
    "text_candidate": "the candidate's own text, embedded directly (no LLM)",
    "text_prompt": "the LLM's whole input, embedded directly (no LLM)",
    "explanation_only": "the LLM's explanations, no PIE",
    REFERENCE: "the selected round (validation)",
    "ideal": "the pair's true liked / disliked aspects: the upper bound",
}


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _pct(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def _ladder_markdown(ladder: list[dict]) -> list[str]:
    lines = ["## The explanation ladder (test rows, same split and recommender)", "",
             "Each rung reads different explanation texts through the same recommender, started from "
             "`recpie_r0` (*start*: warm, scratch, probe or probe_finetune, kept on validation; rec/starts.py). "
             "*Gap closed*: the share of the test-RMSE gap from `recpie_r0` to `ideal` that the "
             "rung closes. Selection uses validation RMSE only.", "",
             "| rung | explanation texts | start | RMSE (stars) | per seed | valid RMSE (unit) | gap closed |",
             "|---|---|---|---:|---|---:|---:|"]
    for row in ladder:
        says = _RUNG_SAYS.get(row["name"], "the LLM's explanations after PIE round " + row["name"][len("recpie_r"):])
        seeds = ", ".join(f"{x:.3f}" for x in row["per_seed"])
        lines.append(f"| {row['name']} | {says} | {row.get('start') or 'n/a'} | {row['rmse']:.4f} ± "
                     f"{row['rmse_std']:.4f} | {seeds} | "
                     f"{_fmt(row['valid_rmse_unit'], 4)} | {_pct(row['gap_closed'])} |")
    return lines


def _pie_markdown(pie: dict[str, dict]) -> list[str]:
    if not pie:
        return []
    lines = ["## The PIE update per round", "",
             "Mean reward (Eq. 4, on the sampled training pairs) over the first and the last quarter of the "
             "round's steps (the curve is in `ladder.png`): each step draws other pairs, so this moves with the "
             "draw. *Same pairs*: the first step's batch sampled again with its seed after the last step, "
             "reward before -> after, the change ± its standard error: only the policy differs.", "",
             "| round | steps | reward first | reward last | change | same pairs before -> after | change ± se "
             "| clipped | KL to reference | ended on their own |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, p in pie.items():
        r = p.get("readout") or {}
        same = (f"{r['before']:.4f} -> {r['after']:.4f} | {r['after'] - r['before']:+.4f} ± {_fmt(r['diff_se'], 4)}"
                if r else "- | -")
        lines.append(f"| {name} | {p['steps']} | {_fmt(p['reward_first'], 4)} | {_fmt(p['reward_last'], 4)} | "
                     f"{p['reward_last'] - p['reward_first']:+.4f} | {same} | {_fmt(p.get('clipped_frac'))} | "
                     f"{_fmt(p.get('kl_ref'), 4)} | {_fmt(p.get('ended_frac'))} |")
    return lines


def report_markdown(results, compared, best, valid, ladder, paired, pie, quality, attention, profile,
                    test_rows: int) -> str:
    lines = [f"# RecPIE evaluation ({profile.name} profile)", "",
             f"`recpie` is round {best}, the PIE round (k >= 1) with the lowest validation RMSE "
             "(" + ", ".join(f"r{k}: {v:.4f}" for k, v in valid.items()) + ", unit scale). "
             "`recpie_r0` has no explanations; `explanation_only` reads explanations of the LLM "
             "without PIE updates; `recpie_no_expl` is Ablation 1 (learned explanation tokens); "
             "`llm_direct` asks the LLM for the rating.", "",
             f"**{test_rows} test rows.** Differences smaller than the paired intervals below are noise; "
             "with a few hundred rows a single model's RMSE has a standard error of several hundredths of a star.",
             "", results_markdown(results).rstrip(), "",
             f"Improvement of `{REFERENCE}` over the best baseline (paper Table 2; positive = RecPIE better):", "",
             "| metric | recpie | best baseline | its value | improvement |", "|---|---:|---|---:|---:|",
             *[f"| {_METRIC_LABEL[r['metric']]} | {_fmt(r['reference'])} | {r['best_other'] or 'n/a'} | "
               f"{_fmt(r['best_other_value'])} | {r['improvement_pct']:+.2f}% |"
               for r in improvement_table(compared, REFERENCE)],
             "", "## Paired comparisons (bootstrap over test rows)", "", paired_markdown(paired, REFERENCE).rstrip(),
             "", *_ladder_markdown(ladder), "", *_pie_markdown(pie), "",
             "## Explanation quality (test rows)", "",
             "Coverage: share of the aspects that truly drove a rating (synthetic truth) that the positive "
             "(liked aspects) or negative (disliked aspects) explanation names. Similarity: cosine between "
             "the positive explanation and the user's review. Cut: share of explanations (all rows) that hit "
             "the token cap and were trimmed back to their last whole sentence or word.", "",
             "| explanations | coverage pos | coverage neg | similarity to review | words (pos) | cut at cap | "
             "flagged |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, q in quality.items():
        lines.append(f"| {name} | {_fmt(q.get('coverage_pos'))} | {_fmt(q.get('coverage_neg'))} | "
                     f"{_fmt(q.get('similarity_to_review'))} | {_fmt(q.get('pos_words'), 1)} | "
                     f"{_pct(q.get('cut_at_cap_share', math.nan))} | {_pct(q.get('flagged_share', math.nan))} |")
    lines += ["", "## Attention on the explanation tokens (paper Fig. 9, seed 0, test rows)", "",
              "| round | rated >= 4: pos | rated >= 4: neg | rated < 4: pos | rated < 4: neg | pos: high - low |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, a in attention.items():
        diff = a["positive"]["pos"] - a["negative"]["pos"]
        lines.append(f"| {name} | {_fmt(a['positive']['pos'])} | {_fmt(a['positive']['neg'])} | "
                     f"{_fmt(a['negative']['pos'])} | {_fmt(a['negative']['neg'])} | {diff:+.3f} |")
    return "\n".join(lines) + "\n"


def plot_ladder(ladder: list[dict], pie: dict[str, dict], path_png: Path) -> Path:
    """Left: the ladder's test RMSE per rung (seeds as dots). Right: the PIE reward per step, per round."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_l, ax_r = fig.subplots(1, 2, width_ratios=[3, 2])
    names = [row["name"] for row in ladder]
    ax_l.barh(range(len(names)), [row["rmse"] for row in ladder], color="tab:blue", alpha=0.6)
    for i, row in enumerate(ladder):
        ax_l.plot(row["per_seed"], [i] * len(row["per_seed"]), "k.", ms=4)
    ax_l.set_yticks(range(len(names)), names)
    ax_l.invert_yaxis()
    values = [x for row in ladder for x in row["per_seed"]]
    if values:
        lo, hi = min(values), max(values)
        ax_l.set_xlim(lo - 0.2 * (hi - lo + 1e-3), hi + 0.1 * (hi - lo + 1e-3))
    ax_l.set_xlabel("test RMSE (1-5 stars), bars: mean over seeds")
    ax_l.set_title("Explanation ladder")
    for name, p in pie.items():
        ax_r.plot(range(1, len(p["reward"]) + 1), p["reward"], marker=".", label=name)
    ax_r.set_xlabel("PIE step")
    ax_r.set_ylabel("mean reward (Eq. 4)")
    ax_r.set_title("PIE reward per step")
    if pie:
        ax_r.legend()
    ax_r.grid(alpha=0.3)
    return atomic_write(Path(path_png), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
