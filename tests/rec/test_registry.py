"""Registry errors, and every registered model trained one epoch through fit (as RecBole does)."""

import pytest
import torch

from recpie_core.rec.base import RatingModel
from recpie_core.rec.fit import FitConfig, fit_rating_model, predict
from recpie_core.rec.registry import RATING_MODELS, build_model


def sizes(data):
    return data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown rating model 'gru4rec'.*sasrec"):
        build_model("gru4rec", 3, 3, 3)


def test_unknown_config_field_is_named():
    with pytest.raises(ValueError, match=r"no field\(s\) \['n_heads'\]"):
        build_model("sasrec", 3, 3, 3, n_heads=4)


def test_registry_is_complete():
    assert set(RATING_MODELS) == {"global_mean", "user_mean", "place_mean", "mf", "ncf", "sasrec", "bert4rec",
                                  "din", "recpie", "recpie_no_expl"}
    for model_cls, config_cls in RATING_MODELS.values():
        assert issubclass(model_cls, RatingModel)
        assert config_cls.__dataclass_params__.frozen


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("name", list(RATING_MODELS))
def test_every_model_trains_one_epoch(name, task, tiny_data):
    torch.manual_seed(0)
    model = build_model(name, *sizes(tiny_data), task=task)
    fit = fit_rating_model(model, tiny_data, FitConfig(epochs=1, batch_size=128, task=task, progress=False))
    pred = predict(fit.model, tiny_data.test)
    assert pred.shape == (len(tiny_data.test),)
    assert torch.isfinite(pred).all() and ((pred >= 0) & (pred <= 1)).all()
    assert len(fit.history) == (2 if any(p.requires_grad for p in model.parameters()) else 1)
    assert fit.valid["loss"] == fit.history[fit.best_epoch]["valid_loss"]


def test_model_configs_refuse_bad_sizes_dropout_and_task():
    from recpie_core.rec.registry import make_config

    with pytest.raises(ValueError, match="n_blocks"):
        make_config("sasrec", n_blocks=0)
    with pytest.raises(ValueError, match="dropout"):
        make_config("din", dropout=1.0)
    with pytest.raises(ValueError, match="task"):
        make_config("mf", task="ranking")
