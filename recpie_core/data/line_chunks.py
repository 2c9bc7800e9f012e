"""Google Local source files in, newline-terminated chunks of whole lines out.

``line_chunks(path, chunk_bytes)`` reads a plain or gzipped file (gzip is recognised by
its magic bytes; ISA-L inflates, in C with the GIL released) and cuts the content into
chunks of about ``chunk_bytes`` that end at a newline. A leading UTF-8 BOM is dropped and
a missing last newline added. A line longer than MAX_LINE_BYTES is not held in memory: it
comes out alone as a ``LongLine`` (its first bytes and its length) and is rejected later.
An empty, truncated or corrupt file raises SourceError naming it, possibly after chunks
were yielded: the caller keeps nothing from such a file.

``prefetch`` runs the reading on its own thread, a few chunks ahead, so decompression
overlaps parsing. What a chunk becomes is up to ``line_parsing``; this module knows
nothing of JSON.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import NamedTuple

# ISA-L inflate: zlib's API at 2.3x its speed here (bench/reports/ingest.md)
from isal import isal_zlib

RAW_MAX_CHARS = 10_000            # rejected raw lines are cut here, with a note (line_parsing.raw_text)
MAX_LINE_BYTES = 64 << 20         # a longer "line" is rejected unread past this

_READ_BYTES = 1 << 20             # compressed bytes per read
_INFLATE_BYTES = 4 << 20          # decompressed bytes per inflate call (bounds a gzip bomb)
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class SourceError(ValueError):
    """A source folder or file that cannot be ingested at all (the message names it)."""


class LongLine(NamedTuple):
    """One line over MAX_LINE_BYTES: only its start is kept."""
    head: bytes
    n_bytes: int


class Chunk(NamedTuple):
    """Whole lines of one file (or one over-long line), as the reader thread hands them on."""
    data: bytes | LongLine     # whole lines, ending with b"\n"
    first_line: int            # 1-based number of its first line
    source_pos: int            # source bytes read so far (for progress)
    prepared: Sized | None = None    # what the reader thread worked out ahead (see google_local._Kind)


def _file_blocks(path: Path, pos: list[int]) -> Iterator[bytes]:
    """Decompressed content of ``path`` in blocks; raises SourceError unless it ends cleanly.

    gzip is recognised by its magic bytes. Multi-member files and zero padding are read as
    ``gzip`` does; a file that ends inside a member is truncated, and nothing it yielded
    must be kept (the caller discards its whole output on the exception).
    """
    with open(path, "rb", buffering=0) as fh:
        def read() -> bytes:
            b = fh.read(_READ_BYTES)
            pos[0] += len(b)
            return b

        pending = read()
        if not pending:
            raise SourceError(f"{path}: empty file (0 bytes)")
        if not pending.startswith(_GZIP_MAGIC):
            if path.name.endswith(".gz"):
                raise SourceError(f"{path}: named .gz but is not a gzip file")
            while pending:
                yield pending
                pending = read()
            return
        inflater = isal_zlib.decompressobj(31)
        while True:
            if not pending:
                pending = read()
                if not pending:
                    if not inflater.eof:
                        raise SourceError(f"{path}: truncated gzip file (ends inside the compressed data)")
                    return
            if inflater.eof:                    # between members
                pending = pending.lstrip(b"\0")
                if not pending:
                    continue
                while len(pending) < 2 and (more := read()):
                    pending += more
                if not pending.startswith(_GZIP_MAGIC):
                    raise SourceError(f"{path}: unexpected bytes after the end of the gzip data")
                inflater = isal_zlib.decompressobj(31)
            try:
                out = inflater.decompress(pending, _INFLATE_BYTES)
            except isal_zlib.error as e:
                raise SourceError(f"{path}: corrupt gzip data ({e})") from None
            pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            if out:
                yield out


class _Pending:
    """Decompressed bytes not yet cut into chunks: ``pieces`` minus the first ``skip`` bytes."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.skip = 0
        self.size = 0

    def add(self, block: bytes) -> None:
        self.pieces.append(block)
        self.size += len(block)

    def newline_from(self, target: int) -> tuple[int, int] | None:
        """(piece, index) of the first newline at or after logical offset ``target``."""
        offset = -self.skip
        for k, p in enumerate(self.pieces):
            start = max(self.skip if k == 0 else 0, target - offset)
            if start < len(p) and (j := p.find(b"\n", start)) >= 0:
                return k, j
            offset += len(p)
        return None

    def last_newline(self) -> tuple[int, int] | None:
        for k in range(len(self.pieces) - 1, -1, -1):
            if (j := self.pieces[k].rfind(b"\n", self.skip if k == 0 else 0)) >= 0:
                return k, j
        return None

    def cut(self, k: int, j: int) -> bytes:
        """Everything up to piece ``k``, byte ``j`` included, as one buffer (one copy)."""
        views = [memoryview(p) for p in self.pieces[: k + 1]]
        views[0] = views[0][self.skip:] if k else views[0][self.skip: j + 1]
        if k:
            views[k] = views[k][: j + 1]
        data = b"".join(views)
        self.pieces, self.skip = self.pieces[k:], j + 1
        if self.skip == len(self.pieces[0]):
            self.pieces, self.skip = self.pieces[1:], 0
        self.size -= len(data)
        return data

    def take_all(self) -> bytes:
        data = b"".join([memoryview(self.pieces[0])[self.skip:], *self.pieces[1:]]) if self.pieces else b""
        self.pieces, self.skip, self.size = [], 0, 0
        return data


def line_chunks(path: Path, chunk_bytes: int) -> Iterator[tuple[bytes | LongLine, int]]:
    """Cut the content of ``path`` into (whole lines of about ``chunk_bytes``, source bytes read)."""
    pos = [0]
    pending = _Pending()
    long_line: list | None = None    # [head, size] while skipping the rest of an over-long line
    first, empty = True, True
    for block in _file_blocks(path, pos):
        if first:
            block, first = block.removeprefix(_BOM), False
        if long_line is not None:
            j = block.find(b"\n")
            if j < 0:
                long_line[1] += len(block)
                continue
            yield LongLine(long_line[0], long_line[1] + j), pos[0]
            long_line, block = None, block[j + 1:]
        pending.add(block)
        while pending.size >= chunk_bytes:
            at = pending.newline_from(chunk_bytes - 1) or pending.last_newline()
            if at is None:                   # one line so far, and no end in sight
                if pending.size > MAX_LINE_BYTES:
                    head = pending.take_all()
                    # Enough bytes for RAW_MAX_CHARS characters (UTF-8 takes at most 4 each).
                    long_line, empty = [head[: RAW_MAX_CHARS * 4], len(head)], False
                break
            empty = False
            yield pending.cut(*at), pos[0]
    if long_line is not None:
        yield LongLine(long_line[0], long_line[1]), pos[0]
    rest = pending.take_all()
    if rest:
        yield (rest if rest.endswith(b"\n") else rest + b"\n"), pos[0]
    elif empty:
        raise SourceError(f"{path}: no lines (the file decompresses to nothing)")


_END = object()


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Run ``items`` in a thread, ``depth`` items ahead (decompression overlaps parsing)."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:    # handed to the consumer, raised there
            q.put(e)
        finally:
            items.close()

    thread = threading.Thread(target=produce, name="recpie-read", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()

