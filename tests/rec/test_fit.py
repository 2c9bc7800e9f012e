"""fit_rating_model: bad configs and empty tables fail before training; seeds, warm start, early stopping."""

from dataclasses import fields, replace

import pytest
import torch

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.fit import FitConfig, fit_rating_model, predict, rating_loss
from recpie_core.rec.registry import build_model


def sizes(data):
    return data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories


def empty(tensors):
    return replace(tensors, **{f.name: getattr(tensors, f.name)[:0] for f in fields(RatingBatch)
                               if getattr(tensors, f.name) is not None})


class RecordingTracker:
    def __init__(self):
        self.metrics = []

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))


CFG = FitConfig(batch_size=128, epochs=2, progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": -1}, "epochs cannot be negative"),
    ({"lr": 0.0}, "lr must be a positive"),
    ({"lr": float("nan")}, "lr must be a positive"),
    ({"batch_size": 0}, "batch_size"),
    ({"patience": 0}, "patience"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"task": "ranking"}, "task must be one of"),
    ({"device": "gpu0"}, "not a torch device"),
])
def test_fit_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FitConfig(**kwargs)


def test_empty_training_table_fails_before_training(tiny_data):
    model = build_model("mf", *sizes(tiny_data))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="data.train has no rows"):
        fit_rating_model(model, replace(tiny_data, train=empty(tiny_data.train)), CFG)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_task_mismatch_fails(tiny_data):
    with pytest.raises(ValueError, match="built for task 'regression'"):
        fit_rating_model(build_model("mf", *sizes(tiny_data)), tiny_data, replace(CFG, task="classification"))


def test_rating_loss_by_hand():
    out, y = torch.tensor([0.5, 1.0]), torch.tensor([1.0, 0.75])
    assert rating_loss(out, y, "regression").item() == pytest.approx((0.25 + 0.0625) / 2)
    logits = torch.tensor([0.0, 0.0])
    assert rating_loss(logits, torch.tensor([0.75, 0.5]), "classification").item() == pytest.approx(0.6931, abs=1e-4)


def test_same_seed_same_model_different_seed_different(tiny_data):
    def run(seed):
        torch.manual_seed(0)  # same init; the fit seed drives shuffling and dropout
        fit = fit_rating_model(build_model("ncf", *sizes(tiny_data)), tiny_data, replace(CFG, seed=seed))
        return predict(fit.model, tiny_data.test)
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_fit_leaves_the_callers_rng_alone(tiny_data):
    model = build_model("ncf", *sizes(tiny_data))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_rating_model(model, tiny_data, CFG)
    assert torch.equal(torch.rand(3), expected)


def test_warm_start_loads_the_state(tiny_data):
    torch.manual_seed(0)
    first = fit_rating_model(build_model("recpie", *sizes(tiny_data)), tiny_data, CFG).model
    state = {k: v.clone() for k, v in first.state_dict().items()}
    torch.manual_seed(1)
    second = fit_rating_model(build_model("recpie", *sizes(tiny_data)), tiny_data, replace(CFG, epochs=0),
                              init_state=state)
    assert second.best_epoch == 0
    assert torch.equal(predict(second.model, tiny_data.test), predict(first, tiny_data.test))


def test_best_epoch_is_the_lowest_validation_loss_and_is_logged(tiny_data):
    tracker = RecordingTracker()
    torch.manual_seed(0)
    fit = fit_rating_model(build_model("ncf", *sizes(tiny_data)), tiny_data,
                           replace(CFG, epochs=30, patience=2, lr=0.05), tracker=tracker)
    losses = [h["valid_loss"] for h in fit.history]
    assert fit.best_epoch == min(range(len(losses)), key=losses.__getitem__)
    assert fit.stopped_early and len(fit.history) - 1 - fit.best_epoch == 2
    assert [s for s, _ in tracker.metrics] == list(range(1, len(fit.history)))
    assert {"train_loss", "valid_loss", "valid_rmse"} <= set(tracker.metrics[0][1])
    assert predict(fit.model, tiny_data.valid).sub(tiny_data.valid.rating).pow(2).mean().item() == \
        pytest.approx(fit.valid["loss"], rel=1e-5)


def test_empty_validation_keeps_the_last_epoch(tiny_data):
    torch.manual_seed(0)
    fit = fit_rating_model(build_model("mf", *sizes(tiny_data)), replace(tiny_data, valid=empty(tiny_data.valid)),
                           replace(CFG, epochs=3))
    assert fit.best_epoch == 3 and not fit.stopped_early
