"""Multi-seed evaluation shared by RecPIE and the baselines, and the paper's readouts.

``evaluate_model`` builds, fits and tests one registered model per seed; a
``ModelResult`` holds per-seed test metrics on both scales (1-5 stars and the unit scale
(r - 1) / 4). Rows that are not ``RatingModel``s (the LLM direct-rating baseline, RecPIE
per round) enter through ``ModelResult.from_predictions``. ``improvement_table`` is the
paper's Table 2 comparison, ``attention_readout`` the paper's Fig. 9. Their markdown, JSON
and PNG forms are in ``render.py``.

With ``task="classification"`` the predictions are P(rating >= 4): AUC is the metric to
read; RMSE/MAE then compare probabilities with unit-scale ratings and mean little.

Seeds: seed s builds the model under ``torch.manual_seed(s)`` (in a forked RNG, the
caller's state untouched) and fits it with ``FitConfig.seed = s`` (shuffling, dropout).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recpie_core.data.batches import RatingData, RatingTensors, make_loader
from recpie_core.rec.base import RatingModel
from recpie_core.rec.fit import FitConfig, fit_rating_model, predict, seeded
from recpie_core.rec.metrics import is_positive, rating_metrics
from recpie_core.rec.recpie_dnn import TOKENS, RecPIEDNN
from recpie_core.rec.registry import build_model
from recpie_core.tracking import NullTracker, PrefixTracker, Tracker

METRICS = ("rmse", "mae", "auc")
LOWER_IS_BETTER = {"rmse": True, "mae": True, "auc": False}


@dataclass
class ModelResult:
    """Test metrics of one model over seeds."""

    name: str
    seeds: list[int]
    stars: list[dict[str, float]]  # per seed: rmse, mae (1-5 scale), auc
    unit: list[dict[str, float]]  # per seed: rmse, mae (unit scale), auc
    best_epochs: list[int | None] = field(default_factory=list)  # per seed; None when not fitted here
    predictions: list[Tensor] = field(default_factory=list)  # per seed: (N,) unit-scale test predictions
    model: RatingModel | None = None  # the fitted model of the first seed
    valid: list[dict[str, float]] = field(default_factory=list)  # per seed: loss, rmse, mae, auc on the
    # validation rows at the best epoch (unit scale); empty when not fitted here

    @classmethod
    def from_predictions(cls, name: str, per_seed_predictions: Sequence[Tensor] | Mapping[int, Tensor],
                         y_true_unit: Tensor, best_epochs: Sequence[int | None] | None = None,
                         model: RatingModel | None = None) -> ModelResult:
        """A row from unit-scale predictions (N,) per seed (a list: seeds 0, 1, ...; or {seed: preds})."""
        if isinstance(per_seed_predictions, Mapping):
            seeds, preds = list(per_seed_predictions), list(per_seed_predictions.values())
        else:
            seeds, preds = list(range(len(per_seed_predictions))), list(per_seed_predictions)
        if not preds:
            raise ValueError(f"{name}: no predictions given")
        preds = [torch.as_tensor(p, dtype=torch.float32).reshape(-1).cpu() for p in preds]
        return cls(name=name, seeds=seeds,
                   stars=[rating_metrics(y_true_unit, p, scale="stars") for p in preds],
                   unit=[rating_metrics(y_true_unit, p, scale="unit") for p in preds],
                   best_epochs=list(best_epochs) if best_epochs is not None else [None] * len(preds),
                   predictions=preds, model=model)

    def values(self, metric: str, scale: str = "stars") -> np.ndarray:
        rows = self.stars if scale == "stars" else self.unit
        return np.array([r[metric] for r in rows], dtype=np.float64)

    def mean(self, metric: str, scale: str = "stars") -> float:
        return float(self.values(metric, scale).mean())

    def std(self, metric: str, scale: str = "stars") -> float:
        """Sample standard deviation over seeds (0 for a single seed)."""
        v = self.values(metric, scale)
        return float(v.std(ddof=1)) if v.size > 1 else 0.0


def evaluate_model(name: str, data: RatingData, seeds: Sequence[int], fit_cfg: FitConfig,
                   overrides: dict[str, Any] | None = None, tracker: Tracker = NullTracker()) -> ModelResult:
    """Build, fit (early-stopped on ``data.valid``) and test registered model ``name`` once per seed.

    ``tracker`` is the model's own run: each seed's fit logs under ``seed{s}/``, as a round
    recommender's does; the summary over seeds is the caller's to log (``steps.run_baselines``)."""
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    overrides = {"task": fit_cfg.task, **(overrides or {})}
    preds, best_epochs, valid, first_model = [], [], [], None
    for seed in seeds:
        with seeded(seed, fit_cfg.device):
            model = build_model(name, data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories, **overrides)
        fit = fit_rating_model(model, data, replace(fit_cfg, seed=seed), PrefixTracker(tracker, f"seed{seed}/"),
                               label=f"seed {seed}")
        preds.append(predict(fit.model, data.test))
        best_epochs.append(fit.best_epoch)
        valid.append(dict(fit.valid))
        if first_model is None:
            first_model = fit.model
    result = ModelResult.from_predictions(name, dict(zip(seeds, preds)), data.test.rating, best_epochs, first_model)
    result.valid = valid
    return result


def improvement_table(results: Mapping[str, ModelResult], reference: str) -> list[dict[str, Any]]:
    """Per metric: % improvement of ``reference`` over the best other model (paper Table 2).

    RMSE/MAE: (best_other - ref) / best_other; AUC: (ref - best_other) / best_other; in %,
    positive = the reference is better. RMSE/MAE percentages are the same on both scales.
    """
    if reference not in results:
        raise ValueError(f"reference {reference!r} is not among the results: {', '.join(results)}")
    rows = []
    for m in METRICS:
        ref = results[reference].mean(m)
        others = {n: r.mean(m) for n, r in results.items() if n != reference and math.isfinite(r.mean(m))}
        if not others or not math.isfinite(ref):
            rows.append({"metric": m, "reference": ref, "best_other": None, "best_other_value": math.nan,
                         "improvement_pct": math.nan})
            continue
        best = (min if LOWER_IS_BETTER[m] else max)(others, key=others.get)
        b = others[best]
        pct = 100.0 * ((b - ref) if LOWER_IS_BETTER[m] else (ref - b)) / abs(b) if b != 0 else math.nan
        rows.append({"metric": m, "reference": ref, "best_other": best, "best_other_value": b, "improvement_pct": pct})
    return rows


@torch.no_grad()
def attention_readout(model: RecPIEDNN, tensors: RatingTensors, batch_size: int = 4096) -> dict[str, Any]:
    """Mean attention the five tokens receive, for positively and negatively rated pairs (paper Fig. 9).

    ``positive``: rating >= 4 stars; ``negative``: rating < 4 (the complement, the same
    split as the AUC label). Per group: ``n``, ``matrix`` (5 x 5 mean attention, rows =
    attending token, each row sums to 1), ``received`` (per token, the mean over the five
    attending tokens of the attention it gets) and its ``pos`` / ``neg`` entries.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = {g: torch.zeros(len(TOKENS), len(TOKENS), dtype=torch.float64) for g in ("positive", "negative")}
    counts = {"positive": 0, "negative": 0}
    try:
        for b in make_loader(tensors, batch_size):
            _, attn = model.forward_with_attention(b.to(device))  # (B, 5, 5)
            attn = attn.double().cpu()
            pos = is_positive(b.rating)
            for g, sel in (("positive", pos), ("negative", ~pos)):
                sums[g] += attn[sel].sum(dim=0)
                counts[g] += int(sel.sum())
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"tokens": list(TOKENS), "negative_rule": "rating < 4 stars"}
    for g in ("positive", "negative"):
        matrix = sums[g] / counts[g] if counts[g] else torch.full_like(sums[g], math.nan)
        received = matrix.mean(dim=0)  # (5,) mean over attending tokens
        out[g] = {"n": counts[g], "matrix": matrix.tolist(),
                  "received": dict(zip(TOKENS, received.tolist())),
                  "pos": received[TOKENS.index("pos")].item(), "neg": received[TOKENS.index("neg")].item()}
    return out
