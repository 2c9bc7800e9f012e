"""rating_metrics against hand-worked numbers: RMSE/MAE on both scales, AUC with average-rank ties."""

import math

import numpy as np
import pytest
import torch

from recpie_core.rec.metrics import auc, average_ranks, rating_metrics


def test_rmse_and_mae_on_both_scales():
    y = torch.tensor([1.0, 0.5, 0.25])  # 5, 3, 2 stars
    p = torch.tensor([0.75, 0.5, 0.5])  # 4, 3, 3 stars: errors 1, 0, 1 star
    stars = rating_metrics(y, p, scale="stars")
    unit = rating_metrics(y, p, scale="unit")
    assert stars["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert stars["mae"] == pytest.approx(2 / 3)
    assert unit["rmse"] == pytest.approx(math.sqrt(2 / 3) / 4)
    assert unit["mae"] == pytest.approx(2 / 12)
    assert stars["auc"] == unit["auc"] == pytest.approx(1.0)  # the one positive (5 stars) scores highest


def test_auc_with_ties_uses_average_ranks():
    # positives: 0.8, 0.3; negatives: 0.8, 0.1
    # pairs: (0.8 vs 0.8) 1/2, (0.8 vs 0.1) 1, (0.3 vs 0.8) 0, (0.3 vs 0.1) 1 -> 2.5 / 4
    y = np.array([1.0, 0.5, 0.75, 0.0])  # 5, 3, 4, 1 stars
    p = np.array([0.8, 0.8, 0.3, 0.1])
    assert rating_metrics(y, p)["auc"] == pytest.approx(0.625)
    assert average_ranks(np.array([0.8, 0.8, 0.3, 0.1])).tolist() == [3.5, 3.5, 2.0, 1.0]
    assert auc(np.array([True, False]), np.array([0.2, 0.2])) == pytest.approx(0.5)


def test_four_stars_counts_as_positive():
    assert rating_metrics([0.75, 0.5], [0.9, 0.1])["auc"] == pytest.approx(1.0)
    assert rating_metrics([0.75, 0.5], [0.1, 0.9])["auc"] == pytest.approx(0.0)


def test_auc_is_nan_with_one_class_and_for_empty_input():
    assert math.isnan(rating_metrics([1.0, 0.75], [0.2, 0.3])["auc"])
    out = rating_metrics([], [])
    assert all(math.isnan(v) for v in out.values())


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        rating_metrics([1.0], [1.0], scale="percent")
    with pytest.raises(ValueError, match="values"):
        rating_metrics([1.0, 0.5], [1.0])
