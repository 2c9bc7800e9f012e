"""Multi-seed evaluation, the Table 2 improvement, the report outputs, and the Fig. 9 attention readout."""

import json
import math

import pytest
import torch

from recpie_core.rec.evaluate import ModelResult, attention_readout, evaluate_model, improvement_table
from recpie_core.rec.fit import FitConfig, fit_rating_model
from recpie_core.rec.recpie_dnn import TOKENS
from recpie_core.rec.registry import build_model
from recpie_core.rec.render import plot_results, results_json, results_markdown

Y = torch.tensor([1.0, 0.75, 0.5, 0.0])  # 5, 4, 3, 1 stars


def hand_results():
    return {
        "ref": ModelResult.from_predictions("ref", [Y + 0.1, Y - 0.1], Y),  # unit RMSE 0.1 both seeds
        "a": ModelResult.from_predictions("a", {7: Y + 0.2}, Y),  # unit RMSE 0.2
        "b": ModelResult.from_predictions("b", {7: torch.full((4,), 0.5)}, Y),
    }


def test_from_predictions_metrics_on_both_scales():
    r = hand_results()["ref"]
    assert r.seeds == [0, 1]
    assert r.mean("rmse", "unit") == pytest.approx(0.1) and r.mean("rmse") == pytest.approx(0.4)
    assert r.std("rmse") == pytest.approx(0.0, abs=1e-6)
    assert r.mean("auc") == pytest.approx(1.0)


def test_improvement_table_by_hand():
    rows = {row["metric"]: row for row in improvement_table(hand_results(), "ref")}
    assert rows["rmse"]["best_other"] == "a"
    assert rows["rmse"]["improvement_pct"] == pytest.approx(50.0)  # (0.8 - 0.4) / 0.8 stars
    assert rows["auc"]["best_other"] == "a" and rows["auc"]["improvement_pct"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="reference 'c'"):
        improvement_table(hand_results(), "c")


def test_markdown_json_and_plot(tmp_path):
    res = hand_results()
    md = results_markdown(res, reference="ref")
    assert "1-5 star" in md and "(r-1)/4" in md and "| ref | 2 |" in md and "+50.00%" in md
    js = json.loads(json.dumps(results_json(res, reference="ref")))  # serialisable: NaN became None
    m = js["models"]["ref"]
    assert m["rmse"] == pytest.approx(0.4) and m["unit"]["rmse"] == pytest.approx(0.1)
    assert {"mae", "auc", "rmse_std", "mae_std", "auc_std"} <= set(m) and "mae_std" in m["unit"]
    png = plot_results(res, tmp_path / "results.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nan_auc_is_kept_out_of_json():
    one_class = torch.tensor([1.0, 1.0])
    js = results_json({"m": ModelResult.from_predictions("m", [one_class], one_class)})
    assert js["models"]["m"]["auc"] is None and js["models"]["m"]["rmse"] == 0.0


def test_evaluate_model_runs_each_seed(tiny_data):
    cfg = FitConfig(batch_size=128, epochs=2, progress=False)
    r = evaluate_model("mf", tiny_data, seeds=[3, 4], fit_cfg=cfg)
    again = evaluate_model("mf", tiny_data, seeds=[3], fit_cfg=cfg)
    assert r.seeds == [3, 4] and len(r.best_epochs) == 2 and r.model is not None
    assert r.stars[0] == again.stars[0]  # a seed reproduces
    assert r.stars[0] != r.stars[1]
    assert all(math.isfinite(r.mean(m)) for m in ("rmse", "mae", "auc"))
    with pytest.raises(ValueError, match="seeds"):
        evaluate_model("mf", tiny_data, seeds=[], fit_cfg=cfg)


def test_attention_readout(tiny_data):
    torch.manual_seed(0)
    fit = fit_rating_model(build_model("recpie", tiny_data.vocab.n_users, tiny_data.vocab.n_places,
                                       tiny_data.vocab.n_categories), tiny_data,
                           FitConfig(batch_size=128, epochs=1, progress=False))
    out = attention_readout(fit.model, tiny_data.test, batch_size=50)
    assert out["tokens"] == list(TOKENS)
    assert out["positive"]["n"] + out["negative"]["n"] == len(tiny_data.test)
    for g in ("positive", "negative"):
        matrix = torch.tensor(out[g]["matrix"], dtype=torch.float64)
        assert matrix.shape == (5, 5)
        assert torch.allclose(matrix.sum(dim=1), torch.ones(5, dtype=torch.float64))
        assert out[g]["pos"] == out[g]["received"]["pos"] and 0 < out[g]["neg"] < 1
        assert sum(out[g]["received"].values()) == pytest.approx(1.0)
