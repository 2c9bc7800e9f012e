"""Numbers behind the data checks (the Dagster checks turn them into verdicts)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recpie_core.io import scan_table


def rejected_share(accepted: Path, rejected: Path) -> dict:
    """Accepted and rejected line counts of an ingested table, the rejected share, and the
    rejected lines per reason."""
    n_accepted = scan_table(accepted).select(pl.len()).collect().item()
    by_reason = dict(scan_table(rejected).group_by("reason").len().collect().iter_rows())
    n_rejected = sum(by_reason.values())
    return {"accepted": n_accepted, "rejected": n_rejected, "by_reason": by_reason,
            "rejected_share": n_rejected / max(n_accepted + n_rejected, 1)}
