"""Asset checks: the core computes the numbers, each check turns them into a verdict."""

import dagster as dg

from recpie_assets.resources import RecpieResource
from recpie_core.data.checks import rejected_share
from recpie_core.data.split import split_leaks


@dg.asset_check(asset="raw_reviews",
                description="The share of rejected review lines stays under the profile's threshold.")
def rejected_share_below_threshold(recpie: RecpieResource) -> dg.AssetCheckResult:
    home = recpie.paths
    stats = rejected_share(home.table("raw_reviews"), home.table("rejected_reviews"))
    threshold = recpie.get_profile().reject_threshold
    return dg.AssetCheckResult(
        passed=stats["rejected_share"] <= threshold,
        metadata={**stats, "by_reason": dg.MetadataValue.json(stats["by_reason"]), "threshold": threshold},
    )


@dg.asset_check(asset="user_temporal_split", blocking=True,
                description="No test rating older than the user's train ratings; histories hold only earlier ratings.")
def split_has_no_leaks(recpie: RecpieResource) -> dg.AssetCheckResult:
    counts = split_leaks(recpie.paths.table("user_temporal_split"))
    violations = {k: v for k, v in counts.items() if k != "n_rows"}
    return dg.AssetCheckResult(passed=not any(violations.values()), metadata=counts)
