"""The numbers behind the rejected-share check, on tables written here."""

import polars as pl

from recpie_core.data.checks import rejected_share


def test_rejected_share_counts_by_reason(tmp_path):
    pl.DataFrame({"user_id": ["a"] * 97}).write_parquet(tmp_path / "ok.parquet")
    pl.DataFrame({"reason": ["malformed JSON", "duplicate", "duplicate"]}).write_parquet(tmp_path / "bad.parquet")
    stats = rejected_share(tmp_path / "ok.parquet", tmp_path / "bad.parquet")
    assert stats == {"accepted": 97, "rejected": 3, "by_reason": {"malformed JSON": 1, "duplicate": 2},
                     "rejected_share": 0.03}
