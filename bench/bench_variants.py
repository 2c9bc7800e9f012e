"""Explanation variants (the paper's Table 8): round 1 of RecPIE with each of the other prompt
variants (``explain.prompts``: ``positive_only``, ``general``, ``aspects``, ``summary``) against
the paper's ``contrastive`` pair, on the same split, recommender_r0 and test rows.

Starts from a finished home (``recpie run --profile eval``, whose round 1 is the contrastive
row). Each variant gets a home of its own under ``--work`` that links the finished home's split,
places and ``recommender_r0``; then ``lora_adapter_r1``, ``explanations_r1`` and
``recommender_r1`` run as the pipeline runs them, with the profile's prompt variant replaced.
A variant whose home already holds ``recommender_r1`` is not run again.

    .venv/bin/python bench/bench_variants.py --home /tmp/h_eval --profile eval \
        --variants positive_only summary general aspects --work /tmp/variants \
        --out bench/reports/variants.json

Intervals are paired bootstrap 95% intervals over the test rows, the variant minus contrastive.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from round_homes import linked_home, model_predictions, round_parser, run_round, versus

from recpie_core.explain.prompts import VARIANT_POLARITIES
from recpie_core.paths import RecpieHome
from recpie_core.profiles import get_profile

log = logging.getLogger("bench_variants")


def main() -> None:
    parser = round_parser(__doc__, "where the variant homes go", "bench/reports/variants.json")
    parser.add_argument("--variants", nargs="+", default=["positive_only", "summary", "general", "aspects"],
                        choices=[v for v in VARIANT_POLARITIES if v != "contrastive"])
    args = parser.parse_args()
    profile, source = get_profile(args.profile), RecpieHome(args.home)
    if profile.prompt.variant != "contrastive":
        raise SystemExit(f"profile {profile.name!r} explains with {profile.prompt.variant!r}, not contrastive")

    homes, seconds = {"contrastive": source}, {}
    for variant in args.variants:
        home = homes[variant] = linked_home(source, args.work / variant, models=("recommender_r0",))
        if not (home.models / "recommender_r1").exists():
            variant_profile = replace(profile, prompt=replace(profile.prompt, variant=variant))
            seconds[variant] = run_round(home, variant_profile, train_r0=False)["seconds"]
            log.info("variant %s: round 1 in %.0f s", variant, seconds[variant])

    contrastive, y = model_predictions(source, "recommender_r1", "contrastive")
    r0, _ = model_predictions(source, "recommender_r0", "recpie_r0")
    report = {"profile": args.profile, "home": str(args.home), "variants": []}
    for variant, home in homes.items():
        result, _ = model_predictions(home, "recommender_r1", variant)
        report["variants"].append({"variant": variant, "seconds": seconds.get(variant),
                                   "vs_r0": versus(result, r0, y, args.bootstrap),
                                   **({} if variant == "contrastive" else
                                      {"vs_contrastive": versus(result, contrastive, y, args.bootstrap)})})
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
