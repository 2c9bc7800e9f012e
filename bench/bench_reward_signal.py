"""How much of the PIE reward can the explainer change? ``reward_signal`` (recpie_core) over the
recommenders of a finished home, on its validation rows.

Each line is a recommender with the texts it reads: ``recommender_r0`` with the base LLM's
explanations is what round 1's PIE update learns from (its policy starts as the base LLM);
``recommender_r{k}`` with ``explanations_r{k}`` is what round k + 1 would learn from; the
ladder's ``text_prompt`` and ``ideal`` rungs (texts rebuilt, embeddings from the encoder's cache)
show what a reward with and without signal looks like. Every seed of each recommender, averaged.

    .venv/bin/python bench/bench_reward_signal.py --home /tmp/h_eval --profile eval \
        --out bench/reports/reward_signal.json
"""

from __future__ import annotations

import json

import polars as pl
from round_homes import home_parser, review_truth

from recpie_core import steps, store
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.loop import with_explanations
from recpie_core.paths import RecpieHome
from recpie_core.profiles import get_profile
from recpie_core.reward_signal import reward_signal


def main() -> None:
    parser = home_parser(__doc__, "bench/reports/reward_signal.json")
    parser.add_argument("--swaps", type=int, default=16)
    args = parser.parse_args()
    profile, home = get_profile(args.profile), RecpieHome(args.home)
    inputs = store.load_inputs(home.table("user_temporal_split"), home.table("raw_places"), profile.split.hist_len)
    encoder = store.make_encoder(profile.encoder, store.caches(home))

    tables = {}  # recommender folder -> the texts it reads
    if home.table(store.VARIANT_EXPLANATIONS).exists():
        base = pl.read_parquet(home.table(store.VARIANT_EXPLANATIONS))
        tables |= {store.recommender(0): base, "explanation_only": base}
    k = 1
    while home.table(store.explanations(k)).exists():
        tables[store.recommender(k)] = pl.read_parquet(home.table(store.explanations(k)))
        k += 1
    truth_file = review_truth(home, args.truth)
    truth = pl.read_parquet(truth_file) if truth_file is not None else None
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    for rung in ("text_prompt", "ideal"):
        if (home.model("explanation_ladder") / rung).exists() and (rung != "ideal" or truth is not None):
            tables[f"explanation_ladder/{rung}"] = steps.ladder_table(rung, prompts, truth, encoder)

    rows = []
    for folder, table in tables.items():
        valid = with_explanations(inputs.data, table).valid
        per_seed = [reward_signal(store.load_round(home.models / folder, s), valid, args.swaps, seed=s).as_dict()
                    for s in profile.seeds]
        row = {"recommender": folder, **{key: sum(d[key] for d in per_seed) / len(per_seed) for key in
                                         ("within_std", "across_std", "share", "own_gain")},
               "rows": per_seed[0]["rows"], "swaps": args.swaps, "seeds": len(per_seed)}
        rows.append(row)
        print(f"{folder:18s} within {row['within_std']:.5f} across {row['across_std']:.5f} "
              f"share {row['share']:.3f} own_gain {row['own_gain']:+.5f}", flush=True)
    args.out.write_text(json.dumps({"profile": args.profile, "home": str(args.home), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
