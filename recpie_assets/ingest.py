"""Raw Google Local ingestion: the source files, reviews and places, with quarantine."""

from datetime import UTC, datetime

import dagster as dg

from recpie_assets.metadata import table_metadata
from recpie_assets.resources import RecpieResource, crash_point
from recpie_core.data.google_local import TABLES, TimeWindow, ingest_source


class IngestConfig(dg.Config):
    """Review times outside [earliest_time, read time + days_ahead] are rejected as 'time out of range'."""

    earliest_time: str = "1990-01-01"   # ISO date, UTC
    days_ahead: float = 1.0

    def to_core(self) -> TimeWindow:
        day = datetime.fromisoformat(self.earliest_time).replace(tzinfo=UTC)
        return TimeWindow(earliest_ms=int(day.timestamp() * 1000), days_ahead=self.days_ahead)


def _summary_metadata(summary) -> dict:
    return {
        "lines_read": summary.lines_read,
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "rejected_by_reason": dg.MetadataValue.json(dict(summary.rejected_by_reason)),
        "warnings": dg.MetadataValue.json(summary.warnings),
        "nulled_fields": dg.MetadataValue.json(summary.nulled_fields),
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
        "skipped": dg.MetadataValue.json(dict(files.skipped)),
        "bytes": sum(f.stat().st_size for f in files.reviews + files.meta),
    })


_DESCRIPTIONS = {
    "raw_reviews": "Every review line that parsed and validated, one row per review.",
    "rejected_reviews": "Review lines that did not: raw line, file, line number, reason.",
    "raw_places": "Place metadata, one row per gmap_id (first occurrence kept).",
    "rejected_places": "Meta lines not kept (malformed, or a duplicate gmap_id), with the reason.",
}


@dg.multi_asset(name="ingest", specs=[
    dg.AssetSpec(name, deps=[google_local_files], kinds={"parquet"}, group_name="ingest", description=text)
    for name, text in _DESCRIPTIONS.items()])
def ingest(config: IngestConfig, recpie: RecpieResource):
    """All four tables of one source in one streaming pass, published together (one commit)."""
    home = recpie.paths
    summaries = ingest_source(recpie.source_files(), home, window=config.to_core(),
                              on_phase=lambda phase: crash_point(f"ingest:{phase}"))
    for name in TABLES:
        kind = name.split("_")[1]
        extra = _summary_metadata(summaries[kind]) if name.startswith("raw_") else {}
        yield dg.MaterializeResult(asset_key=name, metadata={**table_metadata(home.table(name)), **extra})
