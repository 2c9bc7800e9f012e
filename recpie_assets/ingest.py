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


def _ingest_assets(name: str, kept: str, rejected: str, files_of, ingest) -> dg.AssetsDefinition:
    """``raw_<name>`` and ``rejected_<name>``, written together by one streaming pass."""
    spec = lambda key, text: dg.AssetSpec(key, deps=[google_local_files], kinds={"parquet"},  # noqa: E731
                                          group_name="ingest", description=text)

    @dg.multi_asset(name=name, specs=[spec(f"raw_{name}", kept), spec(f"rejected_{name}", rejected)])
    def _assets(recpie: RecpieResource):
        home = recpie.paths
        out, quarantine = home.table(f"raw_{name}"), home.table(f"rejected_{name}")
        summary = ingest(files_of(recpie.source_files()), out, quarantine)
        yield dg.MaterializeResult(asset_key=f"raw_{name}",
                                   metadata={**table_metadata(out), **_summary_metadata(summary)})
        yield dg.MaterializeResult(asset_key=f"rejected_{name}", metadata=table_metadata(quarantine))

    return _assets


reviews = _ingest_assets(
    "reviews", "Every review line that parsed and validated, one row per review.",
    "Review lines that did not: raw line, file, line number, reason.",
    lambda files: files.reviews, ingest_reviews)
places = _ingest_assets(
    "places", "Place metadata, one row per gmap_id (first occurrence kept).",
    "Meta lines not kept (malformed, or a duplicate gmap_id), with the reason.",
    lambda files: files.meta, ingest_places)
