"""`recpie run` and its home (issue 10, items 1, 2, 6, 7): a resumed run reads the source of the
run it resumes, a home refuses other data and a second run, a failed run prints one line and
leaves no temporaries behind, `--select` edge cases; through the real CLI, Dagster and MLflow."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from recpie_assets.cli import UserError, _selected, _settle, build_parser, main
from recpie_assets.definitions import build_definitions
from recpie_core.home import HomeLock, Manifest, read_manifest, write_manifest
from recpie_core.io import scan_table

MV = "Cafe, 1 Castro St, Mountain View, CA 94041"
USERS = ("100000000000000000001", "100000000000000000002")


def write_source(folder, truncated=False):
    """Two Mountain View users with 6 ratings each; the review file cut short if ``truncated``."""
    folder.mkdir(exist_ok=True)
    lines = [json.dumps({"user_id": u, "name": "N", "time": 1_600_000_000_000 + i * 1000, "rating": 1 + i % 5,
                         "text": "ok", "pics": None, "resp": None, "gmap_id": f"0x{i % 3}:0x1"})
             for u in USERS for i in range(6)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    (folder / "review-Test.json.gz").write_bytes(data[: len(data) // 2] if truncated else data)
    meta = [json.dumps({"name": f"P{i}", "address": MV, "gmap_id": f"0x{i}:0x1", "category": ["Cafe"]})
            for i in range(3)]
    (folder / "meta-Test.json").write_text("\n".join(meta) + "\n")
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    for name in ("RECPIE_PROFILE", "RECPIE_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def run(home, *args):
    return main(["--home", str(home), "run", *args])


def test_a_failed_run_prints_one_line_and_resume_keeps_its_source(tmp_path, home, capsys):
    """Failures 1 and 6: `--resume` without `--source` once re-ingested the synthetic data; a
    failed step printed two tracebacks; its temporaries outlived the next start by an hour."""
    src = write_source(tmp_path / "src", truncated=True)
    assert run(home, "--source", str(src), "--select", "raw_reviews") == 1
    out, err = capsys.readouterr()
    assert err.strip().count("\n") == 0 and "step ingest failed" in err and "review-Test.json.gz" in err, err
    assert "Stack Trace" not in out + err and "Not executing" not in out + err
    assert read_manifest(home) == Manifest("demo", str(src))

    write_source(src)  # the user fixes the file
    stray = [home / "warehouse" / "raw_reviews.parquet.tmp-0a1b", home / "models" / "recommender_r1.tmp-0a1b"]
    for path in stray:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by the failed run")
    assert run(home, "--resume") == 0, capsys.readouterr().err
    assert set(scan_table(home / "warehouse" / "raw_reviews.parquet").collect()["user_id"]) == set(USERS)
    assert not any(path.exists() for path in stray)
    # the run's config records its source: the UI's re-execution reads the same data
    instance = dg.DagsterInstance.get()
    resumed = instance.get_runs(limit=1)[0]
    assert resumed.run_config["resources"]["recpie"]["config"]["source"] == str(src)


def test_verbose_prints_the_traceback(tmp_path, home, capsys):
    src = write_source(tmp_path / "src", truncated=True)
    assert run(home, "--source", str(src), "--select", "raw_places", "--verbose") == 1
    assert "Stack Trace" in capsys.readouterr().err


def test_another_source_is_refused_unless_forced(tmp_path, home, capsys):
    write_manifest(home, Manifest("demo", str(write_source(tmp_path / "a"))))
    other = write_source(tmp_path / "b")
    assert run(home, "--source", str(other), "--select", "raw_places") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"holds data from {tmp_path / 'a'}, not from {other}" in err[0] and "--force" in err[0]
    assert run(home, "--profile", "smoke", "--select", "raw_places") == 2
    assert "made with profile demo, not smoke" in capsys.readouterr().err
    assert run(home, "--source", str(other), "--force", "--select", "raw_places") == 0
    assert read_manifest(home) == Manifest("demo", str(other))


def test_a_second_run_on_the_home_is_refused(tmp_path, home, capsys):
    """Failure 2: a second `recpie run` on one home deleted the first's staging folder."""
    with HomeLock(home, "recpie run"):
        assert run(home, "--source", str(write_source(tmp_path / "src")), "--select", "raw_places") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by pid" in err[0] and "(recpie run, started" in err[0] and "--wait" in err[0]
    assert not (home / "dagster").exists() and not (home / "mlflow").exists()  # nothing touched


@pytest.mark.slow
def test_two_runs_on_a_fresh_home(tmp_path, home):
    """Failure 2 as found: two processes on a fresh home raced the Dagster and MLflow migrations."""
    src = write_source(tmp_path / "src")
    cmd = [sys.executable, "-m", "recpie_assets.cli", "--home", str(home), "run", "--source", str(src),
           "--select", "raw_places"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(), p.stderr.read()) for p in procs)
    assert [rc for rc, _ in results] == [0, 2], results
    assert "is in use by pid" in results[1][1] and "Traceback" not in results[1][1]


def test_empty_selections_are_refused(home, capsys):
    """Failure 7: `--select ''` ran the whole pipeline."""
    assert run(home, "--select", "") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "leave --select out" in err[0]
    defs = build_definitions("demo", str(home))
    with pytest.raises(UserError, match="empty selection"):
        _selected("raw_places,,baselines", defs)


def test_commas_join_selections_as_dagsters_cli_does(home):
    """Failure 7: `--select a,b` (`dagster asset materialize`'s form) was rejected."""
    defs = build_definitions("demo", str(home))
    keys = {k.to_user_string() for k in _selected("raw_places, *mountain_view_ratings", defs)}
    assert {"raw_places", "raw_reviews", "google_local_files", "mountain_view_ratings"} <= keys
    assert "user_temporal_split" not in keys


def test_explain_uses_the_homes_profile(home, capsys):
    """Failure 7: `recpie explain` on a home made with another profile used the default profile."""
    write_manifest(home, Manifest("smoke", ""))
    args = build_parser().parse_args(["--home", str(home), "explain", "--user", "u", "--place", "p"])
    assert _settle(args, home, "") == Manifest("smoke", "")
    assert main(["--home", str(home), "explain", "--profile", "demo", "--user", "u", "--place", "p"]) == 2
    assert "made with profile smoke, not demo" in capsys.readouterr().err


@pytest.mark.slow
def test_the_ui_holds_the_home(tmp_path, home, capsys):
    """`recpie ui` execs `dagster dev`, which keeps the home's lock: a `recpie run` beside it is refused."""
    ui = subprocess.Popen([sys.executable, "-m", "recpie_assets.cli", "--home", str(home), "ui", "--port", "0"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        cmdline = Path(f"/proc/{ui.pid}/cmdline")
        deadline = time.monotonic() + 120
        while b"dagster\x00dev" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run(home, "--select", "raw_places") == 2
        assert f"in use by pid {ui.pid} (recpie ui" in capsys.readouterr().err
        assert read_manifest(home) == Manifest("demo", "")  # what the UI's code location reads
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:  # dagster dev's shutdown took longer on loaded cores (CI, load 4)
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=30)


def test_an_unknown_crash_target_is_one_line(home, capsys, monkeypatch):
    monkeypatch.setenv("RECPIE_CRASH_AT", "ingest:befor_commit")
    assert run(home, "--select", "raw_places") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names no crash point" in err[0]


def test_resume_refuses_a_failed_run_of_other_data(tmp_path, home, capsys):
    """After `--force` moved the home to other data, the older failed run is not resumed on it."""
    src = write_source(tmp_path / "a", truncated=True)
    assert run(home, "--source", str(src), "--select", "raw_places") == 1
    write_manifest(home, Manifest("demo", str(write_source(tmp_path / "b"))))  # what `--force --source b` records
    assert run(home, "--resume") == 2
    assert f"the last failed run read {src} with profile demo" in capsys.readouterr().err
