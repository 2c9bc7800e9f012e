"""A long pass over rows, done in parts that survive a kill: what makes the explanation pass resumable.

At the paper's scale a round explains ~7.5M rows (~15M explanations, hours on GPUs); a step that
starts over from zero after a kill loses all of it. So the pass is cut into chunks of a fixed
number of rows per split (``plan_chunks``), each chunk's finished table is written atomically as
one Parquet part file the moment it is done (``PartFolder``), and a rerun skips the chunks whose
part is there (``build_in_parts``). The parts live in a folder named by a fingerprint of
everything that decides their content (``fingerprint``: the adapter and recommender files, the
settings, the rows), so a part is never reused for other inputs: a folder of another fingerprint
is removed when the pass starts, and the caller removes the parts once the final table is written.

What a chunk holds depends only on its split, its index and its rows, never on which chunks were
done before (the caller seeds each chunk by its index), so a resumed pass and an uninterrupted
one give the same table. No Dagster, no environment: the step that calls this decides where the
parts live (``store.explanation_parts``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tqdm.auto import tqdm

from recpie_core.io import write_parquet_atomic

log = logging.getLogger(__name__)

PART_SUFFIX = ".parquet"


@dataclass(frozen=True)
class Chunk:
    """Rows ``start:stop`` of split ``split``, the ``index``-th chunk of that split."""

    split: str
    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        """The part's file stem: ``train-00003``."""
        return f"{self.split}-{self.index:05d}"

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan_chunks(sizes: dict[str, int], chunk_rows: int) -> list[Chunk]:
    """Chunks of at most ``chunk_rows`` rows over each split in ``sizes`` (split -> rows), in order."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return [Chunk(split, i, start, min(start + chunk_rows, n))
            for split, n in sizes.items() for i, start in enumerate(range(0, n, chunk_rows))]


# --- what decides the parts ----------------------------------------------------------------------

def _hash_path(h: hashlib._Hash, path: Path) -> None:
    """A file's bytes, or every file under a folder (sorted, with its path relative to the folder)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: cannot fingerprint the pass's inputs")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f"file {f.relative_to(path) if path.is_dir() else f.name}\0".encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)


def fingerprint(paths: Sequence[Path], settings: dict, tables: Sequence[pl.DataFrame]) -> str:
    """16 hex digits of SHA-256 over what decides a pass's output: the bytes of ``paths`` (files or
    folders), ``settings`` (JSON, keys sorted) and each table's schema and rows, in order.

    Rows are hashed with Polars' ``hash_rows``: fast at millions of rows and the same across
    processes, but not promised across Polars versions; an upgrade between a kill and its resume
    only makes the pass start over (another fingerprint), it never reuses a wrong part.
    """
    h = hashlib.sha256()
    for path in paths:
        _hash_path(h, Path(path))
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for table in tables:
        h.update(repr(table.schema).encode())
        h.update(table.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:16]


# --- where finished parts wait -------------------------------------------------------------------

class PartFolder:
    """The finished parts of one pass: ``<root>/<fingerprint>/<chunk name>.parquet``.

    Opening it removes the folders of other fingerprints under ``root`` (parts of other inputs:
    never reusable) and keeps this fingerprint's parts, which a rerun then skips.
    """

    def __init__(self, root: Path, fingerprint: str):
        self.root, self.path = Path(root), Path(root) / fingerprint
        if self.root.is_dir():
            for other in self.root.iterdir():
                if other != self.path:
                    log.info("removing parts of other inputs: %s", other)
                    shutil.rmtree(other) if other.is_dir() else other.unlink()
        self.path.mkdir(parents=True, exist_ok=True)

    def part(self, chunk: Chunk) -> Path:
        return self.path / f"{chunk.name}{PART_SUFFIX}"

    def has(self, chunk: Chunk) -> bool:
        return self.part(chunk).is_file()

    def finished(self) -> list[str]:
        """Names of the chunks whose part is written (temporaries of a killed write excluded)."""
        return sorted(p.name.removesuffix(PART_SUFFIX) for p in self.path.glob(f"*{PART_SUFFIX}"))

    def save(self, chunk: Chunk, table: pl.DataFrame) -> None:
        write_parquet_atomic(table, self.part(chunk))

    def load(self, chunk: Chunk) -> pl.DataFrame:
        table = pl.read_parquet(self.part(chunk))
        if table.height != chunk.rows:
            raise ValueError(f"part {self.part(chunk)} has {table.height} rows, its chunk {chunk.rows}: "
                             f"remove {self.path} to redo the pass")
        return table

    def discard(self) -> None:
        """Remove every part under ``root``: call it once the final table is written."""
        shutil.rmtree(self.root, ignore_errors=True)


# --- the pass ------------------------------------------------------------------------------------

def build_in_parts(chunks: Sequence[Chunk], make: Callable[[Chunk, Callable[[int], None]], pl.DataFrame],
                   parts: PartFolder | None = None, progress: bool = False, desc: str = "explanations") -> pl.DataFrame:
    """``make(chunk, advance)`` for every chunk whose part is not in ``parts`` yet, each written there
    as it is done, then every part concatenated in chunk order. ``parts=None`` keeps the chunks in
    memory (nothing survives a kill). One bar over all rows (resumed parts count as done, the ETA
    from the rows made in this run), moved by ``advance(n)`` as ``make`` finishes n rows of its
    chunk (each generation batch) and to the chunk's end when it returns; one INFO line per part made.
    """
    if not chunks:
        raise ValueError("nothing to do: every split is empty")
    todo = [c for c in chunks if parts is None or not parts.has(c)]
    total, left = sum(c.rows for c in chunks), sum(c.rows for c in todo)
    if parts is not None and len(todo) < len(chunks):
        log.info("resuming from %s: %d of %d parts (%d of %d rows) already done", parts.path,
                 len(chunks) - len(todo), len(chunks), total - left, total)
    kept: dict[Chunk, pl.DataFrame] = {}
    with tqdm(total=total, initial=total - left, unit="row", desc=desc, disable=not progress) as bar:
        for n, chunk in enumerate(todo, 1):
            t0, end = time.perf_counter(), bar.n + chunk.rows
            table = make(chunk, lambda rows, end=end: bar.update(min(rows, end - bar.n)))
            if table.height != chunk.rows:
                raise ValueError(f"part {chunk.name} made {table.height} rows for a chunk of {chunk.rows}")
            if parts is None:
                kept[chunk] = table
            else:
                parts.save(chunk, table)
            bar.update(end - bar.n)  # what ``make`` did not report
            log.info("part %s: %d rows in %.1f s (%d of the %d parts this run makes)", chunk.name, chunk.rows,
                     time.perf_counter() - t0, n, len(todo))
    return pl.concat([kept[c] if parts is None else parts.load(c) for c in chunks])
