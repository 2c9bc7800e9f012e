"""Retraining on its own: new or changed source files request a run of the whole graph; the schedule's
cron is configurable. Dagster's own sensor and schedule test contexts over a real folder."""

import os
import time
from datetime import UTC, datetime

import dagster as dg
import pytest

from recpie_assets.definitions import build_definitions, defs
from recpie_core.home import Manifest, write_manifest

HOUR_AGO = time.time() - 3600


def add_file(folder, name, text="{}\n", mtime=HOUR_AGO):
    """A source file finished copying at ``mtime`` (the sensor waits for fresher ones)."""
    path = folder / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    folder.mkdir()
    add_file(folder, "review-California.json")
    add_file(folder, "meta-California.json")
    return folder


def sensor_for(tmp_path, source):
    return build_definitions("smoke", str(tmp_path / "home"), str(source)).resolve_sensor_def("new_source_files")


def tick(sensor, cursor):
    return sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor))


def test_a_new_review_file_requests_a_run_of_the_whole_graph(tmp_path, source):
    sensor = sensor_for(tmp_path, source)
    assert sensor.job_name == "recpie_full" and sensor.default_status == dg.DefaultSensorStatus.STOPPED
    first = tick(sensor, None)
    assert first.run_requests == [] and "recorded 2 files" in first.skip_message
    quiet = tick(sensor, first.cursor)
    assert quiet.run_requests == [] and "no new or changed files" in quiet.skip_message

    add_file(source, "review-Nevada.json")
    new = tick(sensor, first.cursor)
    [request] = new.run_requests
    assert request.tags["recpie/changed"] == "review-Nevada.json"
    assert tick(sensor, new.cursor).run_requests == []  # the cursor moved: the same files run once


def test_a_changed_or_removed_file_requests_a_run_keyed_by_the_folder_version(tmp_path, source):
    sensor = sensor_for(tmp_path, source)
    cursor = tick(sensor, None).cursor
    add_file(source, "review-California.json", "{}\n{}\n")  # rewritten, longer
    (source / "meta-California.json").unlink()
    [request] = tick(sensor, cursor).run_requests
    assert request.tags["recpie/changed"] == "meta-California.json, review-California.json"
    add_file(source, "notes.txt")  # not a source file: no run
    assert tick(sensor, tick(sensor, cursor).cursor).run_requests == []
    assert tick(sensor, cursor).run_requests[0].run_key == request.run_key  # same version, same key


def test_a_file_still_being_written_is_waited_for(tmp_path, source):
    sensor = sensor_for(tmp_path, source)
    cursor = tick(sensor, None).cursor
    add_file(source, "review-Nevada.json", mtime=time.time())
    waiting = tick(sensor, cursor)
    assert waiting.run_requests == [] and "waiting for review-Nevada.json" in waiting.skip_message
    assert waiting.cursor == cursor  # not recorded: once the copy is done, the next tick runs it
    os.utime(source / "review-Nevada.json", (HOUR_AGO, HOUR_AGO))
    assert len(tick(sensor, waiting.cursor).run_requests) == 1


def test_a_missing_folder_or_the_synthetic_source_skips_with_a_reason(tmp_path, source):
    for review in source.glob("review-*"):
        review.unlink()
    assert "no review files" in tick(sensor_for(tmp_path, source), None).skip_message
    synthetic = build_definitions("smoke", str(tmp_path / "home")).resolve_sensor_def("new_source_files")
    assert "synthetic dataset" in tick(synthetic, None).skip_message


def test_the_schedule_runs_the_whole_graph_on_a_configurable_cron(tmp_path, monkeypatch):
    schedule = build_definitions("smoke", str(tmp_path)).resolve_schedule_def("weekly_retrain")
    assert schedule.cron_schedule == "0 3 * * 1" and schedule.job_name == "recpie_full"
    [request] = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 12, 7, 3, tzinfo=UTC))).run_requests
    assert request.job_name in (None, "recpie_full")

    write_manifest(tmp_path, Manifest("smoke", ""))
    monkeypatch.setenv("RECPIE_HOME", str(tmp_path))
    monkeypatch.setenv("RECPIE_RETRAIN_CRON", "30 2 * * *")
    for name in ("RECPIE_PROFILE", "RECPIE_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    assert defs().resolve_schedule_def("weekly_retrain").cron_schedule == "30 2 * * *"
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="invalid cron schedule 'nightly'"):
        build_definitions("smoke", str(tmp_path), retrain_cron="nightly")
