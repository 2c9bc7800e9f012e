"""The Google Local files a run reads: a user's folder, or the embedded synthetic dataset."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from recpie_core.data.google_local import SourceFiles, find_source_files
from recpie_core.data.synthetic import SyntheticConfig
from recpie_core.data.synthetic_writer import write_synthetic_google_local
from recpie_core.io import atomic_write


def synthetic_dir(raw: Path, cfg: SyntheticConfig) -> Path:
    """One folder per synthetic config, so a changed profile never reuses stale files."""
    digest = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]
    return raw / f"synthetic-{digest}"


def resolve_source(source: str | Path | None, raw: Path, synthetic: SyntheticConfig) -> SourceFiles:
    """The files to ingest: ``source`` if given, else the synthetic dataset (generated once).

    The synthetic folder is written to a temporary name and renamed into place, so a
    killed generation never leaves a half-written dataset that looks complete.
    """
    if source:
        return find_source_files(Path(source))
    folder = synthetic_dir(raw, synthetic)
    if not folder.is_dir():
        atomic_write(folder, lambda tmp: write_synthetic_google_local(synthetic, tmp))
    return find_source_files(folder)
