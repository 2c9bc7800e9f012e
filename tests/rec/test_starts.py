"""How a text-reading recommender starts from the previous one (``rec.starts``), and ``rec_step``
keeping the start with the lowest validation RMSE: checked on the toy table, with explanation
embeddings that carry the rating (a text worth reading) or nothing."""

from dataclasses import replace

import pytest
import torch

from recpie_core.data.batches import RatingData, RatingTensors
from recpie_core.loop import rec_step
from recpie_core.loop_config import REC_STARTS, LoopConfig
from recpie_core.rec.fit import FitConfig
from recpie_core.rec.registry import build_model
from recpie_core.rec.starts import fit_from, only_trainable

DIM = 16
FIT = FitConfig(batch_size=128, epochs=4, patience=2, progress=False)


def _with_texts(t: RatingTensors, informative: bool, seed: int) -> RatingTensors:
    g = torch.Generator().manual_seed(seed)
    pos, neg = torch.randn(len(t), DIM, generator=g), torch.randn(len(t), DIM, generator=g)
    if informative:  # the first coordinate states the rating, as an ideal explanation would
        pos[:, 0], neg[:, 0] = 4 * (t.rating - 0.5), -4 * (t.rating - 0.5)
    return t.with_explanations(pos, neg)


def _data(base: RatingData, informative: bool) -> RatingData:
    return replace(base, train=_with_texts(base.train, informative, 1), valid=_with_texts(base.valid, informative, 2),
                   test=_with_texts(base.test, informative, 3))


def _model(data: RatingData, seed: int = 0):
    torch.manual_seed(seed)
    return build_model("recpie", data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories, expl_dim=DIM)


@pytest.fixture(scope="module")
def r0(tiny_data):
    """Round 0 on the toy table: no explanations, seeds 0 and 1."""
    return rec_step(tiny_data, "recpie_r0", FIT, (0, 1), overrides={"expl_dim": DIM})


def test_only_trainable_restores_the_flags_even_on_error():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[1].bias.requires_grad_(False)
    with pytest.raises(RuntimeError), only_trainable(model, model[0].parameters()):
        assert [p.requires_grad for p in model.parameters()] == [True, True, False, False]
        raise RuntimeError("boom")
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False]


def test_round_0_starts_from_scratch_and_says_so(r0):
    assert r0.start == "scratch" and r0.valid_by_start == {"scratch": pytest.approx(r0.valid_rmse)}


def test_probe_trains_the_projections_only(tiny_data, r0):
    data, init = _data(tiny_data, informative=True), r0.states()[0]
    fit = fit_from(_model(data), data, FIT, "probe", init)
    after = fit.model.state_dict()
    moved = {k for k in after if not torch.equal(after[k], init[k])}
    assert moved and moved <= {"pos_proj.weight", "pos_proj.bias", "neg_proj.weight", "neg_proj.bias"}
    assert fit.best_epoch > 0 and fit.valid["rmse"] < r0.fits[0].valid["rmse"] - 0.02  # it read the rating
    assert all(p.requires_grad for p in fit.model.parameters())  # the flags are back


def test_probe_finetune_continues_the_probe(tiny_data, r0):
    data, init = _data(tiny_data, informative=True), r0.states()[0]
    probe = fit_from(_model(data), data, FIT, "probe", init)
    both = fit_from(_model(data), data, FIT, "probe_finetune", init)
    n_probe = len(probe.history) - 1
    assert [r["valid_rmse"] for r in both.history[: n_probe + 1]] == [r["valid_rmse"] for r in probe.history]
    assert [r["epoch"] for r in both.history] == list(range(len(both.history)))  # epochs counted on
    assert both.valid["rmse"] <= probe.valid["rmse"] + 1e-7  # stage 2's epoch 0 is the probe's best
    assert both.valid["rmse"] == pytest.approx(both.history[both.best_epoch]["valid_rmse"])
    ids = both.model.state_dict()["user_embedding.weight"]
    assert both.best_epoch == probe.best_epoch or not torch.equal(ids, init["user_embedding.weight"])


def test_probe_finetune_reuses_a_given_probe_and_leaves_it_alone(tiny_data, r0):
    data, init = _data(tiny_data, informative=True), r0.states()[0]
    probe = fit_from(_model(data), data, FIT, "probe", init)
    kept = {k: t.clone() for k, t in probe.model.state_dict().items()}
    reused = fit_from(_model(data), data, FIT, "probe_finetune", init, probe=probe)
    alone = fit_from(_model(data), data, FIT, "probe_finetune", init)
    assert reused.valid == alone.valid and reused.best_epoch == alone.best_epoch
    assert all(torch.equal(reused.model.state_dict()[k], t) for k, t in alone.model.state_dict().items())
    assert all(torch.equal(probe.model.state_dict()[k], t) for k, t in kept.items())  # the probe fit is intact


def test_scratch_ignores_the_previous_state(tiny_data, r0):
    data = _data(tiny_data, informative=False)
    a = fit_from(_model(data), data, FIT, "scratch", r0.states()[0])
    b = fit_from(_model(data), data, FIT, "scratch", None)
    assert all(torch.equal(a.model.state_dict()[k], t) for k, t in b.model.state_dict().items())


def test_rec_step_keeps_the_start_with_the_lowest_validation_rmse(tiny_data, r0):
    data = _data(tiny_data, informative=True)
    result = rec_step(data, "recpie_r1", FIT, (0, 1), init_states=r0.states(), overrides={"expl_dim": DIM},
                      starts=REC_STARTS)
    assert set(result.valid_by_start) == set(REC_STARTS)
    assert result.start == min(result.valid_by_start, key=result.valid_by_start.get)
    assert result.valid_rmse == pytest.approx(result.valid_by_start[result.start])
    assert result.valid_rmse < r0.valid_rmse - 0.02  # the texts state the rating: the kept fit reads them
    warm = rec_step(data, "recpie_r1", FIT, (0, 1), init_states=r0.states(), overrides={"expl_dim": DIM})
    assert warm.start == "warm" and warm.valid_rmse == pytest.approx(result.valid_by_start["warm"])


@pytest.mark.parametrize("starts", [(), ("warm", "warm"), ("cold",)])
def test_loop_config_refuses_bad_starts(starts):
    with pytest.raises(ValueError, match="rec_starts"):
        LoopConfig(rec_starts=starts)
