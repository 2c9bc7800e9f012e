"""One ingestion, one commit: the four raw tables of a home come from one source, whatever
phase of the commit a failure or a SIGKILL hits (``RECPIE_CRASH_AT=ingest:<phase>``).

Each test ingests source A into a home, then source B with a crash injected, and reads
the tables back through ``RecpieHome.table``, the paths every reader uses.
"""

import json
import subprocess
import sys

import polars as pl
import pytest

from recpie_assets.resources import crash_point
from recpie_core.data.google_local import TABLES, find_source_files, ingest_source, read_table
from recpie_core.paths import RecpieHome

PHASES = ["before_commit", "before_links", "before_switch", "after_switch"]


def write_source(folder, tag: str, n: int):
    """``n`` reviews and ``n`` places whose text and names carry ``tag``, plus one bad line of each."""
    folder.mkdir()
    reviews = [json.dumps({"user_id": str(100 + i), "time": 1_600_000_000_000 + i, "rating": 4, "text": tag,
                           "gmap_id": f"0x{i}:0x1"}) for i in range(n)]
    places = [json.dumps({"gmap_id": f"0x{i}:0x1", "name": tag}) for i in range(n)]
    (folder / "review-x.json").write_text("\n".join([*reviews, "{bad"]) + "\n")
    (folder / "meta-x.json").write_text("\n".join([*places, "{bad"]) + "\n")
    return find_source_files(folder)


def tables(home: RecpieHome) -> dict[str, pl.DataFrame]:
    return {name: read_table(home.table(name)).collect() for name in TABLES}


def source_of(home: RecpieHome) -> dict[str, int]:
    """Each table's row count: A has 3 reviews and places, B 5 (one rejected line each)."""
    return {name: df.height for name, df in tables(home).items()}


A = {"raw_reviews": 3, "rejected_reviews": 1, "raw_places": 3, "rejected_places": 1}
B = {"raw_reviews": 5, "rejected_reviews": 1, "raw_places": 5, "rejected_places": 1}


@pytest.fixture
def home_with_a(tmp_path):
    home = RecpieHome(tmp_path / "home").ensure()
    ingest_source(write_source(tmp_path / "a", "A", 3), home)
    assert source_of(home) == A
    return home, write_source(tmp_path / "b", "B", 5)


def fail_at(phase):
    def hook(at):
        if at == phase:
            raise RuntimeError(f"injected at {at}")
    return hook


@pytest.mark.parametrize("phase", PHASES)
def test_a_failure_at_any_phase_leaves_one_source(home_with_a, phase):
    home, b = home_with_a
    with pytest.raises(RuntimeError, match="injected"):
        ingest_source(b, home, on_phase=fail_at(phase))
    assert source_of(home) == (B if phase == "after_switch" else A)
    if phase != "after_switch":               # nothing of B is left behind
        assert len(list((home.warehouse / "ingest").iterdir())) == 2
    ingest_source(b, home)                    # the next ingest cleans up and publishes B
    assert source_of(home) == B
    assert len(list((home.warehouse / "ingest").iterdir())) == 2     # current and its version


@pytest.mark.parametrize("phase", PHASES)
def test_a_sigkill_at_any_phase_leaves_one_source(home_with_a, phase):
    """As an OOM killer would; the hook kills the process itself (crash_point is tested below)."""
    home, b = home_with_a
    script = ("import os, sys; from pathlib import Path; "
              "from recpie_core.data.google_local import find_source_files, ingest_source; "
              "from recpie_core.paths import RecpieHome; "
              "ingest_source(find_source_files(Path(sys.argv[1])), RecpieHome(Path(sys.argv[2])), "
              "on_phase=lambda p: p == sys.argv[3] and os.kill(os.getpid(), 9))")
    done = subprocess.run([sys.executable, "-c", script, str(b.reviews[0].parent), str(home.root), phase],
                          capture_output=True, text=True)
    assert done.returncode == -9, done.stderr[-2000:]
    assert source_of(home) == (B if phase == "after_switch" else A)


def test_tables_keep_their_paths_and_are_read_whole(home_with_a):
    home, _ = home_with_a
    for name in TABLES:
        path = home.table(name)
        assert path.is_symlink() and path.is_dir()
        assert pl.read_parquet(path / "**" / "*.parquet").height == A[name]   # as tests and SQL read them
    assert tables(home)["raw_places"]["name"].to_list() == ["A"] * 3


def test_an_older_home_with_real_table_folders_is_taken_over(tmp_path):
    home = RecpieHome(tmp_path / "home").ensure()
    for name in TABLES:                       # the layout before versions: one folder per table
        (home.table(name)).mkdir()
        pl.DataFrame({"old": [1]}).write_parquet(home.table(name) / "part-00000.parquet")
    ingest_source(write_source(tmp_path / "b", "B", 5), home)
    assert source_of(home) == B
    assert sorted(p.name for p in home.warehouse.iterdir()) == sorted(["ingest", *(f"{t}.parquet" for t in TABLES)])


def test_an_unknown_crash_target_is_refused(monkeypatch):
    monkeypatch.setenv("RECPIE_CRASH_AT", "ingest:before_comit")
    with pytest.raises(ValueError, match="names no crash point") as err:
        crash_point("ingest:before_commit")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value, raises", [("ingest:before_links", True), ("explanations_r2", False),
                                           ("", False)])
def test_crash_targets_are_matched_whole(monkeypatch, value, raises):
    monkeypatch.setenv("RECPIE_CRASH_AT", value)
    if raises:
        with pytest.raises(RuntimeError, match="injected failure"):
            crash_point(value)
    crash_point("ingest:before_commit")       # another known target: nothing happens
