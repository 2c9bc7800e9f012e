"""The PIE rule, chosen on validation rows (issue 11, item 3): round 1 of RecPIE with each update
rule against the profile's own (``profiles.PIE_CHOSEN``), on the same split, recommender_r0 and
rows; the choice is the lowest mean validation RMSE of ``recommender_r1`` over seeds.

Starts from a finished home (``recpie run --profile demo`` or ``eval``), whose round 1 is the
``chosen`` arm. Each other arm gets a home of its own under ``--work`` that links the finished
home's split, places, ``recommender_r0`` and ``explanation_only``; then ``lora_adapter_r1``,
``explanations_r1`` and ``recommender_r1`` run as the pipeline runs them, with the profile's PIE
config replaced (and, for ``*_read`` arms, the reward read from ``explanation_only``: a
recommender that was trained on the LLM's texts, where ``recommender_r0``'s explanation
projections never saw one). An arm whose home already holds ``recommender_r1`` is not run again.

    .venv/bin/python bench/bench_pie_rules.py --home /tmp/h_demo --profile demo \
        --work /tmp/pie_rules --out bench/reports/pie_rules.json

Per arm: validation RMSE (unit scale, mean over seeds: the selection), the PIE reward over the
first and last quarter of its steps and on the first step's pairs before and after the update,
the positive explanations' coverage of the true liked aspects on validation rows, the share cut
at the token cap; and, for the record only (never for the choice), test RMSE against
``recpie_r0`` and against ``chosen`` with paired intervals.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import polars as pl
from round_homes import linked_home, model_predictions, review_truth, round_parser, run_round, versus

from recpie_core import store
from recpie_core.explain.pie_config import PIEConfig
from recpie_core.paths import RecpieHome
from recpie_core.profiles import get_profile
from recpie_core.report import explanation_stats, pie_history, truth_coverage

log = logging.getLogger("bench_pie_rules")


def arms(pie: PIEConfig) -> dict[str, tuple[PIEConfig, bool]]:
    """Each arm's PIE config and whether its reward reads ``explanation_only`` (else ``recpie_r0``).

    Since b19a816 the profiles' own rule (the ``chosen`` arm) is ``group_read``; ``batch_mean`` is
    the rule they used before, kept so that the two can still be compared on a fresh home."""
    group = replace(pie, baseline="group", group_size=4, advantage_norm=True)
    return {
        # the paper's Eq. 7: ratio to the frozen base, clipped, times the always-positive reward
        "eq7": (replace(pie, objective="eq7", baseline="none", group_size=1, advantage_norm=False, lr=1e-4,
                        ppo_epochs=1, kl_coef=0.0), False),
        # PPO-style with the batch-mean baseline, reward from recommender_r0: the profiles' rule until b19a816
        "batch_mean": (replace(pie, baseline="batch_mean", group_size=1, advantage_norm=False), False),
        # GRPO's group: 4 samples of each pair, minus the pair's mean, over the group's std
        "group": (group, False),
        "group_read": (group, True),
    }


def valid_quality(home: RecpieHome, truth: pl.DataFrame | None) -> dict:
    """Coverage of true liked aspects by the positive explanations on validation rows; cut share."""
    table = pl.read_parquet(home.table(store.explanations(1)))
    out = explanation_stats(table)
    if truth is not None:
        out["valid_coverage_pos"] = truth_coverage(table.filter(pl.col("split") == "valid"), truth)["coverage_pos"]
    return out


def main() -> None:
    parser = round_parser(__doc__, "where the arm homes go", "bench/reports/pie_rules.json")
    parser.add_argument("--arms", nargs="+", default=["eq7", "batch_mean", "group"])
    args = parser.parse_args()
    profile, source = get_profile(args.profile), RecpieHome(args.home)
    table = arms(profile.pie)
    if unknown := set(args.arms) - set(table):
        raise SystemExit(f"unknown arms {sorted(unknown)}; known: {', '.join(table)}")
    truth_file = review_truth(source)
    truth = pl.read_parquet(truth_file) if truth_file else None

    homes, seconds = {"chosen": source}, {}
    for arm in args.arms:
        pie, read = table[arm]
        home = homes[arm] = linked_home(source, args.work / arm, models=("recommender_r0", "explanation_only"))
        if not (home.models / store.recommender(1)).exists():
            reward_from = home.model("explanation_only") if read else None
            seconds[arm] = run_round(home, replace(profile, pie=pie), train_r0=False,
                                     reward_from=reward_from)["seconds"]
            log.info("arm %s: round 1 in %.0f s", arm, seconds[arm])

    chosen, y = model_predictions(source, store.recommender(1), "chosen")
    r0, _ = model_predictions(source, store.recommender(0), "recpie_r0")
    rows = []
    for arm, home in homes.items():
        result, _ = model_predictions(home, store.recommender(1), arm)
        pie = pie_history([home.model(store.lora_adapter(1))]).get(store.round_model(1), {})
        rows.append({"arm": arm, "seconds": seconds.get(arm),
                     "valid_rmse_unit": store.fit_valid_rmse(home.model(store.recommender(1))),
                     "reward_first": pie.get("reward_first"), "reward_last": pie.get("reward_last"),
                     "readout": pie.get("readout") or None,  # the same pairs before and after (newer homes)
                     **valid_quality(home, truth),
                     "test_vs_r0": versus(result, r0, y, args.bootstrap),
                     **({} if arm == "chosen" else {"test_vs_chosen": versus(result, chosen, y, args.bootstrap)})})
    report = {"profile": args.profile, "home": str(args.home),
              "valid_rmse_r0_unit": store.fit_valid_rmse(source.model(store.recommender(0))),
              "selected": min(rows, key=lambda r: r["valid_rmse_unit"])["arm"], "arms": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
