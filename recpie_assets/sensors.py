"""Retraining on its own: a sensor on the source folder and the weekly schedule, both on the full job.

The sensor's cursor is the folder's version: each review and meta file's size and mtime. A tick
that finds files added, changed or removed since the cursor requests one run of the whole graph
(ingestion and everything downstream), keyed by the new version so a version runs once. The
first tick only records the folder (the run that made the home has read it). Files still being
written (modified in the last ``settle_s`` seconds) are waited for, not ingested half-copied.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import dagster as dg

from recpie_core.data.google_local import find_source_files
from recpie_core.data.line_chunks import SourceError

WEEKLY = "0 3 * * 1"  # Mondays 03:00 UTC


def folder_version(folder: Path) -> dict[str, list[int]]:
    """File name -> [size, mtime_ns] of the review and meta files ingestion would read."""
    files = find_source_files(folder)
    return {p.name: [(s := p.stat()).st_size, s.st_mtime_ns] for p in files.reviews + files.meta}


def changed_files(old: dict[str, list[int]], new: dict[str, list[int]]) -> list[str]:
    """Names added, changed or removed between two versions, sorted."""
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def version_key(version: dict[str, list[int]]) -> str:
    return hashlib.sha256(json.dumps(version, sort_keys=True).encode()).hexdigest()[:16]


def build_source_sensor(source: str, job, settle_s: float = 60.0) -> dg.SensorDefinition:
    """``new_source_files``: a run of ``job`` when the files in ``source`` change (off until switched on)."""

    @dg.sensor(name="new_source_files", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Runs the whole graph when review or meta files in the source folder are "
                           "added, changed or removed.")
    def new_source_files(context: dg.SensorEvaluationContext):
        if not source:
            return dg.SkipReason("no source folder: this home reads the synthetic dataset, which never changes")
        try:
            version = folder_version(Path(source))
        except (SourceError, OSError) as exc:
            return dg.SkipReason(f"source folder not readable: {exc}")
        if context.cursor is None:
            return dg.SensorResult(skip_reason=f"recorded {len(version)} files in {source}",
                                   cursor=json.dumps(version))
        changed = changed_files(json.loads(context.cursor), version)
        if not changed:
            return dg.SkipReason(f"no new or changed files in {source}")
        settling = [n for n in changed if n in version and time.time() - version[n][1] / 1e9 < settle_s]
        if settling:
            return dg.SkipReason(f"waiting for {', '.join(settling)} to settle (modified in the last {settle_s:g} s)")
        request = dg.RunRequest(run_key=version_key(version),
                                tags={"recpie/trigger": "new_source_files", "recpie/changed": ", ".join(changed)[:200]})
        return dg.SensorResult(run_requests=[request], cursor=json.dumps(version))

    return new_source_files


def build_retrain_schedule(job, cron: str = WEEKLY) -> dg.ScheduleDefinition:
    """``weekly_retrain``: the whole graph on ``cron`` (off until switched on). Dagster refuses a
    string that is not a five-field cron expression, in one line."""
    return dg.ScheduleDefinition(name="weekly_retrain", job=job, cron_schedule=cron,
                                 default_status=dg.DefaultScheduleStatus.STOPPED,
                                 description="Retrains the whole graph on a fixed timetable.")
