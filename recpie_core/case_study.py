"""One (user, place) pair as the paper's Table 3 shows it: the history, the place, both
explanations, the predicted rating and the attention each explanation token receives."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import torch

from recpie_core.data.batches import to_stars
from recpie_core.data.context import KEY, row_contexts
from recpie_core.explain.prompts import PlaceText, format_place
from recpie_core.loop import with_explanations
from recpie_core.paths import RecpieHome
from recpie_core.profiles import Profile
from recpie_core.rec.recpie_dnn import TOKENS
from recpie_core.store import explanations, load_inputs, load_round, recommender


@dataclass
class CaseStudy:
    user_id: str
    place_id: str
    split: str
    round: int
    history: list[str]  # each place as the prompt shows it, oldest first
    place: str
    description: str | None
    pos_text: str
    neg_text: str | None
    predicted_stars: float
    actual_stars: int
    attention: dict[str, float]  # attention each token receives (mean over attending tokens)

    def render(self) -> str:
        lines = [f"user {self.user_id}, place {self.place_id} ({self.split} row, round {self.round})",
                 "history: " + ("; ".join(self.history) if self.history else "(none)"),
                 f"place: {self.place}" + (f" - {self.description}" if self.description else ""),
                 f"positive explanation: {self.pos_text}",
                 f"negative explanation: {self.neg_text if self.neg_text is not None else '(variant has none)'}",
                 f"predicted rating: {self.predicted_stars:.2f} stars (actual {self.actual_stars})",
                 "attention received: " + ", ".join(f"{t} {self.attention[t]:.3f}" for t in TOKENS)]
        return "\n".join(lines)


def latest_round(home: RecpieHome, profile: Profile) -> int:
    done = [k for k in range(1, profile.rounds + 1) if home.model(recommender(k)).is_dir()
            and home.table(explanations(k)).exists()]
    if not done:
        raise FileNotFoundError(f"no finished round under {home.root}; run `recpie run` first")
    return max(done)


def explain_pair(home: RecpieHome, profile: Profile, user_id: str, place_id: str) -> CaseStudy:
    """The newest split row of (user_id, place_id), read through the latest finished round."""
    k = latest_round(home, profile)
    inputs = load_inputs(home.table("user_temporal_split"), home.table("raw_places"), profile.split.hist_len)
    rows = inputs.split.filter((pl.col("user_id") == user_id) & (pl.col("place_id") == place_id))
    if rows.is_empty():
        known = inputs.split.filter(pl.col("user_id") == user_id)["place_id"].head(5).to_list()
        hint = f"; this user rated e.g. {', '.join(known)}" if known else "; no such user in the split"
        raise ValueError(f"no rating of place {place_id!r} by user {user_id!r} in the split{hint}")
    row = rows.sort("ts").tail(1)
    key = row.select(*KEY)
    table = pl.read_parquet(home.table(explanations(k)))
    data = with_explanations(inputs.data, table)
    split = "test" if row["split"].item() == "test" else ("valid" if row["valid"].item() else "train")
    tensors = data.part(split)
    idx = tensors.keys.with_row_index("i").join(key, on=list(KEY))["i"].item()
    model = load_round(home.model(recommender(k)), profile.seeds[0])
    with torch.no_grad():
        y, attn = model.forward_with_attention(tensors.batch(torch.tensor([idx])))
    received = attn[0].mean(dim=0)  # (5,) mean over attending tokens
    expl = table.join(key, on=list(KEY)).row(0, named=True)
    ctx = row_contexts(row, inputs.places, max_history=profile.prompt.max_history).row(0, named=True)
    history = [format_place(PlaceText(**h), profile.prompt, description=False) for h in ctx["history"]]
    return CaseStudy(user_id=user_id, place_id=place_id, split=split, round=k, history=history,
                     place=ctx["place_name"], description=ctx["place_description"], pos_text=expl["pos_text"],
                     neg_text=expl["neg_text"], predicted_stars=float(to_stars(y[0])),
                     actual_stars=int(row["rating"].item()), attention=dict(zip(TOKENS, received.tolist())))
