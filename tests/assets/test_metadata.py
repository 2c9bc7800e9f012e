"""Asset metadata as the UI shows it: rounded numbers, per-model tables, plots as images."""

import base64
import io

from PIL import Image

from recpie_assets.metadata import image_markdown, rounded, summary_table


def test_rounded_keeps_four_decimals_of_floats_and_leaves_the_rest():
    summary = {"valid_rmse_unit": 0.286712345, "best_epochs": [0, 1], "auc": [0.51234567, 0.6],
               "seeds": 3, "name": "recpie_r1", "nan": float("nan")}
    out = rounded(summary)
    assert out["valid_rmse_unit"] == 0.2867 and out["auc"] == [0.5123, 0.6]
    assert out["best_epochs"] == [0, 1] and out["seeds"] == 3 and out["name"] == "recpie_r1"
    assert out["nan"] != out["nan"]  # NaN stays NaN
    assert summary["valid_rmse_unit"] == 0.286712345  # the step's own summary is not changed


def test_a_plot_is_an_embedded_image_scaled_down(tmp_path):
    Image.new("RGB", (1600, 800), "white").save(tmp_path / "plot.png")
    md = image_markdown(tmp_path / "plot.png", "test RMSE", max_width=400).value
    head, data = md.split("](data:image/png;base64,")
    assert head == "![test RMSE" and data.endswith(")")
    with Image.open(io.BytesIO(base64.b64decode(data[:-1]))) as shown:
        assert shown.size == (400, 200)
    assert "no plot at" in image_markdown(tmp_path / "missing.png", "ladder").value


def test_a_summary_table_has_a_row_per_model_and_rounded_numbers():
    table = summary_table({"mf": {"valid_rmse_unit": 0.251234, "seeds": 3, "best_epochs": [1, 2]},
                           "sasrec": {"valid_rmse_unit": 0.3, "test_auc": 0.61}})
    assert table.splitlines() == ["| model | valid_rmse_unit | seeds | test_auc |", "|---|---|---|---|",
                                  "| mf | 0.2512 | 3 |  |", "| sasrec | 0.3 |  | 0.61 |"]
