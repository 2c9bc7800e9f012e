"""Asset metadata as the UI shows it."""

from recpie_assets.metadata import rounded


def test_rounded_keeps_four_decimals_of_floats_and_leaves_the_rest():
    summary = {"valid_rmse_unit": 0.286712345, "best_epochs": [0, 1], "auc": [0.51234567, 0.6],
               "seeds": 3, "name": "recpie_r1", "nan": float("nan")}
    out = rounded(summary)
    assert out["valid_rmse_unit"] == 0.2867 and out["auc"] == [0.5123, 0.6]
    assert out["best_epochs"] == [0, 1] and out["seeds"] == 3 and out["name"] == "recpie_r1"
    assert out["nan"] != out["nan"]  # NaN stays NaN
    assert summary["valid_rmse_unit"] == 0.286712345  # the step's own summary is not changed
