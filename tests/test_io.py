"""Crash-safe writes: a failed or killed write leaves the previous table whole."""

import os
import time

import polars as pl
import pytest

from recpie_core.io import (
    CURRENT,
    TMP_MARK,
    atomic_write,
    commit_version,
    new_staging,
    scan_table,
    sweep_temp_files,
    write_parquet_atomic,
)


def test_failed_write_keeps_previous_version(tmp_path):
    target = tmp_path / "t.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1, 2]}), target)

    def broken(tmp):
        pl.DataFrame({"a": [9]}).write_parquet(tmp)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert pl.read_parquet(target)["a"].to_list() == [1, 2]
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]


def test_folder_tables_are_replaced_whole(tmp_path):
    target = tmp_path / "t.parquet"

    def parts(n):
        def write(tmp):
            tmp.mkdir()
            for i in range(n):
                pl.DataFrame({"a": [i]}).write_parquet(tmp / f"part-{i}.parquet")
        return write

    atomic_write(target, parts(3))
    atomic_write(target, parts(2))
    assert sorted(p.name for p in target.iterdir()) == ["part-0.parquet", "part-1.parquet"]


def test_sweep_removes_stale_temporaries_only(tmp_path):
    stale, young = tmp_path / f"x.parquet{TMP_MARK}abc", tmp_path / f"y.parquet{TMP_MARK}def"
    stale.write_text("half"), young.write_text("being written")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    (tmp_path / "keep.parquet").write_text("whole")
    removed = sweep_temp_files(tmp_path)
    assert [p.name for p in removed] == [stale.name]
    assert young.exists() and (tmp_path / "keep.parquet").exists()


def test_a_file_table_can_become_a_folder(tmp_path):
    target = tmp_path / "t.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1]}), target)
    atomic_write(target, lambda tmp: (tmp.mkdir(), pl.DataFrame({"a": [2]}).write_parquet(tmp / "part-0.parquet")))
    assert target.is_dir() and pl.read_parquet(target / "part-0.parquet")["a"].to_list() == [2]


def _staged(store, **tables):
    staging = new_staging(store)
    for name, value in tables.items():
        (staging / name).mkdir()
        pl.DataFrame({"a": [value]}).write_parquet(staging / name / "part-0.parquet")
    return staging


def test_commit_version_publishes_every_table_in_one_switch(tmp_path):
    store, targets = tmp_path / "store", [tmp_path / "t.parquet", tmp_path / "u.parquet"]
    commit_version(_staged(store, **{"t.parquet": 1, "u.parquet": 1}), store, targets)
    seen = []
    commit_version(_staged(store, **{"t.parquet": 2, "u.parquet": 2}), store, targets,
                   on_phase=lambda p: seen.append((p, [scan_table(t).collect()["a"][0] for t in targets])))
    assert seen == [("before_links", [1, 1]), ("before_switch", [1, 1]), ("after_switch", [2, 2])]
    assert sorted(p.name for p in store.iterdir())[0] == CURRENT and len(list(store.iterdir())) == 2


def test_commit_version_refuses_a_staging_folder_without_every_table(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(FileNotFoundError, match="u.parquet"):
        commit_version(_staged(store, **{"t.parquet": 1}), store, [tmp_path / "t.parquet", tmp_path / "u.parquet"])
    assert not (tmp_path / "t.parquet").exists()


def test_sweep_removes_a_stale_link_not_what_it_points_to(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.parquet").write_text("whole")
    link = tmp_path / f"current{TMP_MARK}abc"
    link.symlink_to("data")
    dangling = tmp_path / f"t{TMP_MARK}def"
    dangling.symlink_to("nowhere")
    for p in (link, dangling):
        os.utime(p, (time.time() - 7200, time.time() - 7200), follow_symlinks=False)
    assert sorted(p.name for p in sweep_temp_files(tmp_path)) == sorted([link.name, dangling.name])
    assert not link.is_symlink() and not dangling.is_symlink() and (tmp_path / "data" / "keep.parquet").exists()
