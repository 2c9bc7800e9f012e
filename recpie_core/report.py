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
from recpie_core.explain.ladder import LADDER, find_review_truth
from recpie_core.explain.quality import aspect_coverage, semantic_similarity
from recpie_core.io import atomic_write, scan_table
from recpie_core.loop import with_explanations
from recpie_core.paths import RecpieHome
from recpie_core.profiles import Profile
from recpie_core.rec.evaluate import (
    ModelResult,
    attention_readout,
    plot_results,
    results_json,
)
from recpie_core.rec.paired import compare_to_reference, paired_json
from recpie_core.report_markdown import REFERENCE, plot_ladder, report_markdown
from recpie_core.steps import PREDICTIONS, load_inputs, load_round, make_encoder


def _result(name: str, frame: pl.DataFrame) -> tuple[ModelResult, torch.Tensor]:
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
    return name.startswith("recpie_r") or name in ("explanation_only", *LADDER)


def ladder_rows(results: dict[str, ModelResult], valid: dict[str, float], rounds: int) -> list[dict]:
    """The explanation ladder (``explain.ladder``) in order, with each rung's share of the gap
    from ``recpie_r0`` to ``ideal`` (test RMSE in stars, mean over seeds) that it closes."""
    names = ["recpie_r0", "text_candidate", "text_prompt", "explanation_only",
             *[f"recpie_r{k}" for k in range(1, rounds + 1)], REFERENCE, "ideal"]
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
                     "valid_rmse_unit": valid.get(n, math.nan), "gap_closed": gap})
    return rows


def pie_history(home: RecpieHome, rounds: int) -> dict[str, dict]:
    """Per round: the PIE update's reward over its steps (first and last quarter) and its other statistics."""
    out = {}
    for k in range(1, rounds + 1):
        path = home.models / f"lora_adapter_r{k}" / "pie.json"
        if not path.is_file():
            continue
        hist = json.loads(path.read_text())["history"]
        if not hist:
            continue
        q = max(1, len(hist) // 4)
        mean = lambda rows, key: sum(h.get(key, math.nan) for h in rows) / len(rows)  # noqa: E731
        out[f"recpie_r{k}"] = {"steps": len(hist), "reward": [h["reward_mean"] for h in hist],
                               "reward_first": mean(hist[:q], "reward_mean"),
                               "reward_last": mean(hist[-q:], "reward_mean"),
                               **{key: mean(hist, key) for key in ("clipped_frac", "kl_ref", "ended_frac")
                                  if key in hist[0]}}
    return out


def fit_valid_rmse(folder: Path) -> float:
    """Mean validation RMSE (unit scale) over seeds of a saved recommender step."""
    fits = json.loads((folder / "fit.json").read_text())["fits"]
    return sum(f["valid"]["rmse"] for f in fits.values()) / len(fits)


def selected_round(home: RecpieHome, rounds: int) -> tuple[int, dict[int, float]]:
    """The round k >= 1 with the lowest mean validation RMSE (unit scale), and all of them."""
    valid = {k: fit_valid_rmse(home.models / f"recommender_r{k}") for k in range(0, rounds + 1)}
    best = min((k for k in valid if k >= 1), key=valid.get)
    return best, valid


def explanation_quality(home: RecpieHome, explanations: pl.DataFrame, truth_dir: Path | None,
                        encoder) -> dict[str, float]:
    """On test rows of an explanations table: coverage of the true liked (pos) / disliked (neg)
    aspects, and the similarity of the positive explanation to the user's own review."""
    table = explanations.filter(pl.col("split") == "test")
    reviews = scan_table(home.table("raw_reviews")).select(*KEY, "text").collect()
    table = table.join(reviews, on=list(KEY), how="left")
    out = {"rows": table.height,
           "similarity_to_review": semantic_similarity(encoder, table["pos_text"].to_list(), table["text"].to_list())}
    # the synthetic generator's per-review truth (truth-<Region>.parquet), when the data has one
    truth_file = find_review_truth(truth_dir)
    if truth_file is not None:
        truth = pl.read_parquet(truth_file).select(*KEY, "liked_aspects", "disliked_aspects")
        t = table.join(truth, on=list(KEY), how="inner")
        out["coverage_pos"] = aspect_coverage(t["pos_text"].to_list(), t["liked_aspects"].to_list())
        if t["neg_text"].null_count() < t.height:
            out["coverage_neg"] = aspect_coverage(t["neg_text"].fill_null("").to_list(),
                                                  t["disliked_aspects"].to_list())
    return out


def explanation_stats(table: pl.DataFrame) -> dict[str, float]:
    """How the explanations of one table read (all rows): length, share cut at the token cap, share flagged."""
    out = {"rows_all": table.height, "pos_words": float(table["pos_text"].str.split(" ").list.len().mean()),
           "flagged_share": float((table["problems"] != "").mean())}
    if "pos_cut" in table.columns:  # explain_step records whether each text hit the token cap
        cut = table["pos_cut"] if table["neg_cut"].null_count() else pl.concat([table["pos_cut"], table["neg_cut"]])
        out["cut_at_cap_share"] = float(cut.cast(pl.Float64).mean())
    return out


def build_report(home: RecpieHome, profile: Profile, truth_dir: Path | None = None) -> dict:
    """Write ``reports/evaluation.{json,md,png}`` and ``reports/ladder.png``; returns the JSON document."""
    rounds = profile.rounds
    best, valid = selected_round(home, rounds)
    folders = {f"recpie_r{k}": home.models / f"recommender_r{k}" for k in range(rounds + 1)}
    folders |= {n: home.models / n for n in ("explanation_only", *LADDER) if (home.models / n / PREDICTIONS).is_file()}
    frames = {name: pl.read_parquet(folder / PREDICTIONS) for name, folder in folders.items()}
    baselines = pl.read_parquet(home.table("baselines"))
    for (name,), rows in baselines.group_by("model", maintain_order=True):
        frames[name] = rows
    frames["llm_direct"] = pl.read_parquet(home.table("llm_direct"))

    results, y_true = {}, None
    for name, frame in {REFERENCE: frames[f"recpie_r{best}"], **frames}.items():
        results[name], y = _result(name, frame)
        if y_true is not None and not torch.equal(y, y_true):
            raise ValueError(f"{name} was evaluated on other test rows than {REFERENCE}")
        y_true = y
    # Table 2's comparison: RecPIE against the baselines, not against its own rounds and variants
    compared = {n: r for n, r in results.items() if n == REFERENCE or not is_recpie_variant(n)}
    valid_by_name = {name: fit_valid_rmse(folder) for name, folder in folders.items()}
    valid_by_name[REFERENCE] = valid[best]
    ladder = ladder_rows(results, valid_by_name, rounds)
    # the selected round is RecPIE itself: comparing it with its own copy says nothing
    paired = compare_to_reference({n: r for n, r in results.items() if n != f"recpie_r{best}"}, REFERENCE,
                                  y_true, n_boot=profile.report_bootstrap)

    # similarity to the review is measured in one sentence space, whatever the recommender reads
    encoder = make_encoder(home, replace(profile, encoder="") if profile.encoder == "llm" else profile)
    inputs = load_inputs(home, profile)
    tables = {f"recpie_r{k}": f"explanations_r{k}" for k in range(1, rounds + 1)}
    if "explanation_only" in folders:  # a run may leave the variant out (--select)
        tables["explanation_only"] = "explanations_explanation_only"
    explanations = {name: pl.read_parquet(home.table(t)) for name, t in tables.items()}  # each read once
    quality = {name: explanation_quality(home, table, truth_dir, encoder) | explanation_stats(table)
               for name, table in explanations.items()}
    attention = {}
    for k in range(1, rounds + 1):
        data = with_explanations(inputs.data, explanations[f"recpie_r{k}"])
        attention[f"recpie_r{k}"] = attention_readout(load_round(home.models / f"recommender_r{k}", profile.seeds[0]),
                                                      data.test)
    pie = pie_history(home, rounds)

    doc = results_json(results)
    doc["improvement"] = results_json(compared, REFERENCE)["improvement"]
    doc |= {"reference": REFERENCE, "profile": profile.name, "selected_round": best,
            "valid_rmse_unit_by_round": {str(k): v for k, v in valid.items()},
            "ladder": _finite(ladder), "paired": paired_json(paired), "pie": _finite(pie),
            "explanation_quality": _finite(quality), "attention": attention,
            "test_rows": len(inputs.data.test), "train_rows": len(inputs.data.train)}
    markdown = report_markdown(results, compared, best, valid, ladder, paired, pie, quality, attention, profile,
                               len(inputs.data.test))
    reports = home.reports
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
    return None if isinstance(d, float) and not math.isfinite(d) else d
