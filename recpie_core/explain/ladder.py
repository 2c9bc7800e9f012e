"""The explanation ladder: texts that stand in for the LLM's explanations, read through the
same recommender on the same split, so that where RecPIE stands is visible at a glance.

    recpie_r0         no explanations (constant tokens): the floor
    text_candidate    the candidate's own text (name, category, description), embedded directly
    text_prompt       the LLM's whole input (candidate and history), embedded directly: what
                      the text alone carries, so that reasoning is told apart from text
    explanation_only  the LLM's explanations without PIE; recpie_r{k} with PIE (not built here)
    ideal             the pair's true liked aspects (positive) and disliked aspects (negative),
                      from the synthetic generator's truth: the upper bound

The direct texts fill the positive slot and leave the negative one empty (a zero vector, as
for the single-explanation variants); ``ideal`` fills both.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpie_core.data.context import KEY

LADDER = ("text_candidate", "text_prompt", "ideal")
_TEXT_COLUMN = {"text_candidate": "candidate_text", "text_prompt": "input_text"}


def find_review_truth(folder: Path | None) -> Path | None:
    """The synthetic generator's per-review truth file (``truth-<Region>.parquet``) in ``folder``."""
    if folder is None:
        return None
    files = [p for p in sorted(Path(folder).glob("truth-*.parquet"))
             if not p.name.startswith(("truth-places-", "truth-users-"))]
    return files[0] if files else None


def _listing(aspects: list[str]) -> str:
    return aspects[0] if len(aspects) == 1 else ", ".join(aspects[:-1]) + " and " + aspects[-1]


def ideal_text(aspects: list[str] | None, polarity: str) -> str:
    """What a perfect explainer would say: the aspects that truly moved this rating."""
    if not aspects:
        return ("Nothing here is what this consumer looks for." if polarity == "pos"
                else "Nothing here would put this consumer off.")
    if polarity == "pos":
        return f"This consumer would enjoy the {_listing(aspects)}."
    return f"This consumer would be put off by the {_listing(aspects)}."


def ladder_texts(name: str, prompts: pl.DataFrame, truth: pl.DataFrame | None = None) -> pl.DataFrame:
    """The key, ``pos_text`` and ``neg_text`` (null where the rung has no negative text) of rung
    ``name`` for every row of the prompt table ``prompts`` (``prompt_table.build_prompts``).
    ``ideal`` needs ``truth`` (per review: the key, ``liked_aspects``, ``disliked_aspects``)
    covering every row."""
    if name in _TEXT_COLUMN:
        return prompts.select(*KEY, pl.col(_TEXT_COLUMN[name]).alias("pos_text"),
                              pl.lit(None, dtype=pl.String).alias("neg_text"))
    if name != "ideal":
        raise ValueError(f"unknown ladder rung {name!r}; known: {', '.join(LADDER)}")
    if truth is None:
        raise ValueError("the ideal rung needs the synthetic truth (truth-<Region>.parquet); real data has none")
    rows = prompts.select(*KEY).join(truth.select(*KEY, "liked_aspects", "disliked_aspects"), on=list(KEY),
                                     how="left", maintain_order="left")
    missing = rows["liked_aspects"].null_count()
    if missing:
        raise ValueError(f"{missing} of {rows.height} rows have no truth row (is the truth from another dataset?)")
    pos = [ideal_text(a, "pos") for a in rows["liked_aspects"].to_list()]
    neg = [ideal_text(a, "neg") for a in rows["disliked_aspects"].to_list()]
    return rows.select(*KEY).with_columns(pl.Series("pos_text", pos), pl.Series("neg_text", neg))
