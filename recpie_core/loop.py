"""Algorithm 1 of the paper: the explainer and the recommender train in alternating rounds.

    recommender_0 <- fit without explanations (constant explanation tokens)
    for k = 1..R:
        pie_step:     recommender_{k-1} frozen; sample explanations for training pairs,
                      reward R = 1/(1 + |y_hat - y|), update LoRA + soft prompt (Eq. 4-7)
        explain_step: explainer frozen; a positive and a negative explanation for every
                      train, valid and test row, embedded by the sentence encoder
        rec_step:     recommender_k <- fit on those embeddings, started from k-1 as
                      LoopConfig.rec_starts says (rec/starts.py), kept on validation

The ``explanation_only`` variant skips ``pie_step`` (the paper's human-evaluation ablation).
Each step is a function so that the Dagster assets (through ``steps``) run and re-run them one
by one. Ratings are on the unit scale (r - 1) / 4.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import polars as pl
import torch
from torch import Tensor

from recpie_core.data.align import align
from recpie_core.data.batches import SPLITS, RatingData, RatingTensors
from recpie_core.data.context import KEY
from recpie_core.explain.engines import GenerationEngine
from recpie_core.explain.explainer import Explainer
from recpie_core.explain.pie import rating_reward
from recpie_core.explain.pie_trainer import PIEConfig, PIEStats, pie_update
from recpie_core.explain.screen import screen_generated
from recpie_core.explain.text_encoder import SentenceEncoder, TextEncoder
from recpie_core.explain_parts import Chunk, PartFolder, build_in_parts, plan_chunks
from recpie_core.loop_config import LoopConfig
from recpie_core.rec.evaluate import ModelResult
from recpie_core.rec.fit import FitConfig, FitResult, predict
from recpie_core.rec.recpie_dnn import RecPIEDNN
from recpie_core.rec.registry import build_model
from recpie_core.rec.starts import fit_from
from recpie_core.tracking import NullTracker, PrefixTracker, Tracker

log = logging.getLogger(__name__)


# --- the three steps ---------------------------------------------------------------------------

@torch.no_grad()
def user_vectors(recommender: RecPIEDNN, tensors: RatingTensors) -> Tensor:
    """(N, dim) consumer embeddings of the rows: the soft prompt's input."""
    recommender.eval()
    return recommender.user_vectors(tensors.user.to(next(recommender.parameters()).device)).detach().cpu()


def explanation_embeddings(encoder: TextEncoder, pos: list[str], neg: list[str] | None) -> tuple[Tensor, Tensor]:
    """(N, E) each; a missing negative explanation (single-explanation variants) is a zero vector."""
    pos_emb = encoder.encode(pos)
    neg_emb = encoder.encode(neg) if neg is not None else torch.zeros_like(pos_emb)
    return pos_emb, neg_emb


def pie_step(explainer: Explainer, recommender: RecPIEDNN, data: RatingData, prompts: pl.DataFrame,
             encoder: TextEncoder, pie_cfg: PIEConfig, n_pairs: int, seed: int = 0,
             tracker: Tracker = NullTracker(), step_offset: int = 0, scorer: RecPIEDNN | None = None) -> PIEStats:
    """One round's PIE update of the explainer against the frozen ``recommender``: its consumer
    embeddings make the soft prompts, as in the explanation pass that follows, and it scores the
    samples unless ``scorer`` (another frozen recommender) does."""
    scorer = scorer or recommender
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train), generator=g)[:n_pairs]  # training rows only
    rows = data.train.batch(idx)
    table = align(prompts, data.train)
    pos_prompts = [table["pos_prompt"][i] for i in idx.tolist()]
    neg_prompts = None if table["neg_prompt"].null_count() else [table["neg_prompt"][i] for i in idx.tolist()]
    vecs = user_vectors(recommender, data.train)[idx]
    scorer.eval()
    device = next(scorer.parameters()).device

    def reward_fn(sel: Tensor, pos_texts: list[str], neg_texts: list[str] | None):
        pos_emb, neg_emb = explanation_embeddings(encoder, pos_texts, neg_texts)
        batch = replace(rows, **{f: getattr(rows, f)[sel] for f in
                                 ("user", "place", "category", "hist_place", "hist_rating", "hist_mask", "rating")},
                        pos_emb=pos_emb, neg_emb=neg_emb).to(device)
        with torch.no_grad():
            y_hat = scorer(batch)
        reward = rating_reward(y_hat, batch.rating).cpu()  # Eq. 4: one reward per pair, for both texts
        return reward, (reward if neg_texts is not None else None)

    return pie_update(explainer, pos_prompts, neg_prompts, vecs, reward_fn, pie_cfg, tracker, step_offset)


def _column(name: str, values: list | None, dtype) -> pl.Expr | pl.Series:
    """A column of values, or all null where the variant writes no such explanation."""
    return pl.lit(None, dtype=dtype).alias(name) if values is None else pl.Series(name, values, dtype=dtype)


def explain_step(explainer: Explainer | GenerationEngine, recommender: RecPIEDNN, data: RatingData,
                 prompts: pl.DataFrame, encoder: TextEncoder, cfg: LoopConfig, parts: PartFolder | None = None,
                 progress: bool = False) -> pl.DataFrame:
    """Explanations for every train, valid and test row, with their embeddings.

    ``explainer`` writes them: the explainer itself or a generation engine around it
    (``engines.open_engine``: Hugging Face or vLLM, the same ids up to float rounding).
    The soft prompt reads ``recommender``'s consumer embeddings (the first seed's model).
    Returns one row per split row: the key, ``split``, ``pos_text``, ``neg_text``, ``pos_cut``
    and ``neg_cut`` (the text hit the token cap and was trimmed back to its last whole sentence
    or word: the recommender never reads a word cut in half), ``problems`` (what
    ``screen.check_explanation`` flagged: such a text is replaced by ``screen.FALLBACK`` before it
    is embedded or stored), ``pos_emb`` and ``neg_emb`` (lists of floats).

    The pass runs in chunks of ``cfg.chunk_rows`` rows per split (``explain_parts``). With
    ``parts``, each finished chunk is written there at once and a rerun makes only the missing
    ones. Chunk c of a split samples under seed ``generation.seed + c`` whatever was done before,
    so a resumed pass gives the table an uninterrupted one gives (and a split in one chunk the
    table of a pass without chunks).
    """
    tables, vecs = {}, {}
    for name in SPLITS:
        tensors = data.part(name)
        if len(tensors):
            tables[name], vecs[name] = align(prompts, tensors), user_vectors(recommender, tensors)

    def explain_chunk(chunk: Chunk, advance: Callable[[int], None]) -> pl.DataFrame:
        rows = slice(chunk.start, chunk.stop)
        return explain_rows(explainer, encoder, tables[chunk.split][rows], vecs[chunk.split][rows], chunk.split,
                            cfg, seed=cfg.generation.seed + chunk.index, on_batch=advance)

    chunks = plan_chunks({name: t.height for name, t in tables.items()}, cfg.chunk_rows)
    if parts is not None:
        remember_finished(encoder, parts, chunks)
    return build_in_parts(chunks, explain_chunk, parts, progress)


def remember_finished(encoder: TextEncoder, parts: PartFolder, chunks: list[Chunk]) -> None:
    """The sentence encoder embeds a text once and caches it, and the value depends in its last bits
    on the batch it was first encoded in: hand it the embeddings the finished parts' texts got, so a
    resumed pass embeds the missing parts exactly as the uninterrupted pass did."""
    if not isinstance(encoder, SentenceEncoder):  # no cache (the LLM's hidden states)
        return
    for chunk in (c for c in chunks if parts.has(c)):
        table = parts.load(chunk)
        for text, emb in (("pos_text", "pos_emb"), ("neg_text", "neg_emb")):
            if table[text].null_count() == 0:  # a single-explanation variant has no negative texts
                encoder.remember(table[text].to_list(), torch.from_numpy(table[emb].to_numpy().copy()))


def explain_rows(explainer: Explainer | GenerationEngine, encoder: TextEncoder, table: pl.DataFrame, vecs: Tensor,
                 split: str, cfg: LoopConfig, seed: int, on_batch: Callable[[int], None] | None = None,
                 ) -> pl.DataFrame:
    """``explain_step``'s table for the rows of ``table`` (prompts aligned to the rows) and their
    consumer vectors ``vecs`` (N, dim): generate, screen, embed. ``on_batch(n)``: n more rows generated."""
    gen = {**cfg.generation.generate_kwargs(cfg.greedy), "seed": seed, "on_batch": on_batch}
    max_chars = cfg.generation.max_chars
    pos_prompts, neg_prompts = table["pos_prompt"].to_list(), table["neg_prompt"]
    if neg_prompts.null_count():  # single-explanation variants
        pos_ids, pos_ended = explainer.generate_ids(pos_prompts, vecs, **gen)
        neg_ids = neg_ended = None
    else:  # a pair's two prompts share their prefix: prefilled once
        pos_ids, neg_ids, pos_ended, neg_ended = explainer.generate_pair_ids(
            pos_prompts, neg_prompts.to_list(), vecs, **gen)
    pos, pos_cut, pos_problems = screen_generated(explainer.decode(pos_ids), pos_ended, max_chars=max_chars)
    if neg_ids is not None:
        neg, neg_cut, neg_problems = screen_generated(explainer.decode(neg_ids), neg_ended, max_chars=max_chars)
    else:
        neg, neg_cut, neg_problems = None, None, [[]] * len(pos)
    problems = [", ".join([*p, *n]) for p, n in zip(pos_problems, neg_problems)]
    pos_emb, neg_emb = explanation_embeddings(encoder, pos, neg)
    return table.select(*KEY).with_columns(
        pl.lit(split).alias("split"), pl.Series("pos_text", pos), _column("neg_text", neg, pl.String),
        pl.Series("pos_cut", pos_cut), _column("neg_cut", neg_cut, pl.Boolean),
        pl.Series("problems", problems),
        pl.Series("pos_emb", pos_emb.numpy()), pl.Series("neg_emb", neg_emb.numpy()))


def with_explanations(data: RatingData, explanations: pl.DataFrame) -> RatingData:
    """``data`` whose three parts carry the explanation embeddings, aligned row by row."""
    def attach(t: RatingTensors) -> RatingTensors:
        if len(t) == 0:
            return t
        table = align(explanations.select(*KEY, "pos_emb", "neg_emb"), t)
        to_tensor = lambda col: torch.from_numpy(table[col].to_numpy().copy()).float()  # noqa: E731
        return t.with_explanations(to_tensor("pos_emb"), to_tensor("neg_emb"))
    return replace(data, train=attach(data.train), valid=attach(data.valid), test=attach(data.test))


@dataclass
class RecStepResult:
    fits: dict[int, FitResult]  # per seed
    test: ModelResult  # test metrics over seeds
    start: str = "scratch"  # how the kept fits started from the previous recommender (rec.starts)
    valid_by_start: dict[str, float] = field(default_factory=dict)  # every start tried: mean validation RMSE

    def states(self) -> dict[int, dict[str, Tensor]]:
        return {s: f.model.state_dict() for s, f in self.fits.items()}

    @property
    def valid_rmse(self) -> float:
        """Mean validation RMSE over seeds (unit scale): what picks the round."""
        return _mean_valid_rmse(self.fits)


def _mean_valid_rmse(fits: dict[int, FitResult]) -> float:
    return sum(f.valid["rmse"] for f in fits.values()) / len(fits)


def rec_step(data: RatingData, name: str, fit_cfg: FitConfig, seeds: tuple[int, ...],
             init_states: dict[int, dict[str, Tensor]] | None = None, overrides: dict | None = None,
             tracker: Tracker = NullTracker(), starts: tuple[str, ...] = ("warm",)) -> RecStepResult:
    """Fit the RecPIE recommender once per seed, from ``init_states[seed]`` as each of ``starts``
    says (``rec.starts``; without init states, from scratch); with several starts, the one with
    the lowest mean validation RMSE over seeds is kept. Only the kept fits predict the test rows."""
    starts = starts if init_states else ("scratch",)
    tried: dict[str, dict[int, FitResult]] = {}
    for start in starts:
        tried[start] = {}
        for seed in seeds:
            torch.manual_seed(seed)
            model = build_model("recpie", data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories,
                                task=fit_cfg.task, **(overrides or {}))
            prefix = f"seed{seed}/" if len(starts) == 1 else f"{start}/seed{seed}/"
            tried[start][seed] = fit_from(model, data, replace(fit_cfg, seed=seed), start,
                                          (init_states or {}).get(seed), PrefixTracker(tracker, prefix),
                                          label=f"{name} seed {seed}", probe=tried.get("probe", {}).get(seed))
    valid_by_start = {start: _mean_valid_rmse(fits) for start, fits in tried.items()}
    start = min(valid_by_start, key=valid_by_start.get)
    if len(starts) > 1:
        log.info("%s: start %s kept (validation RMSE by start: %s)", name, start,
                 ", ".join(f"{s} {v:.5f}" for s, v in valid_by_start.items()))
    fits = tried[start]
    preds = {seed: predict(f.model, data.test) for seed, f in fits.items()}
    test = ModelResult.from_predictions(name, preds, data.test.rating,
                                        [f.best_epoch for f in fits.values()], fits[seeds[0]].model)
    return RecStepResult(fits=fits, test=test, start=start, valid_by_start=valid_by_start)
