"""Data efficiency (the paper's Table 6): RecPIE trained on a share of the training rows against
the best baseline trained on all of them, on the same test rows.

Starts from a finished home (``recpie run --profile eval``). Each share gets a home of its own
under ``--work``: the same places, validation and test rows, and a random share of the other
training rows (nested: the 25% rows are inside the 50% rows). Each row keeps the history the
split gave it, so test rows and their histories do not change; only what the models learn from
shrinks. Then round 1 runs as the pipeline runs it: ``recommender_r0``, ``lora_adapter_r1``,
``explanations_r1``, ``recommender_r1``. The 100% row is the finished home's own. A share whose
home already holds ``recommender_r1`` is not run again.

    .venv/bin/python bench/bench_data_efficiency.py --home /tmp/h_eval --profile eval \
        --shares 0.25 0.5 --work /tmp/data_efficiency --out bench/reports/data_efficiency.json

The comparator is the baseline with the lowest mean test RMSE on 100% of the data. Intervals are
paired bootstrap 95% intervals over the test rows (``rec.paired``).
"""

from __future__ import annotations

import json
import logging

import polars as pl
from round_homes import best_baseline, linked_home, model_predictions, round_parser, run_round, versus

from recpie_core.paths import RecpieHome
from recpie_core.profiles import get_profile

log = logging.getLogger("bench_data_efficiency")
FIT_ROWS = (pl.col("split") == "train") & ~pl.col("valid")  # training rows that are not validation rows


def share_split(split: pl.DataFrame, share: float, seed: int = 0) -> pl.DataFrame:
    """Validation and test rows as they are; ``share`` of the other training rows, by a fixed
    random order (so smaller shares are subsets of larger ones)."""
    rank = pl.int_range(pl.len()).shuffle(seed=seed).over(FIT_ROWS)
    return split.filter(~FIT_ROWS | (rank < (share * pl.len().over(FIT_ROWS)).round()))


def main() -> None:
    parser = round_parser(__doc__, "where the share homes go", "bench/reports/data_efficiency.json")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.25, 0.5])
    args = parser.parse_args()
    profile, source = get_profile(args.profile), RecpieHome(args.home)
    split = pl.read_parquet(source.table("user_temporal_split"))

    homes, seconds = {1.0: source}, {}
    for share in sorted(args.shares):
        home = homes[share] = linked_home(source, args.work / f"share{round(share * 100)}", share_split(split, share))
        if not (home.models / "recommender_r1").exists():
            seconds[share] = run_round(home, profile, train_r0=True)["seconds"]
            log.info("share %.2f: round 1 in %.0f s", share, seconds[share])

    baseline = best_baseline(source)
    report = {"profile": args.profile, "home": str(args.home), "best_baseline": baseline.name,
              "baseline_test_rmse": baseline.mean("rmse"), "shares": []}
    for share, home in sorted(homes.items()):
        rows = pl.read_parquet(home.table("user_temporal_split")).filter(FIT_ROWS).height
        entry = {"share": share, "train_rows": rows, "seconds": seconds.get(share)}
        for name in ("recommender_r0", "recommender_r1"):
            result, y = model_predictions(home, name)
            entry[name] = versus(result, baseline, y, args.bootstrap)
        report["shares"].append(entry)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
