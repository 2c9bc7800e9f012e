"""RMSE, MAE and AUC of rating predictions, on a named scale.

Inputs are on the unit scale (r - 1) / 4 (``recpie_core.data.batches.to_unit``).
``scale="stars"`` reports RMSE and MAE on the 1-5 star scale (4x the unit-scale values);
``scale="unit"`` on the unit scale, the scale the paper most likely reports (RMSE 0.2976).
AUC does not depend on the scale: a rating >= 4 stars (unit >= 0.75) is a positive, the
prediction is the score, tied scores share their average rank (Mann-Whitney U), and it is
NaN when only one class is present.
"""

from __future__ import annotations

import math

import numpy as np
import torch

POSITIVE_UNIT = 0.75  # 4 stars on the unit scale: ratings >= this are positives
SCALES = ("stars", "unit")


def is_positive(y_unit):
    """Rating >= 4 stars, given unit-scale ratings (tensor or array); tolerant of float noise."""
    return y_unit >= POSITIVE_UNIT - 1e-6


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def average_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``scores``; tied values share the average of their ranks."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of the last member of each tie group
    return (ends - (counts - 1) / 2.0)[inverse]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2."""
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def rating_metrics(y_true_unit, y_pred_unit, scale: str = "stars") -> dict[str, float]:
    """-> {"rmse", "mae", "auc"}; RMSE/MAE on ``scale``; NaN everywhere for empty input."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    y, p = _as_numpy(y_true_unit), _as_numpy(y_pred_unit)
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values, y_pred {p.size}")
    if y.size == 0:
        return {"rmse": math.nan, "mae": math.nan, "auc": math.nan}
    err = (p - y) * (4.0 if scale == "stars" else 1.0)
    return {
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mae": float(np.mean(np.abs(err))),
        "auc": auc(is_positive(y), p),
    }
