"""How should a recommender that reads explanations start from the one before it? Each start of
``rec.starts`` (warm, scratch, probe, probe_finetune) on every text a finished home has, through
``rec_step`` with that start alone: the ladder's rungs and ``explanation_only`` from
``recommender_r0``, round k's explanations from ``recommender_r{k-1}``. Validation RMSE picks the
start (what ``rec_step`` keeps with every start listed); the test RMSE of each is printed beside it
so that the choice can be judged, never made, on it. The kept start's test RMSE is compared, paired
over the test rows, with ``recommender_r0`` and with the best baseline (lowest test RMSE: the
comparison that favours the baseline).

    .venv/bin/python bench/bench_rec_starts.py --home /tmp/h_eval --profile eval \
        --out bench/reports/rec_starts.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import torch
from round_homes import best_baseline, home_parser, model_predictions, review_truth, versus

from recpie_core import steps, store
from recpie_core.explain.ladder import LADDER
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.loop import rec_step, with_explanations
from recpie_core.loop_config import REC_STARTS
from recpie_core.paths import RecpieHome
from recpie_core.profiles import get_profile
from recpie_core.report import model_result


def texts_of(home: RecpieHome, profile, inputs, encoder, truth_folder: Path | None,
             ) -> dict[str, tuple[pl.DataFrame, Path]]:
    """Every explanations table of the home, with the fit folder its recommender starts from."""
    r0 = home.model(store.recommender(0))
    prompts = build_prompts(inputs.split, inputs.places, profile.prompt)
    truth_file = review_truth(home, truth_folder)
    truth = pl.read_parquet(truth_file) if truth_file is not None else None
    texts = {rung: (steps.ladder_table(rung, prompts, truth, encoder), r0)
             for rung in LADDER if rung != "ideal" or truth is not None}
    if home.table(store.VARIANT_EXPLANATIONS).exists():
        texts["explanation_only"] = (pl.read_parquet(home.table(store.VARIANT_EXPLANATIONS)), r0)
    k = 1
    while home.table(store.explanations(k)).exists():
        texts[store.round_model(k)] = (pl.read_parquet(home.table(store.explanations(k))),
                                       home.model(store.recommender(k - 1)))
        k += 1
    return texts


def main() -> None:
    parser = home_parser(__doc__, "bench/reports/rec_starts.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--boot", type=int, default=2000, help="paired bootstrap resamples of the test rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile, home = get_profile(args.profile), RecpieHome(args.home)
    inputs = store.load_inputs(home.table("user_temporal_split"), home.table("raw_places"), profile.split.hist_len)
    encoder = store.make_encoder(profile.encoder, store.caches(home))
    r0, y = model_predictions(home, store.recommender(0), store.round_model(0))
    r0_valid, r0_test = store.fit_valid_rmse(home.model(store.recommender(0))), r0.mean("rmse")
    baseline = best_baseline(home)

    rows = []
    print(f"{'texts':18s} {'start':15s} {'valid (unit)':>12s} {'test (stars)':>12s}  best epochs   "
          f"(recommender_r0: valid {r0_valid:.5f}, test {r0_test:.4f})", flush=True)
    for name, (table, previous) in texts_of(home, profile, inputs, encoder, args.truth).items():
        data = with_explanations(inputs.data, table)
        init = store.round_states(previous, profile.seeds)
        fits, results = {}, {}
        for start in REC_STARTS:
            t0 = time.perf_counter()
            result = rec_step(data, name, profile.fit, profile.seeds, init_states=init,
                              overrides={"expl_dim": data.train.pos_emb.shape[1]}, starts=(start,))
            fits[start] = {"valid_rmse_unit": result.valid_rmse, "test_rmse_stars": result.test.mean("rmse"),
                           "best_epochs": [f.best_epoch for f in result.fits.values()],
                           "seconds": round(time.perf_counter() - t0, 1)}
            f = fits[start]
            per_seed = dict(zip(result.test.seeds, result.test.predictions))
            results[start] = model_result(name, store.predictions_frame(name, per_seed, data.test))[0]  # key order
            print(f"{name:18s} {start:15s} {f['valid_rmse_unit']:12.5f} {f['test_rmse_stars']:12.4f}  "
                  f"{f['best_epochs']}", flush=True)
        kept = min(fits, key=lambda s: fits[s]["valid_rmse_unit"])
        paired = [versus(results[kept], other, y, args.boot) for other in (r0, baseline)]
        rows.append({"texts": name, "from": previous.name, "kept": kept, "starts": fits, "paired": paired})
        print(f"{name:18s} kept on validation: {kept}; " + "; ".join(
            f"minus {d['vs']} {d['minus']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] p={d['p_value']:.3f}"
            for d in paired), flush=True)
    store.save_encoder_cache(encoder)
    doc = {"profile": args.profile, "home": str(args.home), "seeds": list(profile.seeds),
           "recommender_r0": {"valid_rmse_unit": r0_valid, "test_rmse_stars": r0_test},
           "best_baseline": {"name": baseline.name, "test_rmse_stars": baseline.mean("rmse")}, "rows": rows}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
