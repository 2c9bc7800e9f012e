"""Asset checks: the core computes the numbers, each check turns them into a verdict."""


import dagster as dg
import polars as pl

from recpie_core.io import scan_table
from recpie_assets.resources import RecpieResource
from recpie_core.data.split import split_leaks


@dg.asset_check(asset="raw_reviews", description="The share of rejected review lines stays under the profile's threshold.")
def rejected_share_below_threshold(recpie: RecpieResource) -> dg.AssetCheckResult:
    home = recpie.paths
    accepted = scan_table(home.table("raw_reviews")).select(pl.len()).collect().item()
    rejected_tbl = scan_table(home.table("rejected_reviews"))
    rejected = rejected_tbl.select(pl.len()).collect().item()
    by_reason = dict(rejected_tbl.group_by("reason").len().collect().iter_rows())
    share = rejected / max(accepted + rejected, 1)
    threshold = recpie.get_profile().reject_threshold
    return dg.AssetCheckResult(
        passed=share <= threshold,
        metadata={"rejected_share": share, "threshold": threshold, "accepted": accepted,
                  "rejected": rejected, "by_reason": dg.MetadataValue.json(by_reason)},
    )


@dg.asset_check(asset="user_temporal_split", blocking=True,
                description="No test rating older than the user's train ratings; histories hold only earlier ratings.")
def split_has_no_leaks(recpie: RecpieResource) -> dg.AssetCheckResult:
    counts = split_leaks(recpie.paths.table("user_temporal_split"))
    violations = {k: v for k, v in counts.items() if k != "n_rows"}
    return dg.AssetCheckResult(passed=not any(violations.values()), metadata=counts)
