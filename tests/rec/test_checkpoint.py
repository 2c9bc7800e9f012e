"""Checkpoints: safetensors + JSON round-trip to identical predictions for every registered model."""

import json

import pytest
import torch

from recpie_core.rec.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from recpie_core.rec.fit import FitConfig, fit_rating_model, predict
from recpie_core.rec.registry import RATING_MODELS, build_model


def sizes(data):
    return data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories


@pytest.mark.parametrize("name", list(RATING_MODELS))
def test_round_trip_gives_identical_predictions(name, tiny_data, tmp_path):
    torch.manual_seed(0)
    model = build_model(name, *sizes(tiny_data), **({"mlp": (16, 4)} if name.startswith("recpie") else {}))
    model.prepare(tiny_data.train)  # the mean tables are buffers and must travel too
    before = predict(model, tiny_data.test)
    out = save_checkpoint(model, name, model.config, tmp_path / "ckpt")
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert meta["model"] == name and meta["n_places"] == tiny_data.vocab.n_places
    loaded = load_checkpoint(out)
    assert type(loaded) is type(model) and loaded.config == model.config  # tuples survive JSON
    assert torch.equal(predict(loaded, tiny_data.test), before)


def test_trained_recpie_round_trip_and_overwrite(tiny_data, tmp_path):
    torch.manual_seed(0)
    cfg = FitConfig(batch_size=128, epochs=1, progress=False)
    fit = fit_rating_model(build_model("recpie", *sizes(tiny_data)), tiny_data, cfg)
    save_checkpoint(fit.model, "recpie", fit.model.config, tmp_path / "ckpt")
    save_checkpoint(fit.model, "recpie", fit.model.config, tmp_path / "ckpt")  # replacing is fine
    assert torch.equal(predict(load_checkpoint(tmp_path / "ckpt"), tiny_data.test), predict(fit.model, tiny_data.test))


def test_name_and_config_must_match_the_model(tiny_data, tmp_path):
    model = build_model("mf", *sizes(tiny_data))
    with pytest.raises(ValueError, match="BiasedMF"):
        save_checkpoint(model, "ncf", model.config, tmp_path / "x")
    with pytest.raises(ValueError, match="MFConfig"):
        save_checkpoint(model, "mf", {"dim": 8}, tmp_path / "x")
