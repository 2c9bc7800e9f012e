"""Crash-safe table writes.

Polars' ``write_parquet`` truncates its target in place, so a process killed mid-write
would destroy the previous good table. Every table goes to ``<name>.tmp-<uuid>`` in the
same folder, is fsynced, then renamed over the target (atomic on POSIX).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

TMP_MARK = ".tmp-"


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (so a rename survives a power cut), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result over ``target`` in one rename.

    ``write`` may create a file or a folder at ``tmp_path``. On failure the temporary
    is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}{TMP_MARK}{uuid.uuid4().hex}")
    try:
        write(tmp)
        if tmp.is_file():
            fsync_path(tmp)
        if (target.is_dir() and not target.is_symlink()) or (target.exists() and tmp.is_dir()):
            # os.replace cannot replace a non-empty folder, nor a file by a folder: move it aside first.
            old = target.with_name(f"{target.name}{TMP_MARK}old-{uuid.uuid4().hex}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            os.replace(tmp, target)
        fsync_path(target.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return target


def write_parquet_atomic(df: pl.DataFrame, target: Path, **kwargs) -> Path:
    """Write ``df`` to ``target`` (a ``.parquet`` file) so a crash never leaves half a table."""
    return atomic_write(Path(target), lambda tmp: df.write_parquet(tmp, **kwargs))


def sweep_temp_files(folder: Path, older_than_s: float = 3600.0) -> list[Path]:
    """Remove temporaries left by a process killed mid-write. Returns what was removed.

    Only temporaries untouched for ``older_than_s``: another process may be writing the
    young ones right now.
    """
    folder = Path(folder)
    if not folder.exists():
        return []
    removed, cutoff = [], time.time() - older_than_s
    for p in folder.rglob(f"*{TMP_MARK}*"):
        if not p.exists() or p.stat().st_mtime > cutoff:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def scan_table(path: Path) -> pl.LazyFrame:
    """A warehouse table: one Parquet file, or a folder of Parquet part files."""
    path = Path(path)
    if path.is_dir():
        return pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=False)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist; materialize its asset first")
    return pl.scan_parquet(path)
