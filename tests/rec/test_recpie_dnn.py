"""RecPIEDNN: token layout, explanation inputs, Ablation 1, and that it learns the toy signal."""

import pytest
import torch

from recpie_core.rec.fit import FitConfig, fit_rating_model, predict
from recpie_core.rec.metrics import rating_metrics
from recpie_core.rec.recpie_dnn import TOKENS, RecPIEConfig, RecPIEDNN
from recpie_core.rec.registry import build_model


def sizes(data):
    v = data.vocab
    return v.n_users, v.n_places, v.n_categories


def with_random_explanations(tensors, dim=384, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(tensors)
    return tensors.with_explanations(torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g))


def test_forward_with_attention_shapes(tiny_data):
    torch.manual_seed(0)
    model = build_model("recpie", *sizes(tiny_data)).eval()
    batch = with_random_explanations(tiny_data.train).batch(torch.arange(16))
    y, attn = model.forward_with_attention(batch)
    assert TOKENS == ("pos", "neg", "user", "place", "seq")
    assert y.shape == (16,) and attn.shape == (16, 5, 5)
    assert torch.allclose(attn.sum(-1), torch.ones(16, 5), atol=1e-6)
    assert ((y > 0) & (y < 1)).all()  # sigmoid: always on the unit scale
    assert torch.equal(model(batch), y)


def test_user_vectors_are_the_user_embedding(tiny_data):
    model = build_model("recpie", *sizes(tiny_data))
    ids = torch.tensor([1, 2, 3])
    assert isinstance(model.user_embedding, torch.nn.Embedding)
    assert torch.equal(model.user_vectors(ids), model.user_embedding(ids))
    assert model.user_vectors(ids).shape == (3, 8)


def test_missing_explanations_mean_zero_sentence_vectors(tiny_data):
    torch.manual_seed(0)
    model = build_model("recpie", *sizes(tiny_data)).eval()
    idx = torch.arange(16)
    none = model(tiny_data.train.batch(idx))
    zeros = model(tiny_data.train.with_explanations(torch.zeros(len(tiny_data.train), 384),
                                                    torch.zeros(len(tiny_data.train), 384)).batch(idx))
    given = model(with_random_explanations(tiny_data.train).batch(idx))
    assert torch.allclose(none, zeros, atol=1e-6)
    assert not torch.allclose(none, given)  # "input" tokens do read the explanations


def test_ablation_has_no_dependency_on_explanations(tiny_data):
    torch.manual_seed(0)
    model = build_model("recpie_no_expl", *sizes(tiny_data)).eval()
    assert model.config.explanation_tokens == "learned"
    assert not any("proj" in n and ("pos" in n or "neg" in n) for n, _ in model.named_parameters())
    idx = torch.arange(16)
    a = model(tiny_data.train.batch(idx))
    b = model(with_random_explanations(tiny_data.train, seed=1).batch(idx))
    c = model(with_random_explanations(tiny_data.train, seed=2).batch(idx))
    assert torch.equal(a, b) and torch.equal(b, c)


def test_wrong_explanation_size_is_rejected(tiny_data):
    model = build_model("recpie", *sizes(tiny_data))
    batch = with_random_explanations(tiny_data.train, dim=768).batch(torch.arange(4))
    with pytest.raises(ValueError, match="expl_dim=384"):
        model(batch)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="explanation_tokens"):
        RecPIEConfig(explanation_tokens="none")
    with pytest.raises(ValueError, match="task"):
        RecPIEConfig(task="ranking")


def test_classification_outputs_logits(tiny_data):
    torch.manual_seed(0)
    model = RecPIEDNN(RecPIEConfig(task="classification"), *sizes(tiny_data))
    p = predict(model, tiny_data.test)
    assert p.shape == (len(tiny_data.test),) and ((p >= 0) & (p <= 1)).all()


def test_recpie_learns_the_toy_signal(learnable_data):
    cfg = FitConfig(batch_size=128, epochs=8, progress=False, seed=0)
    torch.manual_seed(0)
    fit = fit_rating_model(build_model("recpie", *sizes(learnable_data)), learnable_data, cfg)
    mean = fit_rating_model(build_model("global_mean", *sizes(learnable_data)), learnable_data, cfg)
    y = learnable_data.test.rating
    rmse = rating_metrics(y, predict(fit.model, learnable_data.test))["rmse"]
    base = rating_metrics(y, predict(mean.model, learnable_data.test))["rmse"]
    assert fit.best_epoch > 0
    assert rmse < 0.85 * base, (rmse, base)
