"""`recpie run` materializes the data assets through Dagster on Google Local files the project
did not write, leaving the documented tables under RECPIE_HOME/warehouse; user errors print one line."""

import gzip
import json

import polars as pl
import pytest

from recpie_assets.cli import main

MV = "Cafe, 1 Castro St, Mountain View, CA 94041"


def review(user, place, t, rating=5, text="ok"):
    return json.dumps({"user_id": user, "name": "N", "time": t, "rating": rating, "text": text,
                       "pics": None, "resp": None, "gmap_id": place})


def write_source(folder):
    """Two users in Mountain View with 6 ratings each, one user outside; plus bad lines."""
    folder.mkdir()
    lines = []
    for u in ("100000000000000000001", "100000000000000000002"):
        for i in range(6):
            lines.append(review(u, f"0x{i % 3}:0x1" if i % 2 else "0x9:0x9", 1_600_000_000_000 + i * 1000, 1 + i % 5))
    lines += [review("100000000000000000003", "0x9:0x9", 1_600_000_000_000 + i) for i in range(6)]
    bad = ['{"user_id": "1", "rating": 3', review("1", "0x0:0x1", 5, rating=9), lines[0]]  # malformed, range, duplicate
    (folder / "review-Test.json").write_text("\n".join(lines[:10]) + "\n")
    with gzip.open(folder / "review-More.json.gz", "wt") as fh:
        fh.write("\n".join(lines[10:] + bad) + "\n")
    meta = [json.dumps({"name": f"P{i}", "address": MV, "gmap_id": f"0x{i}:0x1", "category": ["Cafe"],
                        "description": "quiet"}) for i in range(3)]
    meta.append(json.dumps({"name": "Far", "address": "Diner, 4 Market St, San Francisco, CA 94103",
                            "gmap_id": "0x9:0x9", "category": None}))
    meta.append(meta[0])  # duplicate gmap_id
    with gzip.open(folder / "meta-Test.json.gz", "wt") as fh:
        fh.write("\n".join(meta) + "\n")
    return len(lines) + len(bad)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return tmp_path / "home"


def test_run_selection_on_foreign_files(tmp_path, home, capsys):
    n_lines = write_source(tmp_path / "src")
    rc = main(["--home", str(home), "run", "--source", str(tmp_path / "src"), "--select", "*user_temporal_split"])
    err = capsys.readouterr().err
    assert rc == 0, err
    # 3 of 21 lines rejected: over the 1% threshold, a warning (the check is not blocking)
    assert "check rejected_share_below_threshold on raw_reviews failed" in err and "rejected_share=0.1429" in err
    wh = home / "warehouse"
    for name in ("raw_reviews", "rejected_reviews", "raw_places", "rejected_places", "mountain_view_ratings",
                 "user_temporal_split"):
        assert (wh / f"{name}.parquet").exists(), name
    read = lambda name: pl.read_parquet(wh / f"{name}.parquet" / "**" / "*.parquet" if (wh / f"{name}.parquet").is_dir()  # noqa: E731
                                        else wh / f"{name}.parquet")
    assert read("raw_reviews").height + read("rejected_reviews").height == n_lines
    rejected = read("rejected_reviews").select("file", "line", "reason").sort("file", "line").rows()
    # files are read in name order, so the later copy of a duplicate is the one in review-Test.json
    assert rejected == [("review-More.json.gz", 9, "malformed JSON"),
                        ("review-More.json.gz", 10, "rating out of range"),
                        ("review-Test.json", 1, "duplicate")]
    assert read("raw_places").height == 4 and read("rejected_places").height == 1
    split = read("user_temporal_split")
    assert split["user_id"].n_unique() == 2  # the San Francisco-only user is filtered out
    assert set(split["split"]) == {"train", "test"}
    assert not (wh / "baselines.parquet").exists()  # outside the selection


def test_missing_source_folder_is_one_line(tmp_path, home, capsys):
    rc = main(["--home", str(home), "run", "--source", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope" in err[0]


def test_folder_without_review_files(tmp_path, home, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["--home", str(home), "run", "--source", str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "review" in err[0]


def test_bad_selection_is_one_line(home, capsys):
    rc = main(["--home", str(home), "run", "--select", "no_such_asset"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no_such_asset" in err[0]


def test_bad_profile_is_refused(home):
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(home), "run", "--profile", "huge"])
    assert exc.value.code == 2


def test_report_before_any_run(home, capsys):
    assert main(["--home", str(home), "report"]) == 2
    assert "recpie run" in capsys.readouterr().err
