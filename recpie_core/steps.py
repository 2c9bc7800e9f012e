"""The pipeline's steps, from files to files: what each Dagster asset calls, and what a
notebook calls to re-run one step. Every step takes the paths it reads and the path it
writes (what lives where: ``store``), writes atomically, and returns what it wrote with a
small summary (numbers for asset metadata). Recommender steps write fit folders, the
explainer step an explainer folder, the others one table."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from recpie_core import store
from recpie_core.data.align import align
from recpie_core.data.context import KEY
from recpie_core.explain.direct import direct_predict
from recpie_core.explain.engines import engine_version, open_engine
from recpie_core.explain.ladder import LADDER, find_review_truth, ladder_texts
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.explain.text_encoder import TextEncoder
from recpie_core.explain_parts import PartFolder, fingerprint
from recpie_core.io import write_parquet_atomic
from recpie_core.loop import (
    RecStepResult,
    explain_step,
    explanation_embeddings,
    pie_step,
    rec_step,
    with_explanations,
)
from recpie_core.profiles import Profile
from recpie_core.rec.evaluate import evaluate_model
from recpie_core.rec.registry import make_config, model_entry
from recpie_core.store import Caches, load_explainer, load_inputs, load_round, make_encoder, save_encoder_cache
from recpie_core.tracking import NullTracker, PrefixTracker, Tracker, model_params, model_tags, summary_metrics

log = logging.getLogger(__name__)


@dataclass
class Written:
    """What a step wrote (a table or a folder), and the numbers for its asset's metadata."""

    path: Path
    summary: dict


def explanation_dim(profile: Profile, cache: Caches) -> int:
    """Size of the explanation embeddings the recommender reads."""
    if profile.encoder == "llm":  # Ablation 3: the LLM's hidden size
        from recpie_core.explain.llm import load_causal_lm
        model, _ = load_causal_lm(profile.llm, cache.llm)
        return int(model.config.hidden_size)
    return make_encoder(profile.encoder, cache).dim


# --- recommender rounds ------------------------------------------------------------------------

def _round_summary(result: RecStepResult, seconds: float) -> dict:
    return {"valid_rmse_unit": result.valid_rmse, "test_rmse_stars": result.test.mean("rmse"),
            "test_mae_stars": result.test.mean("mae"), "test_auc": result.test.mean("auc"),
            "seeds": len(result.fits), "best_epochs": [f.best_epoch for f in result.fits.values()],
            "start": result.start, **{f"valid_rmse_unit_{s}": v for s, v in result.valid_by_start.items()},
            "seconds": round(seconds, 1)}


def train_recommender_r0(split: Path, places: Path, out: Path, profile: Profile, cache: Caches,
                         tracker: Tracker = NullTracker()) -> Written:
    """The recommender before any explanation (constant explanation tokens): round 0."""
    t0, inputs = time.perf_counter(), load_inputs(split, places, profile.split.hist_len)
    result = rec_step(inputs.data, store.round_model(0), profile.fit, profile.seeds,
                      overrides={"expl_dim": explanation_dim(profile, cache)}, tracker=tracker)
    return Written(store.save_fit(out, result, inputs.data.test), _round_summary(result, time.perf_counter() - t0))


def train_recommender(split: Path, places: Path, explanations: Path, previous: Path, out: Path, name: str,
                      profile: Profile, tracker: Tracker = NullTracker()) -> Written:
    """Recommender ``name`` trained on an explanations table, started from the fit folder ``previous``
    as ``profile.loop.rec_starts`` says: round k's recommender (from round k-1) and the explanation_only
    variant (from round 0)."""
    t0, inputs = time.perf_counter(), load_inputs(split, places, profile.split.hist_len)
    data = with_explanations(inputs.data, pl.read_parquet(explanations))
    result = rec_step(data, name, profile.fit, profile.seeds, init_states=store.round_states(previous, profile.seeds),
                      overrides={"expl_dim": data.train.pos_emb.shape[1]}, tracker=tracker,
                      starts=profile.loop.rec_starts)
    return Written(store.save_fit(out, result, data.test), _round_summary(result, time.perf_counter() - t0))


# --- explainer rounds --------------------------------------------------------------------------

def update_lora(split: Path, places: Path, recommender: Path, adapter: Path | None, out: Path, k: int,
                profile: Profile, cache: Caches, tracker: Tracker = NullTracker(),
                reward: Path | None = None) -> Written:
    """Round k's explainer: the PIE update of the explainer in ``adapter`` (None: fresh, round 1)
    against the frozen recommender of the fit folder ``recommender`` (round k-1), whose consumer
    embeddings make the soft prompts. ``reward``: another fit folder whose recommender scores the
    samples instead (``LoopConfig.round1_reward``)."""
    inputs = load_inputs(split, places, profile.split.hist_len)
    explainer = load_explainer(profile.llm, cache, adapter, profile.loop.seed)
    frozen = load_round(recommender, profile.seeds[0])
    scorer = load_round(reward, profile.seeds[0]) if reward is not None else None
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    encoder = make_encoder(profile.encoder, cache, explainer)
    stats = pie_step(explainer, frozen, inputs.data, prompts, encoder, profile.pie, profile.loop.pie_pairs,
                     seed=profile.loop.seed + k, tracker=tracker, step_offset=(k - 1) * profile.pie.steps,
                     scorer=scorer)
    folder = explainer.save(out)
    store.save_pie_stats(folder, stats)
    save_encoder_cache(encoder)
    last = stats.history[-1] if stats.history else {}
    return Written(folder, {"steps": stats.steps, "mean_reward": stats.mean_reward, "seconds": round(stats.seconds, 1),
                            **{f"last_{k_}": v for k_, v in last.items()
                               if k_ in ("reward_mean", "clipped_frac", "log_ratio_mean")},
                            **{f"readout_{k_}": stats.readout[k_] for k_ in ("before", "after") if stats.readout}})


def explanations_fingerprint(split: pl.DataFrame, prompts: pl.DataFrame, recommender: Path, adapter: Path | None,
                             profile: Profile, device: str, dtype: str, engine: str = "hf") -> str:
    """What decides an explanation pass's parts (``explain_parts.fingerprint``): the adapter's and the
    recommender's files, the profile settings the pass reads, where and in what precision the LLM
    runs, the generation engine (``engines``: "hf" or "vllm <version>"), the versions of the libraries
    that generate, and the rows with their prompts."""
    import torch
    import transformers

    loop = profile.loop
    settings = {"generation": asdict(loop.generation), "greedy": loop.greedy, "chunk_rows": loop.chunk_rows,
                "adapter_seed": loop.seed, "soft_prompt_seed": profile.seeds[0], "llm": profile.llm.to_dict(),
                "prompt": asdict(profile.prompt), "encoder": profile.encoder, "device": device, "dtype": dtype,
                "torch": torch.__version__, "transformers": transformers.__version__, "engine": engine}
    paths = [recommender] if adapter is None else [recommender, adapter]  # None: fresh adapters, from llm + seed
    return fingerprint(paths, settings, [split, prompts])


def generate_explanations(split: Path, places: Path, recommender: Path, adapter: Path | None, out: Path,
                          sample: Path, profile: Profile, cache: Caches) -> Written:
    """Both explanations for every row by the explainer in ``adapter`` (None: fresh, no PIE),
    soft prompts from the fit folder ``recommender``; the first test rows also go to ``sample``.

    Resumable: each finished part of ``profile.loop.chunk_rows`` rows is kept beside ``out``
    (``store.explanation_parts``, keyed by ``explanations_fingerprint``) until the table is
    written, so a killed step makes only the parts it had not finished.

    The texts come from the engine ``profile.loop.engine`` picks for this many rows
    (``engines.open_engine``: Hugging Face, or vLLM with its merged model under ``models/vllm``).
    """
    t0, inputs = time.perf_counter(), load_inputs(split, places, profile.split.hist_len)
    explainer = load_explainer(profile.llm, cache, adapter, profile.loop.seed)
    soft_prompts = load_round(recommender, profile.seeds[0])
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    encoder = make_encoder(profile.encoder, cache, explainer)
    dtype = str(explainer.model.get_input_embeddings().weight.dtype)
    with open_engine(profile.loop.engine, explainer, cache.llm.parent / "vllm", inputs.split.height) as engine:
        parts = PartFolder(store.explanation_parts(out), explanations_fingerprint(
            inputs.split, prompts, recommender, adapter, profile, str(explainer.device), dtype, engine_version(engine)))
        resumed = len(parts.finished())
        table = explain_step(engine, soft_prompts, inputs.data, prompts, encoder, profile.loop, parts, progress=True)
    write_parquet_atomic(table, out)
    parts.discard()
    rows = table.filter(pl.col("split") == "test").head(20).select("user_id", "place_id", "pos_text", "neg_text")
    write_parquet_atomic(rows, sample)  # a look at what the LLM wrote
    save_encoder_cache(encoder)
    return Written(out, {"rows": table.height, "flagged": int((table["problems"] != "").sum()),
                         "mean_pos_chars": float(table["pos_text"].str.len_chars().mean()),
                         "parts_resumed": resumed, "engine": engine.name,
                         "seconds": round(time.perf_counter() - t0, 1)})


def ladder_table(rung: str, prompts: pl.DataFrame, truth: pl.DataFrame | None, encoder: TextEncoder) -> pl.DataFrame:
    """A ladder rung's texts as an explanations table: the key, ``pos_emb`` and ``neg_emb``."""
    texts = ladder_texts(rung, prompts, truth)
    neg = texts["neg_text"]
    pos_emb, neg_emb = explanation_embeddings(encoder, texts["pos_text"].to_list(),
                                              None if neg.null_count() else neg.to_list())
    return texts.select(*KEY).with_columns(pl.Series("pos_emb", pos_emb.numpy()), pl.Series("neg_emb", neg_emb.numpy()))


def explanation_ladder(split: Path, places: Path, recommender: Path, out: Path, profile: Profile, cache: Caches,
                       truth_dir: Path | None = None, tracker: Tracker = NullTracker()) -> Written:
    """The ladder's direct-text rungs (``explain.ladder``): each rung's texts embedded by the
    explanations' encoder, the recommender trained on them from ``recommender`` (round 0) as the
    rounds are (``profile.loop.rec_starts``), so a rung and a round differ only in the texts;
    saved as ``out/<rung>/`` fit folders. ``ideal`` only where ``truth_dir`` holds the synthetic truth."""
    inputs = load_inputs(split, places, profile.split.hist_len)
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    truth_file = find_review_truth(truth_dir)
    truth = pl.read_parquet(truth_file) if truth_file is not None else None
    explainer = load_explainer(profile.llm, cache, None, profile.loop.seed) if profile.encoder == "llm" else None
    encoder = make_encoder(profile.encoder, cache, explainer)
    init = store.round_states(recommender, profile.seeds)
    summary = {}
    for rung in LADDER:
        if rung == "ideal" and truth is None:
            log.info("no synthetic truth under %s: the ideal rung is skipped", truth_dir)
            continue
        t0 = time.perf_counter()
        data = with_explanations(inputs.data, ladder_table(rung, prompts, truth, encoder))
        result = rec_step(data, rung, profile.fit, profile.seeds, init_states=init,
                          overrides={"expl_dim": data.train.pos_emb.shape[1]},
                          tracker=PrefixTracker(tracker, f"{rung}/"), starts=profile.loop.rec_starts)
        store.save_fit(out / rung, result, data.test)
        summary[rung] = _round_summary(result, time.perf_counter() - t0)
        log.info("ladder %s: valid rmse %.4f (unit), test rmse %.4f (stars)", rung, result.valid_rmse,
                 result.test.mean("rmse"))
    save_encoder_cache(encoder)
    return Written(out, summary)


# --- baselines ---------------------------------------------------------------------------------

def run_baselines(split: Path, places: Path, out: Path, profile: Profile, tracker: Tracker = NullTracker()) -> Written:
    """Every baseline of the profile, same split, same early stopping, same seeds. Each model is a
    run of its own under ``tracker`` (``tracker.child``: its config as params, per-seed curves, the
    summary under the round runs' metric names); the summary per model is a round's."""
    for name in profile.baselines:  # an unknown name fails here, before any training
        model_entry(name)
    inputs = load_inputs(split, places, profile.split.hist_len)
    frames, summary = [], {}
    for name in profile.baselines:
        t0 = time.perf_counter()
        overrides = {"expl_dim": 1} if name == "recpie_no_expl" else {}  # ignores explanations
        with tracker.child(name, model_tags(name, profile)) as run:
            run.log_params(model_params(name, profile, make_config(name, task=profile.fit.task, **overrides)))
            result = evaluate_model(name, inputs.data, profile.seeds, profile.fit, overrides=overrides, tracker=run)
            summary[name] = {"valid_rmse_unit": sum(v["rmse"] for v in result.valid) / len(result.valid),
                             "test_rmse_stars": result.mean("rmse"), "test_mae_stars": result.mean("mae"),
                             "test_auc": result.mean("auc"), "seeds": len(result.seeds),
                             "best_epochs": result.best_epochs, "seconds": round(time.perf_counter() - t0, 1)}
            run.log_metrics(summary_metrics(summary[name]))
        frames.append(store.predictions_frame(name, dict(zip(result.seeds, result.predictions)), inputs.data.test))
        log.info("baseline %s: test rmse %.4f (stars)", name, result.mean("rmse"))
    return Written(write_parquet_atomic(pl.concat(frames), out), summary)


def run_llm_direct(split: Path, places: Path, out: Path, profile: Profile, cache: Caches) -> Written:
    """The paper's direct-recommendation baseline: the base LLM asked for the rating of each test row."""
    inputs = load_inputs(split, places, profile.split.hist_len)
    explainer = load_explainer(profile.llm, cache, None, profile.loop.seed)
    test = inputs.data.test
    prompts = align(build_prompts(inputs.split, inputs.places, profile.prompt), test)["direct_prompt"].to_list()
    fallback = float(inputs.data.train.rating.mean())
    with explainer.model.disable_adapter():
        result = direct_predict(explainer, prompts, fallback, profile.direct)
    table = write_parquet_atomic(store.predictions_frame("llm_direct", {0: result.pred_unit}, test), out)
    return Written(table, {"rows": len(prompts), "fallbacks": result.n_fallback, "fallback_unit": fallback})
