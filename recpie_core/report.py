"""The evaluation report: RecPIE per round, its variants and every baseline on the same test
rows, plus explanation quality and the five-token attention readout.

Metrics are recomputed here from the stored test predictions (unit scale) of every model,
so all rows of the table come from one function. ``recpie`` is the round k >= 1 with the
lowest mean validation RMSE over seeds: the test split never picks anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch

from recpie_core.data.batches import to_unit
from recpie_core.data.context import KEY
from recpie_core.explain.quality import aspect_coverage, semantic_similarity
from recpie_core.io import atomic_write, scan_table
from recpie_core.loop import with_explanations
from recpie_core.paths import RecpieHome
from recpie_core.profiles import Profile
from recpie_core.rec.evaluate import (
    ModelResult,
    attention_readout,
    improvement_table,
    plot_results,
    results_json,
    results_markdown,
)
from recpie_core.steps import PREDICTIONS, load_inputs, load_round, make_encoder

REFERENCE = "recpie"


def _result(name: str, frame: pl.DataFrame) -> ModelResult:
    """A ModelResult from one model's prediction rows (all seeds)."""
    per_seed = {}
    y_true = None
    for (seed,), rows in frame.sort([*KEY]).group_by("seed", maintain_order=True):
        rows = rows.sort([*KEY])
        per_seed[int(seed)] = torch.from_numpy(rows["prediction"].to_numpy().copy())
        y = torch.from_numpy(to_unit(rows["rating"].cast(pl.Float32).to_numpy()))
        if y_true is not None and not torch.equal(y, y_true):
            raise ValueError(f"{name}: seeds were evaluated on different test rows")
        y_true = y
    return ModelResult.from_predictions(name, dict(sorted(per_seed.items())), y_true)


def selected_round(home: RecpieHome, rounds: int) -> tuple[int, dict[int, float]]:
    """The round k >= 1 with the lowest mean validation RMSE (unit scale), and all of them."""
    valid = {}
    for k in range(0, rounds + 1):
        fits = json.loads((home.models / f"recommender_r{k}" / "fit.json").read_text())["fits"]
        valid[k] = sum(f["valid"]["rmse"] for f in fits.values()) / len(fits)
    best = min((k for k in valid if k >= 1), key=valid.get)
    return best, valid


def explanation_quality(home: RecpieHome, profile: Profile, table_name: str, truth_dir: Path | None,
                        encoder) -> dict[str, float]:
    """On test rows: coverage of the true liked (pos) / disliked (neg) aspects, and the
    similarity of the positive explanation to the user's own review."""
    table = pl.read_parquet(home.table(table_name)).filter(pl.col("split") == "test")
    reviews = scan_table(home.table("raw_reviews")).select(*KEY, "text").collect()
    table = table.join(reviews, on=list(KEY), how="left")
    out = {"rows": table.height,
           "similarity_to_review": semantic_similarity(encoder, table["pos_text"].to_list(), table["text"].to_list())}
    # the synthetic generator's per-review truth (truth-<Region>.parquet), when the data has one
    truth_files = [p for p in sorted(truth_dir.glob("truth-*.parquet"))
                   if not p.name.startswith(("truth-places-", "truth-users-"))] if truth_dir else []
    if truth_files:
        truth_file = truth_files[0]
        truth = pl.read_parquet(truth_file).select(*KEY, "liked_aspects", "disliked_aspects")
        t = table.join(truth, on=list(KEY), how="inner")
        out["coverage_pos"] = aspect_coverage(t["pos_text"].to_list(), t["liked_aspects"].to_list())
        if t["neg_text"].null_count() < t.height:
            out["coverage_neg"] = aspect_coverage(t["neg_text"].fill_null("").to_list(),
                                                  t["disliked_aspects"].to_list())
    return out


def build_report(home: RecpieHome, profile: Profile, truth_dir: Path | None = None) -> dict:
    """Write ``reports/evaluation.{json,md,png}``; returns the JSON document."""
    rounds = profile.rounds
    best, valid = selected_round(home, rounds)
    frames = {f"recpie_r{k}": pl.read_parquet(home.models / f"recommender_r{k}" / PREDICTIONS)
              for k in range(rounds + 1)}
    frames["explanation_only"] = pl.read_parquet(home.models / "explanation_only" / PREDICTIONS)
    baselines = pl.read_parquet(home.table("baselines"))
    for (name,), rows in baselines.group_by("model", maintain_order=True):
        frames[name] = rows
    frames["llm_direct"] = pl.read_parquet(home.table("llm_direct"))

    results = {REFERENCE: _result(REFERENCE, frames[f"recpie_r{best}"])}
    results |= {name: _result(name, f) for name, f in frames.items()}
    # Table 2's comparison: RecPIE against the baselines, not against its own rounds and variants
    compared = {n: r for n, r in results.items()
                if n == REFERENCE or not (n.startswith("recpie_r") or n == "explanation_only")}

    # similarity to the review is measured in one sentence space, whatever the recommender reads
    encoder = make_encoder(home, replace(profile, encoder="") if profile.encoder == "llm" else profile)
    inputs = load_inputs(home, profile)
    quality, attention = {}, {}
    for k in range(1, rounds + 1):
        quality[f"recpie_r{k}"] = explanation_quality(home, profile, f"explanations_r{k}", truth_dir, encoder)
        data = with_explanations(inputs.data, pl.read_parquet(home.table(f"explanations_r{k}")))
        attention[f"recpie_r{k}"] = attention_readout(load_round(home.models / f"recommender_r{k}", profile.seeds[0]),
                                                      data.test)
    quality["explanation_only"] = explanation_quality(home, profile, "explanations_explanation_only", truth_dir,
                                                      encoder)

    doc = results_json(results)
    doc["improvement"] = results_json(compared, REFERENCE)["improvement"]
    doc |= {"reference": REFERENCE, "profile": profile.name, "selected_round": best,
            "valid_rmse_unit_by_round": {str(k): v for k, v in valid.items()},
            "explanation_quality": _finite(quality), "attention": attention,
            "test_rows": len(inputs.data.test), "train_rows": len(inputs.data.train)}
    markdown = _markdown(results, compared, best, valid, quality, attention, profile)
    reports = home.reports
    atomic_write(reports / "evaluation.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=1) + "\n"))
    atomic_write(reports / "evaluation.md", lambda tmp: tmp.write_text(markdown))
    plot_results(results, reports / "evaluation.png")
    return doc


def _finite(d):
    if isinstance(d, dict):
        return {k: _finite(v) for k, v in d.items()}
    return None if isinstance(d, float) and not math.isfinite(d) else d


_METRIC_LABEL = {"rmse": "RMSE (stars)", "mae": "MAE (stars)", "auc": "AUC"}


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def _markdown(results, compared, best, valid, quality, attention, profile) -> str:
    lines = [f"# RecPIE evaluation ({profile.name} profile)", "",
             f"`recpie` is round {best}, the round with the lowest validation RMSE "
             "(" + ", ".join(f"r{k}: {v:.4f}" for k, v in valid.items()) + ", unit scale). "
             "`recpie_r0` has no explanations; `explanation_only` reads explanations of the LLM "
             "without PIE updates; `recpie_no_expl` is Ablation 1 (learned explanation tokens); "
             "`llm_direct` asks the LLM for the rating.", "",
             results_markdown(results).rstrip(), "",
             f"Improvement of `{REFERENCE}` over the best baseline (paper Table 2; positive = RecPIE better):", "",
             "| metric | recpie | best baseline | its value | improvement |", "|---|---:|---|---:|---:|",
             *[f"| {_METRIC_LABEL[r['metric']]} | {_fmt(r['reference'])} | {r['best_other'] or 'n/a'} | "
               f"{_fmt(r['best_other_value'])} | {r['improvement_pct']:+.2f}% |"
               for r in improvement_table(compared, REFERENCE)],
             "",
             "## Explanation quality (test rows)", "",
             "Coverage: share of the aspects that truly drove a rating (synthetic truth) that the positive "
             "(liked aspects) or negative (disliked aspects) explanation names. Similarity: cosine between "
             "the positive explanation and the user's review.", "",
             "| explanations | coverage pos | coverage neg | similarity to review |", "|---|---:|---:|---:|"]
    for name, q in quality.items():
        lines.append(f"| {name} | {_fmt(q.get('coverage_pos'))} | {_fmt(q.get('coverage_neg'))} | "
                     f"{_fmt(q.get('similarity_to_review'))} |")
    lines += ["", "## Attention on the explanation tokens (paper Fig. 9, seed 0, test rows)", "",
              "| round | rated >= 4: pos | rated >= 4: neg | rated < 4: pos | rated < 4: neg |",
              "|---|---:|---:|---:|---:|"]
    for name, a in attention.items():
        lines.append(f"| {name} | {_fmt(a['positive']['pos'])} | {_fmt(a['positive']['neg'])} | "
                     f"{_fmt(a['negative']['pos'])} | {_fmt(a['negative']['neg'])} |")
    return "\n".join(lines) + "\n"
