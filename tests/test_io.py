"""Crash-safe writes: a failed or killed write leaves the previous table whole."""

import os
import time

import polars as pl
import pytest

from recpie_core.io import TMP_MARK, atomic_write, sweep_temp_files, write_parquet_atomic


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
