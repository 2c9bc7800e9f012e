"""Raw Google Local ingestion: the source files, reviews and places, with quarantine."""

import dagster as dg

from recpie_assets.metadata import table_metadata
from recpie_assets.resources import RecpieResource
from recpie_core.data.google_local import ingest_places, ingest_reviews


def _summary_metadata(summary) -> dict:
    return {
        "lines_read": summary.lines_read,
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "rejected_by_reason": dg.MetadataValue.json(dict(summary.rejected_by_reason)),
        "seconds": round(summary.seconds, 2),
    }


@dg.asset(kinds={"json"}, group_name="ingest")
def google_local_files(recpie: RecpieResource) -> dg.MaterializeResult:
    """The Google Local files to ingest: the configured folder, or the synthetic dataset."""
    files = recpie.source_files()
    return dg.MaterializeResult(metadata={
        "folder": dg.MetadataValue.path(str(files.reviews[0].parent)),
        "review_files": dg.MetadataValue.json([f.name for f in files.reviews]),
        "meta_files": dg.MetadataValue.json([f.name for f in files.meta]),
        "bytes": sum(f.stat().st_size for f in files.reviews + files.meta),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec("raw_reviews", deps=[google_local_files], kinds={"parquet"}, group_name="ingest",
                     description="Every review line that parsed and validated, one row per review."),
        dg.AssetSpec("rejected_reviews", deps=[google_local_files], kinds={"parquet"}, group_name="ingest",
                     description="Review lines that did not: raw line, file, line number, reason."),
    ],
)
def reviews(recpie: RecpieResource):
    files, home = recpie.source_files(), recpie.paths
    summary = ingest_reviews(files.reviews, home.table("raw_reviews"), home.table("rejected_reviews"))
    yield dg.MaterializeResult(asset_key="raw_reviews",
                               metadata={**table_metadata(home.table("raw_reviews")), **_summary_metadata(summary)})
    yield dg.MaterializeResult(asset_key="rejected_reviews", metadata=table_metadata(home.table("rejected_reviews")))


@dg.multi_asset(
    specs=[
        dg.AssetSpec("raw_places", deps=[google_local_files], kinds={"parquet"}, group_name="ingest",
                     description="Place metadata, one row per gmap_id (first occurrence kept)."),
        dg.AssetSpec("rejected_places", deps=[google_local_files], kinds={"parquet"}, group_name="ingest",
                     description="Meta lines not kept (malformed, or a duplicate gmap_id), with the reason."),
    ],
)
def places(recpie: RecpieResource):
    files, home = recpie.source_files(), recpie.paths
    summary = ingest_places(files.meta, home.table("raw_places"), home.table("rejected_places"))
    yield dg.MaterializeResult(asset_key="raw_places",
                               metadata={**table_metadata(home.table("raw_places")), **_summary_metadata(summary)})
    yield dg.MaterializeResult(asset_key="rejected_places", metadata=table_metadata(home.table("rejected_places")))
