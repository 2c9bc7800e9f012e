"""One run per home at a time, and what the home's tables were made from.

``<home>/recpie.lock`` is held (``flock``) by the process that runs in the home; it names its
pid, command and start time for whoever is refused. The kernel drops the lock when its holder
dies, so a lock left by a killed run is taken over, and the taker is told whose it was.

``<home>/recpie.json`` (the manifest) records the profile and data source the home's tables
come from, so a resumed or re-executed run reads the same data, and a run asking for other
data is refused instead of mixing two sources in one warehouse.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from recpie_core.io import atomic_write

LOCK_NAME = "recpie.lock"
MANIFEST_NAME = "recpie.json"


class HomeError(Exception):
    """The home cannot be used as asked; the message is one line for the user."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a home's lock."""

    pid: int
    command: str
    started: str  # UTC, ISO 8601

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command}, started {self.started})"


class HomeLock:
    """``with HomeLock(root, "recpie run") as lock:`` holds the home for the block, or raises
    ``HomeError`` naming the holder. ``lock.taken_over`` is the holder of a lock left by a
    process that died without releasing it (None after a clean release)."""

    def __init__(self, root: Path, command: str):
        self.path = Path(root) / LOCK_NAME
        self.command = command
        self.fd: int | None = None
        self.taken_over: Holder | None = None

    def acquire(self, on_busy: Callable[[str], None] | None = None) -> HomeLock:
        """Take the lock; when it is held, raise, or (given ``on_busy``) tell it why and wait."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = f"home {self.path.parent} is in use by {_holder_soon(self.path) or 'another process'}"
            if on_busy is None:
                os.close(fd)
                raise HomeError(busy) from None
            on_busy(busy)
            fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd, self.taken_over = fd, _read_holder(self.path)  # still there only if its holder died
        me = Holder(os.getpid(), self.command, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
        os.fsync(fd)
        return self

    def release(self) -> None:
        """Empty the file (a clean end) and drop the lock; the file stays, so that two
        processes never lock two different files of the same name."""
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> HomeLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder_soon(path: Path, wait_s: float = 1.0) -> Holder | None:
    """The holder of a lock that is held: it writes its name right after it takes the lock,
    so a refused process that reads an empty file waits a moment for the name."""
    deadline = time.monotonic() + wait_s
    while (holder := _read_holder(path)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder


def _read_holder(path: Path) -> Holder | None:
    try:
        return Holder(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # empty (released), half-written or foreign
        return None


@dataclass(frozen=True)
class Manifest:
    """What a home's tables come from."""

    profile: str
    source: str  # a folder of Google Local files; "" = the profile's synthetic dataset

    def describe_source(self) -> str:
        return self.source or "the synthetic dataset"


def read_manifest(root: Path) -> Manifest | None:
    """The home's manifest, or None for a home that has none yet."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        return Manifest(profile=doc["profile"], source=doc["source"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HomeError(f"{path} is not a RecPIE manifest ({exc}); fix or delete it") from None


def write_manifest(root: Path, manifest: Manifest) -> None:
    doc = {**asdict(manifest), "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write(Path(root) / MANIFEST_NAME, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n"))


def settle(recorded: Manifest | None, profile: str | None, source: str | None, *,
           force: bool = False, default_profile: str = "demo") -> Manifest:
    """The profile and source a run uses: what was asked (None = not asked), else what the
    home records. Asking for other data than the home holds is refused unless ``force``."""
    if recorded is None or force:
        base = recorded or Manifest(default_profile, "")
        return Manifest(profile or base.profile, base.source if source is None else source)
    if profile is not None and profile != recorded.profile:
        raise HomeError(f"the home was made with profile {recorded.profile}, not {profile}")
    if source is not None and source != recorded.source:
        asked = Manifest(recorded.profile, source).describe_source()
        raise HomeError(f"the home holds data from {recorded.describe_source()}, not from {asked}")
    return recorded
