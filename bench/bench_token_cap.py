"""Whole explanations (issue 11, item 4): how many explanations hit the token cap, by cap, on
validation rows of a home whose ``recommender_r0`` exists.

The base LLM (fresh adapters: the policy round 1's PIE starts from, and what ``explanation_only``
reads) explains the same validation rows once per cap, as the explanation pass does (the profile's
generation settings, greedy, first sentence, soft prompts from ``recommender_r0``'s first seed).
Per cap: the share of texts cut at the cap (trimmed back to a whole sentence or word), words per
text, the positive explanations' coverage of the true liked aspects (where the synthetic truth
exists), and seconds per row, the pass's cost. No recommender is trained and no rating is read:
the choice of cap is by the cut share and the cost, never by RMSE.

    .venv/bin/python bench/bench_token_cap.py --home /tmp/h_eval --profile eval --rows 160 \
        --caps 32 48 64 --out bench/reports/token_cap.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch
from round_homes import review_truth

from recpie_core import store
from recpie_core.data.align import align
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.loop import explain_rows, user_vectors
from recpie_core.paths import RecpieHome
from recpie_core.profiles import Profile, get_profile
from recpie_core.report import explanation_stats, truth_coverage


def measure(home: RecpieHome, profile: Profile, n_rows: int, caps: list[int]) -> dict:
    """The report: one row per cap, over ``n_rows`` validation rows (a seeded draw; 0 for all)."""
    cache = store.caches(home)
    inputs = store.load_inputs(home.table("user_temporal_split"), home.table("raw_places"), profile.split.hist_len)
    valid = inputs.data.valid
    table = align(build_prompts(inputs.split, inputs.places, profile.prompt), valid)
    vecs = user_vectors(store.load_round(home.model(store.recommender(0)), profile.seeds[0]), valid)
    if 0 < n_rows < table.height:
        pick = torch.randperm(table.height, generator=torch.Generator().manual_seed(0))[:n_rows].sort().values
        table, vecs = table[pick.tolist()], vecs[pick]
    truth_file = review_truth(home)
    truth = pl.read_parquet(truth_file) if truth_file is not None else None
    explainer = store.load_explainer(profile.llm, cache, None, profile.loop.seed)
    encoder = store.make_encoder(profile.encoder, cache, explainer)

    rows = []
    for cap in caps:
        loop = replace(profile.loop, generation=replace(profile.loop.generation, max_new_tokens=cap))
        t0 = time.perf_counter()
        out = explain_rows(explainer, encoder, table, vecs, "valid", loop, seed=loop.generation.seed)
        seconds = time.perf_counter() - t0
        row = {"cap": cap, "rows": out.height, "seconds_per_row": round(seconds / out.height, 3),
               **explanation_stats(out), **(truth_coverage(out, truth) if truth is not None else {})}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"profile": profile.name, "home": str(home.root), "dtype": str(next(explainer.model.parameters()).dtype),
            "threads": torch.get_num_threads(), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a home of --profile with recommender_r0")
    parser.add_argument("--profile", default="eval")
    parser.add_argument("--rows", type=int, default=160, help="validation rows (a seeded draw), 0 for all")
    parser.add_argument("--caps", type=int, nargs="+", default=[32, 48, 64])
    parser.add_argument("--out", type=Path, default=Path("bench/reports/token_cap.json"))
    args = parser.parse_args()
    report = measure(RecpieHome(args.home), get_profile(args.profile), args.rows, args.caps)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
