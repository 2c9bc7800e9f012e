"""The prompt table: for every split row, what the explainer is asked, and the ladder's texts.

One row per split row (same order): the key, ``pos_prompt``, ``neg_prompt`` (null for
single-explanation variants), ``direct_prompt`` (the LLM-rating baseline's question), and
two texts the explanation ladder embeds directly, with no LLM in between:

- ``candidate_text``: the candidate place as the prompt shows it (name, category, description);
- ``input_text``: the LLM's whole input as the prompt shows it, candidate first and then the
  history (the sentence encoder reads at most 256 word pieces: candidate first, so a long
  history cannot push the candidate out).
"""

from __future__ import annotations

import polars as pl

from recpie_core.data.context import KEY, row_contexts
from recpie_core.explain.prompts import (
    PlaceText,
    PromptConfig,
    direct_prompt,
    explanation_prompt,
    format_history,
    format_place,
)


def build_prompts(rows: pl.DataFrame, places: pl.DataFrame, cfg: PromptConfig = PromptConfig()) -> pl.DataFrame:
    """The prompt table of ``rows`` (split rows with ``hist_place_ids``/``hist_ratings``)."""
    ctx = row_contexts(rows, places, max_history=cfg.max_history)
    out: dict[str, list] = {"pos_prompt": [], "neg_prompt": [], "direct_prompt": [], "candidate_text": [],
                            "input_text": []}
    for history, name, category, description in ctx.select(
            "history", "place_name", "place_category", "place_description").iter_rows():
        hist = [PlaceText(name=h["name"], category=h["category"], description=h["description"],
                          rating=h["rating"]) for h in history]
        place = PlaceText(name=name, category=category, description=description)
        out["pos_prompt"].append(explanation_prompt(hist, place, "pos", cfg))
        out["neg_prompt"].append(explanation_prompt(hist, place, "neg", cfg) if "neg" in cfg.polarities else None)
        out["direct_prompt"].append(direct_prompt(hist, place, cfg))
        candidate = format_place(place, cfg, description=True)
        out["candidate_text"].append(candidate)
        out["input_text"].append(f"Candidate: {candidate}. History: {format_history(hist, cfg)}.")
    return ctx.select(*KEY).with_columns(pl.Series(k, v, dtype=pl.String) for k, v in out.items())
