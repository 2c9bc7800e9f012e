"""Crash-safe writes: a failed or killed write leaves the previous table whole."""

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


def test_sweep_removes_stray_temporaries(tmp_path):
    (tmp_path / f"x.parquet{TMP_MARK}abc").write_text("half")
    (tmp_path / "keep.parquet").write_text("whole")
    removed = sweep_temp_files(tmp_path)
    assert [p.name for p in removed] == [f"x.parquet{TMP_MARK}abc"]
    assert (tmp_path / "keep.parquet").exists()
