"""Paired bootstrap of metric differences, against hand-worked cases and a slow loop over resamples
that scores each resample with ``rating_metrics``."""

import json
import math

import numpy as np
import pytest
import torch

from recpie_core.rec.evaluate import ModelResult
from recpie_core.rec.metrics import rating_metrics
from recpie_core.rec.paired import (
    PairedDifference,
    bootstrap_differences,
    compare_to_reference,
    paired_bootstrap,
    paired_json,
    paired_markdown,
    resample_indices,
)

# 8 test rows: 5, 4, 3, 1, 2, 5, 4, 3 stars on the unit scale (4 positives, 4 negatives)
Y = torch.tensor([1.0, 0.75, 0.5, 0.0, 0.25, 1.0, 0.75, 0.5])
ERR = torch.tensor([0.05, -0.1, 0.02, 0.1, -0.05, -0.08, 0.03, 0.06])  # unit-scale errors, all nonzero
GOOD = [Y + ERR, Y - ERR]  # two seeds
BAD = [Y + 2 * ERR]  # one seed, twice the error on every row


def test_identical_models_differ_by_exactly_zero():
    for metric in ("rmse", "mae", "auc"):
        d = paired_bootstrap(Y, GOOD, GOOD, metric, n_boot=200)
        assert (d.estimate, d.low, d.high, d.p_value) == (0.0, 0.0, 0.0, 1.0)
        assert not d.better and d.stars == ""


def test_better_on_every_row_excludes_zero_with_the_floor_p():
    for metric in ("rmse", "mae"):
        d = paired_bootstrap(Y, GOOD, BAD, metric, n_boot=2000)
        assert d.high < 0 and d.better
        assert d.p_value == pytest.approx(1 / 2000) and d.stars == "***"  # every resample < 0; never reported as 0
    worse = paired_bootstrap(Y, BAD, GOOD, "rmse", n_boot=2000)
    assert worse.low > 0 and not worse.better


def test_estimate_is_the_difference_of_rating_metrics():
    one = paired_bootstrap(Y, [GOOD[0]], BAD, "rmse", n_boot=10)
    assert one.estimate == pytest.approx(rating_metrics(Y, GOOD[0])["rmse"] - rating_metrics(Y, BAD[0])["rmse"])
    # RMSE of constant errors on stars: seeds 0.05 and 0.1 unit -> 0.2 and 0.4 stars, mean 0.3; B: 0.15 -> 0.6
    a, b = [Y + 0.05, Y + 0.1], [Y - 0.15]
    d = paired_bootstrap(Y, a, b, "rmse", n_boot=10)
    assert d.estimate == pytest.approx(0.3 - 0.6)
    assert d.low == pytest.approx(-0.3) and d.high == pytest.approx(-0.3)  # constant errors: every resample agrees
    unit = paired_bootstrap(Y, a, b, "mae", scale="unit", n_boot=10)
    assert unit.estimate == pytest.approx(0.075 - 0.15)


@pytest.mark.parametrize("metric,scale", [("rmse", "stars"), ("mae", "unit"), ("auc", "stars")])
def test_vectorised_values_match_a_loop_over_resamples(metric, scale):
    a = [torch.tensor([0.9, 0.7, 0.7, 0.2, 0.3, 0.8, 0.5, 0.5]),  # ties, across classes too
         torch.tensor([0.6, 0.8, 0.4, 0.1, 0.4, 0.9, 0.6, 0.3])]
    b = [torch.tensor([0.5, 0.5, 0.5, 0.4, 0.6, 0.7, 0.5, 0.2])]
    fast = bootstrap_differences(Y, a, b, metric, scale, n_boot=12, seed=3)
    slow = []
    for idx in resample_indices(len(Y), 12, seed=3):
        y = Y[torch.from_numpy(idx)]
        side = [np.mean([rating_metrics(y, p[torch.from_numpy(idx)], scale)[metric] for p in ps]) for ps in (a, b)]
        slow.append(side[0] - side[1])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)  # NaN (one-class AUC) where the loop has NaN
    d = paired_bootstrap(Y, a, b, metric, scale, n_boot=12, seed=3)
    finite = fast[np.isfinite(fast)]
    assert (d.low, d.high) == pytest.approx(tuple(np.quantile(finite, [0.025, 0.975])))
    assert d.n_dropped == 12 - finite.size


def test_better_follows_the_direction_of_each_metric():
    # same interval, above zero: higher AUC is better, higher RMSE is worse
    assert PairedDifference("auc", "stars", 0.1, 0.05, 0.15, 0.01, 2000, 8).better
    assert not PairedDifference("rmse", "stars", 0.1, 0.05, 0.15, 0.01, 2000, 8).better
    assert PairedDifference("rmse", "stars", -0.1, -0.15, -0.05, 0.01, 2000, 8).better
    # A ranks every positive above every negative, B the reverse
    a = [torch.tensor([0.9, 0.8, 0.2, 0.1, 0.3, 0.95, 0.7, 0.4])]
    b = [1 - a[0]]
    auc = paired_bootstrap(Y, a, b, "auc", n_boot=500)
    assert auc.estimate == pytest.approx(1.0) and auc.low > 0 and auc.better  # AUC 1.0 - 0.0
    assert not paired_bootstrap(Y, b, a, "auc", n_boot=500).better


def test_stars_thresholds():
    ps = (0.0005, 0.005, 0.02, 0.05, math.nan)
    marks = [PairedDifference("rmse", "stars", 0, 0, 0, p, 2000, 8).stars for p in ps]
    assert marks == ["***", "**", "*", "", ""]


def test_seeded_runs_agree_and_seeds_differ():
    a = [torch.tensor([0.6, 0.8, 0.4, 0.1, 0.4, 0.9, 0.6, 0.3])]
    first = paired_bootstrap(Y, a, BAD, "auc", n_boot=300, seed=5)
    assert paired_bootstrap(Y, a, BAD, "auc", n_boot=300, seed=5) == first
    assert not np.array_equal(bootstrap_differences(Y, a, BAD, "rmse", n_boot=50, seed=5),
                              bootstrap_differences(Y, a, BAD, "rmse", n_boot=50, seed=6))


def test_one_class_resamples_are_dropped_and_counted():
    y = torch.tensor([1.0, 0.0, 0.25, 0.5, 0.0])  # one positive in 5 rows: ~1/3 of resamples miss it
    a, b = [torch.tensor([0.9, 0.1, 0.2, 0.3, 0.4])], [torch.tensor([0.1, 0.9, 0.2, 0.3, 0.4])]
    d = paired_bootstrap(y, a, b, "auc", n_boot=400, seed=1)
    missing = int((~(resample_indices(5, 400, seed=1) == 0).any(axis=1)).sum())
    assert d.n_dropped == missing and 80 < missing < 200
    assert d.estimate == pytest.approx(1.0) and d.p_value == pytest.approx(1 / (400 - missing))


def test_mismatched_rows_raise():
    with pytest.raises(ValueError, match="seed 0 has 7 predictions but y_true has 8 rows"):
        paired_bootstrap(Y, GOOD, [Y[:7]], "rmse")
    results = {"ref": ModelResult.from_predictions("ref", GOOD, Y),
               "short": ModelResult.from_predictions("short", [Y[:7]], Y[:7])}
    with pytest.raises(ValueError, match="short: seed 0 has 7 predictions"):
        compare_to_reference(results, "ref", Y)
    with pytest.raises(ValueError, match="reference 'x'"):
        compare_to_reference(results, "x", Y)


def test_compare_markdown_and_json():
    results = {"recpie": ModelResult.from_predictions("recpie", GOOD, Y),
               "mf": ModelResult.from_predictions("mf", BAD, Y),
               "llm_direct": ModelResult.from_predictions("llm_direct", [torch.full((8,), 0.5)], Y)}
    diffs = compare_to_reference(results, "recpie", Y, n_boot=300)
    assert list(diffs) == ["mf", "llm_direct"] and list(diffs["mf"]) == ["rmse", "mae", "auc"]
    assert diffs["mf"]["rmse"].better
    assert diffs["llm_direct"]["auc"].estimate == pytest.approx(0.5)  # recpie ranks perfectly (1.0), a constant 0.5
    md = paired_markdown(diffs, "recpie")
    assert "negative RMSE/MAE difference or a positive AUC difference means recpie is better" in md
    assert "8 test rows" in md and "averaged over its seeds" in md
    assert "| model | RMSE | MAE | AUC |" in md and "| mf | -0.2694 [" in md and "p=0.003**" in md
    js = json.loads(json.dumps(paired_json(diffs)))
    assert js["mf"]["rmse"]["p_value"] == pytest.approx(1 / 300) and js["mf"]["rmse"]["better"] is True
