"""The pipeline's steps, from files to files: what each Dagster asset calls, and what a
notebook calls to re-run one step. Every function reads its inputs from a ``RecpieHome``,
writes its outputs atomically, and returns a small summary (numbers for asset metadata).

Outputs, per step:
    recommender_r{k}/, explanation_only/,  models/<name>/seed<s>/ checkpoints, fit.json,
    text_candidate/, text_prompt/, ideal/  test_predictions.parquet
    lora_adapter_r{k}/                      models/<name>/ (Explainer.save), pie.json
    explanations_r{k}                       warehouse/explanations_r{k}.parquet
    baselines, llm_direct                   warehouse/<name>.parquet (test predictions)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch

from recpie_core.data.batches import RatingData, RatingTensors, load_rating_data
from recpie_core.data.context import KEY
from recpie_core.explain.direct import direct_predict
from recpie_core.explain.explainer import Explainer
from recpie_core.explain.ladder import LADDER, find_review_truth, ladder_texts
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.explain.text_encoder import LLMHiddenEncoder, SentenceEncoder, TextEncoder
from recpie_core.io import atomic_write, scan_table, write_parquet_atomic
from recpie_core.loop import (
    RecStepResult,
    align,
    explain_step,
    explanation_embeddings,
    pie_step,
    rec_step,
    with_explanations,
)
from recpie_core.paths import RecpieHome
from recpie_core.profiles import Profile
from recpie_core.rec.checkpoint import load_checkpoint, save_checkpoint
from recpie_core.rec.evaluate import evaluate_model
from recpie_core.rec.recpie_dnn import RecPIEDNN
from recpie_core.rec.registry import model_entry
from recpie_core.tracking import NullTracker, PrefixTracker, Tracker

log = logging.getLogger(__name__)
PREDICTIONS = "test_predictions.parquet"


@dataclass
class Inputs:
    """The split, encoded, plus the tables prompts need."""

    split: pl.DataFrame
    places: pl.DataFrame
    data: RatingData


def load_inputs(home: RecpieHome, profile: Profile) -> Inputs:
    split = pl.read_parquet(home.table("user_temporal_split"))
    places = scan_table(home.table("raw_places")).select(
        "place_id", "name", "description", "category").collect()
    return Inputs(split, places, load_rating_data(split, places, profile.split.hist_len))


def llm_cache(home: RecpieHome) -> Path:
    return home.models / "llm"


def make_encoder(home: RecpieHome, profile: Profile, explainer: Explainer | None = None) -> TextEncoder:
    """The sentence encoder of the explanations (cached on disk by text hash)."""
    if profile.encoder == "llm":
        if explainer is None:
            raise ValueError("encoder 'llm' (Ablation 3) needs the explainer")
        return LLMHiddenEncoder(explainer)
    return SentenceEncoder(profile.encoder or None, cache_file=home.models / "text_encoder_cache.safetensors")


def explanation_dim(home: RecpieHome, profile: Profile) -> int:
    """Size of the explanation embeddings the recommender reads."""
    if profile.encoder == "llm":  # Ablation 3: the LLM's hidden size
        from recpie_core.explain.llm import load_causal_lm
        model, _ = load_causal_lm(profile.llm, llm_cache(home))
        return int(model.config.hidden_size)
    return make_encoder(home, profile).dim


# --- recommender rounds ------------------------------------------------------------------------

def save_round(folder: Path, result: RecStepResult, test: RatingTensors) -> Path:
    """Per-seed checkpoints, fit summaries and test predictions of one recommender step."""
    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        fits = {}
        for seed, fit in result.fits.items():
            save_checkpoint(fit.model, "recpie", fit.model.config, tmp / f"seed{seed}")
            fits[str(seed)] = {"best_epoch": fit.best_epoch, "valid": fit.valid, "history": fit.history}
        (tmp / "fit.json").write_text(json.dumps({"name": result.test.name, "fits": fits}, indent=1))
        predictions_frame(result.test.name, dict(zip(result.test.seeds, result.test.predictions)),
                          test).write_parquet(tmp / PREDICTIONS)
    return atomic_write(folder, write)


def predictions_frame(name: str, per_seed: dict[int, torch.Tensor], test: RatingTensors) -> pl.DataFrame:
    """Test predictions (unit scale) of model ``name``: one row per (seed, test row)."""
    return pl.concat([test.keys.with_columns(pl.lit(name).alias("model"), pl.lit(seed, dtype=pl.Int64).alias("seed"),
                                             pl.Series("prediction", p.numpy().astype("float32")))
                      for seed, p in per_seed.items()])


def load_round(folder: Path, seed: int) -> RecPIEDNN:
    return load_checkpoint(folder / f"seed{seed}")


def round_states(folder: Path, seeds) -> dict[int, dict[str, torch.Tensor]]:
    return {s: load_round(folder, s).state_dict() for s in seeds}


def _round_summary(result: RecStepResult, seconds: float) -> dict:
    return {"valid_rmse_unit": result.valid_rmse, "test_rmse_stars": result.test.mean("rmse"),
            "test_mae_stars": result.test.mean("mae"), "test_auc": result.test.mean("auc"),
            "seeds": len(result.fits), "best_epochs": [f.best_epoch for f in result.fits.values()],
            "seconds": round(seconds, 1)}


def train_recommender_r0(home: RecpieHome, profile: Profile, tracker: Tracker = NullTracker()) -> dict:
    """The recommender before any explanation (constant explanation tokens): round 0."""
    t0, inputs = time.perf_counter(), load_inputs(home, profile)
    result = rec_step(inputs.data, "recpie_r0", profile.fit, profile.seeds,
                      overrides={"expl_dim": explanation_dim(home, profile)}, tracker=tracker)
    save_round(home.models / "recommender_r0", result, inputs.data.test)
    return _round_summary(result, time.perf_counter() - t0)


def train_recommender_round(home: RecpieHome, profile: Profile, k: int, tracker: Tracker = NullTracker()) -> dict:
    """recommender_r{k}: trained on explanations_r{k}, warm-started from recommender_r{k-1}."""
    t0, inputs = time.perf_counter(), load_inputs(home, profile)
    table = pl.read_parquet(home.table(f"explanations_r{k}"))
    data = with_explanations(inputs.data, table)
    init = round_states(home.models / f"recommender_r{k - 1}", profile.seeds)
    result = rec_step(data, f"recpie_r{k}", profile.fit, profile.seeds, init_states=init,
                      overrides={"expl_dim": data.train.pos_emb.shape[1]}, tracker=tracker)
    save_round(home.models / f"recommender_r{k}", result, data.test)
    return _round_summary(result, time.perf_counter() - t0)


# --- explainer rounds --------------------------------------------------------------------------

def load_explainer(home: RecpieHome, profile: Profile, k: int) -> Explainer:
    """The explainer after round ``k`` (k = 0: fresh LoRA adapters, which start as the identity)."""
    if k == 0:
        return Explainer.create(profile.llm, llm_cache(home), seed=profile.loop.seed)
    return Explainer.load(home.models / f"lora_adapter_r{k}", llm_cache(home))


def update_lora(home: RecpieHome, profile: Profile, k: int, tracker: Tracker = NullTracker()) -> dict:
    """lora_adapter_r{k}: the PIE update of round k against the frozen recommender_r{k-1}."""
    inputs = load_inputs(home, profile)
    explainer = load_explainer(home, profile, k - 1)
    recommender = load_round(home.models / f"recommender_r{k - 1}", profile.seeds[0])
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    encoder = make_encoder(home, profile, explainer)
    stats = pie_step(explainer, recommender, inputs.data, prompts, encoder, profile.pie, profile.loop.pie_pairs,
                     seed=profile.loop.seed + k, tracker=tracker, step_offset=(k - 1) * profile.pie.steps)
    folder = explainer.save(home.models / f"lora_adapter_r{k}")
    (folder / "pie.json").write_text(json.dumps({"steps": stats.steps, "seconds": stats.seconds,
                                                 "n_problems": stats.n_problems, "history": stats.history}, indent=1))
    _save_cache(encoder)
    last = stats.history[-1] if stats.history else {}
    return {"steps": stats.steps, "mean_reward": stats.mean_reward, "seconds": round(stats.seconds, 1),
            **{f"last_{k_}": v for k_, v in last.items() if k_ in ("reward_mean", "clipped_frac", "log_ratio_mean")}}


def _save_cache(encoder: TextEncoder) -> None:
    if isinstance(encoder, SentenceEncoder):
        encoder.save_cache()


def generate_explanations(home: RecpieHome, profile: Profile, k: int, out_name: str | None = None,
                          explainer_round: int | None = None, soft_prompt_round: int | None = None) -> dict:
    """explanations_r{k}: both explanations for every row, by the explainer after round k,
    soft prompts from recommender_r{k-1}."""
    t0, inputs = time.perf_counter(), load_inputs(home, profile)
    explainer = load_explainer(home, profile, k if explainer_round is None else explainer_round)
    recommender = load_round(home.models / f"recommender_r{k - 1 if soft_prompt_round is None else soft_prompt_round}",
                             profile.seeds[0])
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    encoder = make_encoder(home, profile, explainer)
    table = explain_step(explainer, recommender, inputs.data, prompts, encoder, profile.loop, progress=True)
    out = home.table(out_name or f"explanations_r{k}")
    write_parquet_atomic(table, out)
    sample = table.filter(pl.col("split") == "test").head(20).select("user_id", "place_id", "pos_text", "neg_text")
    write_parquet_atomic(sample, home.reports / f"{out.stem}_sample.parquet")  # a look at what the LLM wrote
    _save_cache(encoder)
    return {"rows": table.height, "flagged": int((table["problems"] != "").sum()),
            "mean_pos_chars": float(table["pos_text"].str.len_chars().mean()),
            "seconds": round(time.perf_counter() - t0, 1)}


def explanation_only(home: RecpieHome, profile: Profile, tracker: Tracker = NullTracker()) -> dict:
    """The ``explanation_only`` variant: explanations without any PIE update (round-0 explainer,
    soft prompts from recommender_r0), then the recommender trained on them, warm from r0."""
    summary = generate_explanations(home, profile, 1, out_name="explanations_explanation_only",
                                    explainer_round=0, soft_prompt_round=0)
    inputs = load_inputs(home, profile)
    data = with_explanations(inputs.data, pl.read_parquet(home.table("explanations_explanation_only")))
    result = rec_step(data, "explanation_only", profile.fit, profile.seeds,
                      init_states=round_states(home.models / "recommender_r0", profile.seeds),
                      overrides={"expl_dim": data.train.pos_emb.shape[1]}, tracker=tracker)
    save_round(home.models / "explanation_only", result, data.test)
    return {**_round_summary(result, summary["seconds"]), "flagged": summary["flagged"]}


def explanation_ladder(home: RecpieHome, profile: Profile, truth_dir: Path | None = None,
                       tracker: Tracker = NullTracker()) -> dict:
    """The ladder's direct-text rungs (``explain.ladder``): each rung's texts embedded by the
    explanations' encoder, the recommender trained on them warm from recommender_r0, saved as
    models/<rung>/ like a round. ``ideal`` only where ``truth_dir`` holds the synthetic truth."""
    inputs = load_inputs(home, profile)
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    truth_file = find_review_truth(truth_dir)
    truth = pl.read_parquet(truth_file) if truth_file is not None else None
    encoder = make_encoder(home, profile, load_explainer(home, profile, 0) if profile.encoder == "llm" else None)
    init = round_states(home.models / "recommender_r0", profile.seeds)
    summary = {}
    for rung in LADDER:
        if rung == "ideal" and truth is None:
            log.info("no synthetic truth under %s: the ideal rung is skipped", truth_dir)
            continue
        t0 = time.perf_counter()
        texts = ladder_texts(rung, prompts, truth)
        neg = texts["neg_text"]
        pos_emb, neg_emb = explanation_embeddings(encoder, texts["pos_text"].to_list(),
                                                  None if neg.null_count() else neg.to_list())
        table = texts.select(*KEY).with_columns(pl.Series("pos_emb", pos_emb.numpy()),
                                                pl.Series("neg_emb", neg_emb.numpy()))
        data = with_explanations(inputs.data, table)
        result = rec_step(data, rung, profile.fit, profile.seeds, init_states=init,
                          overrides={"expl_dim": pos_emb.shape[1]}, tracker=PrefixTracker(tracker, f"{rung}/"))
        save_round(home.models / rung, result, data.test)
        summary[rung] = _round_summary(result, time.perf_counter() - t0)
        log.info("ladder %s: valid rmse %.4f (unit), test rmse %.4f (stars)", rung, result.valid_rmse,
                 result.test.mean("rmse"))
    _save_cache(encoder)
    return summary


# --- baselines ---------------------------------------------------------------------------------

def run_baselines(home: RecpieHome, profile: Profile, tracker: Tracker = NullTracker()) -> dict:
    """Every baseline of the profile, same split, same early stopping, same seeds."""
    for name in profile.baselines:  # an unknown name fails here, before any training
        model_entry(name)
    inputs = load_inputs(home, profile)
    frames, summary = [], {}
    for name in profile.baselines:
        t0 = time.perf_counter()
        overrides = {"expl_dim": 1} if name == "recpie_no_expl" else None  # ignores explanations
        result = evaluate_model(name, inputs.data, profile.seeds, profile.fit, overrides=overrides, tracker=tracker)
        frames.append(predictions_frame(name, dict(zip(result.seeds, result.predictions)), inputs.data.test))
        summary[name] = {"test_rmse_stars": result.mean("rmse"), "seconds": round(time.perf_counter() - t0, 1)}
        log.info("baseline %s: test rmse %.4f (stars)", name, result.mean("rmse"))
    write_parquet_atomic(pl.concat(frames), home.table("baselines"))
    return summary


def run_llm_direct(home: RecpieHome, profile: Profile) -> dict:
    """The paper's direct-recommendation baseline: the base LLM asked for the rating of each test row."""
    inputs = load_inputs(home, profile)
    explainer = load_explainer(home, profile, 0)
    test = inputs.data.test
    prompts = align(build_prompts(inputs.split, inputs.places, profile.prompt), test)["direct_prompt"].to_list()
    fallback = float(inputs.data.train.rating.mean())
    with explainer.model.disable_adapter():
        result = direct_predict(explainer, prompts, fallback, profile.direct)
    write_parquet_atomic(predictions_frame("llm_direct", {0: result.pred_unit}, test), home.table("llm_direct"))
    return {"rows": len(prompts), "fallbacks": result.n_fallback, "fallback_unit": fallback}
