"""Crash-safe table writes.

Polars' ``write_parquet`` truncates its target in place, so a process killed mid-write
would destroy the previous good table. Every table goes to ``<name>.tmp-<uuid>`` in the
same folder, is fsynced, then renamed over the target (atomic on POSIX).

Tables that must change together (the ingested tables of one source) are published as one
version by ``commit_version``: each table's path is a symlink into ``<store>/current``, and
``current`` is a symlink to the version folder, swapped in one rename.
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
CURRENT = "current"               # in a version store: the symlink to the published version
_VERSION_PREFIX = "v-"


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
        try:
            if p.lstat().st_mtime > cutoff:
                continue
        except FileNotFoundError:    # went with a folder removed before it
            continue
        _remove(p)
        removed.append(p)
    return removed


def _remove(p: Path) -> None:
    """A file, a symlink (never what it points to) or a folder tree."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def new_staging(store: Path) -> Path:
    """An empty folder in ``store`` to build the next version in (``commit_version`` publishes it).

    Versions left unpublished by a killed process (staging folders, versions that ``current``
    does not name) are removed first.
    """
    store.mkdir(parents=True, exist_ok=True)
    live = os.readlink(store / CURRENT) if (store / CURRENT).is_symlink() else None
    for p in store.iterdir():
        if p.name != CURRENT and p.name != live:
            _remove(p)
    staging = store / f"{TMP_MARK}staging-{uuid.uuid4().hex}"
    staging.mkdir()
    return staging


def no_phase_hook(phase: str) -> None:
    """The default ``on_phase`` of ``commit_version``: crash tests pass one that fails."""


def commit_version(staging: Path, store: Path, targets: list[Path],
                   on_phase: Callable[[str], None] = no_phase_hook) -> Path:
    """Publish the tables built in ``staging`` (one entry per target, named like it) together.

    The staging folder becomes a version folder of ``store``; each target becomes a symlink
    to ``store/current/<name>`` (a table in the older layout, a real file or folder, is
    replaced); then ``current`` is pointed at the new version in one rename, the commit:
    a crash before it leaves every target as it was, a crash after it every target new.
    Older versions are removed last. ``on_phase(name)`` is called before each step
    (``before_links``, ``before_switch``, ``after_switch``), for crash tests.
    """
    missing = [t.name for t in targets if not (staging / t.name).exists()]
    if missing:
        raise FileNotFoundError(f"{staging} lacks {missing}: nothing committed")
    version = store / f"{_VERSION_PREFIX}{uuid.uuid4().hex}"
    os.replace(staging, version)
    fsync_path(store)
    try:
        on_phase("before_links")
        for target in targets:
            _point(target, os.path.relpath(store / CURRENT / target.name, target.parent))
        on_phase("before_switch")
        _point(store / CURRENT, version.name)
    except BaseException:
        _remove(version)              # never published (a kill leaves it to the next new_staging)
        raise
    on_phase("after_switch")
    for old in store.glob(f"{_VERSION_PREFIX}*"):
        if old != version:
            _remove(old)
    return version


def _point(link: Path, dest: str) -> None:
    """Make ``link`` a symlink to ``dest`` in one rename (a real folder there is moved aside first)."""
    if link.is_symlink() and os.readlink(link) == dest:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f"{link.name}{TMP_MARK}{uuid.uuid4().hex}")
    os.symlink(dest, tmp)
    if link.is_dir() and not link.is_symlink():
        old = link.with_name(f"{link.name}{TMP_MARK}old-{uuid.uuid4().hex}")
        os.replace(link, old)
        os.replace(tmp, link)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, link)
    fsync_path(link.parent)


def scan_table(path: Path) -> pl.LazyFrame:
    """A warehouse table: one Parquet file, or a folder of Parquet part files."""
    path = Path(path)
    if path.is_dir():
        return pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=False)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist; materialize its asset first")
    return pl.scan_parquet(path)
