"""A fit folder written by ``store.save_fit`` reads back as what was trained: the same validation
RMSE, one prediction row per (seed, test row), and checkpoints that predict the same numbers."""

import polars as pl
import pytest
import torch

from recpie_core import store
from recpie_core.data.batches import load_rating_data
from recpie_core.loop import rec_step
from recpie_core.rec.fit import FitConfig, predict
from recpie_core.rec.toy import make_toy_split


def test_a_fit_folder_reads_back_as_trained(tmp_path):
    split, places = make_toy_split(n_users=30, n_places=20, ratings_per_user=10, seed=0)
    data = load_rating_data(split, places, hist_len=5)
    result = rec_step(data, store.round_model(0), FitConfig(batch_size=64, epochs=1, progress=False), (0, 1),
                      overrides={"expl_dim": 4, "hist_len": 5})
    folder = store.save_fit(tmp_path / store.recommender(0), result, data.test)

    assert store.has_predictions(folder)
    assert store.fit_valid_rmse(folder) == pytest.approx(result.valid_rmse)
    preds = store.load_predictions(folder)
    assert preds.height == 2 * len(data.test) and set(preds["model"]) == {"recpie_r0"}
    for seed in (0, 1):
        again = predict(store.load_round(folder, seed), data.test)
        stored = preds.filter(pl.col("seed") == seed)["prediction"].to_numpy().copy()
        assert torch.allclose(again, torch.from_numpy(stored), atol=1e-6), seed
        assert torch.equal(again, result.test.predictions[result.test.seeds.index(seed)].float())


def test_an_explainer_folder_without_an_update_has_no_pie_history(tmp_path):
    assert store.load_pie_history(tmp_path) == [] and store.load_pie_stats(tmp_path) == {}


def test_pie_stats_read_back(tmp_path):
    from recpie_core.explain.pie_trainer import PIEStats

    readout = {"pairs": 2, "samples": 4, "before": 0.8, "after": 0.85, "diff_se": 0.01}
    store.save_pie_stats(tmp_path, PIEStats(steps=1, seconds=2.0, history=[{"reward_mean": 0.8}], readout=readout))
    assert store.load_pie_history(tmp_path) == [{"reward_mean": 0.8}]
    assert store.load_pie_stats(tmp_path)["readout"] == readout


def test_round_asset_reads_back_the_names_store_spells():
    for k in (0, 1, 12):
        assert store.round_asset(store.recommender(k)) == ("recommender", k)
        assert store.round_asset(store.lora_adapter(k)) == ("lora_adapter", k)
        assert store.round_asset(store.explanations(k)) == ("explanations", k)
    for name in ("explanation_only", store.VARIANT_EXPLANATIONS, "recommender_rx", "baselines", "my_recommender_r1"):
        assert store.round_asset(name) is None
