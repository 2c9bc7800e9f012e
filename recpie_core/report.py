"""The evaluation report: RecPIE per round, its variants and every baseline on the same test
rows, plus explanation quality and the five-token attention readout.

Metrics are recomputed here from the stored test predictions (unit scale) of every model,
so all rows of the table come from one function. ``recpie`` is the round k >= 1 with the
lowest mean validation RMSE over seeds: the test split never picks anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from recpie_core.data.batches import to_unit
from recpie_core.data.context import KEY
from recpie_core.explain.ladder import LADDER, find_review_truth
from recpie_core.explain.quality import aspect_coverage, semantic_similarity
from recpie_core.io import atomic_write, scan_table
from recpie_core.loop import with_explanations
from recpie_core.profiles import Profile
from recpie_core.rec.evaluate import ModelResult, attention_readout
from recpie_core.rec.paired import compare_to_reference, paired_json
from recpie_core.rec.render import finite, plot_results, results_json
from recpie_core.report_markdown import REFERENCE, plot_ladder, report_markdown
from recpie_core.store import (
    Caches,
    fit_start,
    fit_valid_rmse,
    has_predictions,
    is_round_model,
    load_inputs,
    load_pie_stats,
    load_predictions,
    load_round,
    make_encoder,
    round_model,
)


@dataclass(frozen=True)
class ReportInputs:
    """What the report reads: one path per upstream asset."""

    split: Path
    places: Path
    reviews: Path
    recommenders: list[Path]  # fit folders of rounds 0..R
    explanations: list[Path]  # tables of rounds 1..R
    adapters: list[Path]  # explainers of rounds 1..R (their pie.json)
    explanation_only: Path  # a fit folder, missing when the run left the variant out (--select)
    variant_explanations: Path  # the explanation_only variant's table
    ladder: Path  # a fit folder per rung
    baselines: Path
    llm_direct: Path

    @property
    def rounds(self) -> int:
        return len(self.recommenders) - 1


def model_result(name: str, frame: pl.DataFrame) -> tuple[ModelResult, torch.Tensor]:
    """A ModelResult from one model's prediction rows (all seeds), and the true ratings (unit
    scale) of its rows; rows in key order, the same order for every model."""
    per_seed = {}
    y_true = None
    for (seed,), rows in frame.sort([*KEY]).group_by("seed", maintain_order=True):
        rows = rows.sort([*KEY])
        per_seed[int(seed)] = torch.from_numpy(rows["prediction"].to_numpy().copy())
        y = torch.from_numpy(to_unit(rows["rating"].cast(pl.Float32).to_numpy()))
        if y_true is not None and not torch.equal(y, y_true):
            raise ValueError(f"{name}: seeds were evaluated on different test rows")
        y_true = y
    return ModelResult.from_predictions(name, dict(sorted(per_seed.items())), y_true), y_true


def is_recpie_variant(name: str) -> bool:
    """RecPIE's own rounds, variants and ladder rungs: compared with RecPIE, never its baselines."""
    return is_round_model(name) or name in ("explanation_only", *LADDER)


def ladder_rows(results: dict[str, ModelResult], valid: dict[str, float], rounds: int,
                starts: dict[str, str | None] | None = None) -> list[dict]:
    """The explanation ladder (``explain.ladder``) in order, with each rung's share of the gap
    from ``recpie_r0`` to ``ideal`` (test RMSE in stars, mean over seeds) that it closes, and how
    its recommender started from ``recpie_r0``'s (``starts``, by name; ``rec.starts``)."""
    names = ["recpie_r0", "text_candidate", "text_prompt", "explanation_only",
             *[round_model(k) for k in range(1, rounds + 1)], REFERENCE, "ideal"]
    floor = results["recpie_r0"].mean("rmse")
    top = results["ideal"].mean("rmse") if "ideal" in results else math.nan
    rows = []
    for n in names:
        if n not in results:
            continue
        r = results[n]
        gap = (floor - r.mean("rmse")) / (floor - top) if math.isfinite(top) and floor != top else math.nan
        rows.append({"name": n, "rmse": r.mean("rmse"), "rmse_std": r.std("rmse"),
                     "per_seed": [float(x) for x in r.values("rmse")], "mae": r.mean("mae"), "auc": r.mean("auc"),
                     "valid_rmse_unit": valid.get(n, math.nan), "gap_closed": gap,
                     "start": (starts or {}).get(n)})
    return rows


def pie_history(adapters: list[Path]) -> dict[str, dict]:
    """Per round: the PIE update's reward over its steps (first and last quarter), the same pairs'
    reward before and after it (``readout``, empty where not taken) and its other statistics."""
    out = {}
    for k, folder in enumerate(adapters, start=1):
        saved = load_pie_stats(folder)
        hist = saved.get("history", [])
        if not hist:
            continue
        q = max(1, len(hist) // 4)
        mean = lambda rows, key: sum(h.get(key, math.nan) for h in rows) / len(rows)  # noqa: E731
        out[round_model(k)] = {"steps": len(hist), "reward": [h["reward_mean"] for h in hist],
                               "reward_first": mean(hist[:q], "reward_mean"),
                               "reward_last": mean(hist[-q:], "reward_mean"),
                               **{key: mean(hist, key) for key in ("clipped_frac", "kl_ref", "ended_frac")
                                  if key in hist[0]},
                               "readout": saved.get("readout", {})}
    return out


def selected_round(recommenders: list[Path]) -> tuple[int, dict[int, float]]:
    """The round k >= 1 with the lowest mean validation RMSE (unit scale), and all of them."""
    valid = {k: fit_valid_rmse(folder) for k, folder in enumerate(recommenders)}
    best = min((k for k in valid if k >= 1), key=valid.get)
    return best, valid


def explanation_quality(explanations: pl.DataFrame, reviews: pl.DataFrame, truth_dir: Path | None,
                        encoder) -> dict[str, float]:
    """On test rows of an explanations table: coverage of the true liked (pos) / disliked (neg)
    aspects, and the similarity of the positive explanation to the user's own review (``reviews``:
    key and text)."""
    table = explanations.filter(pl.col("split") == "test").join(reviews, on=list(KEY), how="left")
    out = {"rows": table.height,
           "similarity_to_review": semantic_similarity(encoder, table["pos_text"].to_list(), table["text"].to_list())}
    # the synthetic generator's per-review truth (truth-<Region>.parquet), when the data has one
    truth_file = find_review_truth(truth_dir)
    if truth_file is not None:
        out |= truth_coverage(table, pl.read_parquet(truth_file))
    return out


def truth_coverage(explanations: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float]:
    """Coverage of the true liked (pos) / disliked (neg) aspects by the explanations of these rows
    (``truth``: the synthetic per-review truth, key and aspect lists); no neg where there are no negatives."""
    t = explanations.join(truth.select(*KEY, "liked_aspects", "disliked_aspects"), on=list(KEY), how="inner")
    out = {"coverage_pos": aspect_coverage(t["pos_text"].to_list(), t["liked_aspects"].to_list())}
    if t["neg_text"].null_count() < t.height:
        out["coverage_neg"] = aspect_coverage(t["neg_text"].fill_null("").to_list(), t["disliked_aspects"].to_list())
    return out


def explanation_stats(table: pl.DataFrame) -> dict[str, float]:
    """How the explanations of one table read (all rows): length, share cut at the token cap, share flagged."""
    out = {"rows_all": table.height, "pos_words": float(table["pos_text"].str.split(" ").list.len().mean()),
           "flagged_share": float((table["problems"] != "").mean())}
    if "pos_cut" in table.columns:  # explain_step records whether each text hit the token cap
        cut = table["pos_cut"] if table["neg_cut"].null_count() else pl.concat([table["pos_cut"], table["neg_cut"]])
        out["cut_at_cap_share"] = float(cut.cast(pl.Float64).mean())
    return out


def _fit_folders(inputs: ReportInputs) -> dict[str, Path]:
    """Every fit folder the report reads, by model name: the rounds, then the variants that ran."""
    folders = {round_model(k): folder for k, folder in enumerate(inputs.recommenders)}
    variants = {"explanation_only": inputs.explanation_only} | {rung: inputs.ladder / rung for rung in LADDER}
    return folders | {n: folder for n, folder in variants.items() if has_predictions(folder)}


def build_report(inputs: ReportInputs, reports: Path, profile: Profile, cache: Caches,
                 truth_dir: Path | None = None) -> dict:
    """Write ``evaluation.{json,md,png}`` and ``ladder.png`` into ``reports``; returns the JSON document."""
    rounds = inputs.rounds
    best, valid = selected_round(inputs.recommenders)
    folders = _fit_folders(inputs)
    frames = {name: load_predictions(folder) for name, folder in folders.items()}
    for (name,), rows in pl.read_parquet(inputs.baselines).group_by("model", maintain_order=True):
        frames[name] = rows
    frames["llm_direct"] = pl.read_parquet(inputs.llm_direct)

    results, y_true = {}, None
    for name, frame in {REFERENCE: frames[round_model(best)], **frames}.items():
        results[name], y = model_result(name, frame)
        if y_true is not None and not torch.equal(y, y_true):
            raise ValueError(f"{name} was evaluated on other test rows than {REFERENCE}")
        y_true = y
    # Table 2's comparison: RecPIE against the baselines, not against its own rounds and variants
    compared = {n: r for n, r in results.items() if n == REFERENCE or not is_recpie_variant(n)}
    valid_by_name = {name: fit_valid_rmse(folder) for name, folder in folders.items()}
    valid_by_name[REFERENCE] = valid[best]
    starts = {name: fit_start(folder) for name, folder in folders.items()}
    starts[REFERENCE] = starts[round_model(best)]
    ladder = ladder_rows(results, valid_by_name, rounds, starts)
    # the selected round is RecPIE itself: comparing it with its own copy says nothing
    paired = compare_to_reference({n: r for n, r in results.items() if n != round_model(best)}, REFERENCE,
                                  y_true, n_boot=profile.report_bootstrap)

    # similarity to the review is measured in one sentence space, whatever the recommender reads
    encoder = make_encoder("" if profile.encoder == "llm" else profile.encoder, cache)
    data = load_inputs(inputs.split, inputs.places, profile.split.hist_len).data
    tables = {round_model(k): path for k, path in enumerate(inputs.explanations, start=1)}
    if "explanation_only" in folders:
        tables["explanation_only"] = inputs.variant_explanations
    explanations = {name: pl.read_parquet(path) for name, path in tables.items()}  # each read once
    reviews = scan_table(inputs.reviews).select(*KEY, "text").collect()
    quality = {name: explanation_quality(table, reviews, truth_dir, encoder) | explanation_stats(table)
               for name, table in explanations.items()}
    attention = {}
    for k in range(1, rounds + 1):
        name = round_model(k)
        attention[name] = attention_readout(load_round(inputs.recommenders[k], profile.seeds[0]),
                                            with_explanations(data, explanations[name]).test)
    pie = pie_history(inputs.adapters)

    doc = results_json(results)
    doc["improvement"] = results_json(compared, REFERENCE)["improvement"]
    doc |= {"reference": REFERENCE, "profile": profile.name, "selected_round": best,
            "valid_rmse_unit_by_round": {str(k): v for k, v in valid.items()},
            "ladder": _finite(ladder), "paired": paired_json(paired), "pie": _finite(pie),
            "explanation_quality": _finite(quality), "attention": attention,
            "test_rows": len(data.test), "train_rows": len(data.train)}
    markdown = report_markdown(results, compared, best, valid, ladder, paired, pie, quality, attention, profile,
                               len(data.test))
    atomic_write(reports / "evaluation.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=1) + "\n"))
    atomic_write(reports / "evaluation.md", lambda tmp: tmp.write_text(markdown))
    plot_results(results, reports / "evaluation.png")
    plot_ladder(ladder, pie, reports / "ladder.png")
    return doc


def _finite(d):
    if isinstance(d, dict):
        return {k: _finite(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_finite(v) for v in d]
    return finite(d) if isinstance(d, float) else d
