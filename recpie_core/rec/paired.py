"""Paired bootstrap of metric differences between two models on the same test rows.

The demo's test split has ~140 rows: a model's RMSE there has a standard error near 0.06
stars, larger than the differences between models. Both models are scored on the same rows,
so their errors are correlated; resampling rows once and scoring both models (and all their
seeds) on the same resample gives the spread of the difference itself, much narrower than
the two separate spreads (Efron & Tibshirani 1993, ch. 16; Koehn 2004 for paired resampling
of test sets).

Statistic: mean over A's seeds of metric(A) minus mean over B's seeds of metric(B), the
difference of the numbers in the results table (``ModelResult.mean``). The interval is the
percentile interval of that statistic over ``n_boot`` resamples of the rows with replacement;
the p-value is two-sided, 2 * min(share of resamples <= 0, share >= 0), floored at 1 / (number
of resamples used) so it is never reported as 0. Metric definitions are those of
``recpie_core.rec.metrics``: AUC of rating >= 4 with tied scores counting 1/2, undefined (and
the resample dropped, and counted) when a resample holds one class only.

Vectorised: a resample is a row of draw counts (how often each test row was drawn), so
RMSE/MAE of all resamples are one matrix product with the per-row squared/absolute errors,
and AUC is a count-weighted Mann-Whitney U over the rows sorted once per seed.
``resample_indices`` and ``bootstrap_differences`` expose the resamples and the per-resample
statistic (for a histogram, or to check against a loop).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recpie_core.rec.evaluate import LOWER_IS_BETTER, METRICS, ModelResult
from recpie_core.rec.metrics import SCALES, is_positive, rating_metrics
from recpie_core.rec.render import finite

_CHUNK_CELLS = 2**21  # resamples x rows per chunk: bounds memory (~16 MB per float64 array) at any test size


@dataclass(frozen=True)
class PairedDifference:
    """metric(A) - metric(B), each averaged over its seeds, with a paired bootstrap interval."""

    metric: str  # "rmse", "mae" or "auc"
    scale: str  # "stars" or "unit" (RMSE/MAE only; AUC does not depend on it)
    estimate: float  # the difference on all test rows
    low: float  # percentile interval of the difference over resamples
    high: float
    p_value: float  # two-sided, floored at 1 / (n_boot - n_dropped)
    n_boot: int  # resamples drawn
    n_rows: int  # test rows
    n_dropped: int = 0  # resamples where the difference is undefined (AUC with one class)
    level: float = 0.95  # coverage of [low, high]

    @property
    def better(self) -> bool:
        """The interval excludes zero on the side where A is better (lower RMSE/MAE, higher AUC)."""
        return bool(self.high < 0) if LOWER_IS_BETTER[self.metric] else bool(self.low > 0)

    @property
    def stars(self) -> str:
        """Significance marks as in the paper: *** p < 0.001, ** p < 0.01, * p < 0.05."""
        p = self.p_value
        return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _rows(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _check(y: np.ndarray, preds: Sequence, what: str) -> list[np.ndarray]:
    if len(preds) == 0:
        raise ValueError(f"{what}: no predictions given (need at least one seed)")
    out = [_rows(p) for p in preds]
    for i, p in enumerate(out):
        if p.size != y.size:
            raise ValueError(f"{what}: seed {i} has {p.size} predictions but y_true has {y.size} rows; "
                             "a paired comparison needs both models scored on the same test rows")
    return out


def _index_chunks(n_rows: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Resampled row indices, (chunk, n_rows) at a time; the same stream for the same arguments."""
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // max(n_rows, 1))
    for start in range(0, n_boot, step):
        yield rng.integers(0, n_rows, size=(min(step, n_boot - start), n_rows))


def resample_indices(n_rows: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_rows) row indices of every resample, as ``paired_bootstrap`` draws them."""
    return np.concatenate(list(_index_chunks(n_rows, n_boot, seed)))


def _draw_counts(idx: np.ndarray, n_rows: int) -> np.ndarray:
    """(B, N) indices -> (B, N) float counts: how often each row was drawn in each resample."""
    b = idx.shape[0]
    flat = (np.arange(b)[:, None] * n_rows + idx).ravel()
    return np.bincount(flat, minlength=b * n_rows).reshape(b, n_rows).astype(np.float64)


def _auc_sorted(p: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row order by score, the start of each group of tied scores in it, and the sorted labels."""
    order = np.argsort(p, kind="stable")
    ps = p[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    return order, starts, labels[order]


def _resampled_auc(counts: np.ndarray, sorted_rows: tuple, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Count-weighted U / (n_pos * n_neg): pairs (positive > negative) count 1, ties 1/2. (B,)"""
    order, starts, lab = sorted_rows
    c = counts[:, order]  # (B, N) counts in score order
    pos = np.add.reduceat(c * lab, starts, axis=1)  # (B, G) positives drawn per tie group
    neg = np.add.reduceat(c * ~lab, starts, axis=1)  # (B, G) negatives drawn per tie group
    below = np.cumsum(neg, axis=1) - neg  # (B, G) negatives with a strictly lower score
    u = (pos * (below + 0.5 * neg)).sum(axis=1)  # (B,)
    with np.errstate(divide="ignore", invalid="ignore"):
        return u / (n_pos * n_neg)


def _validate(metrics: Sequence[str], scale: str, n_boot: int, level: float) -> None:
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {m!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level is the interval's coverage, strictly between 0 and 1; got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")


def _resampled(y: np.ndarray, preds_a: list[np.ndarray], preds_b: list[np.ndarray], metrics: Sequence[str],
               scale: str, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """metric -> (n_boot,) differences A - B per resample, NaN where undefined."""
    if y.size == 0:
        raise ValueError("y_true is empty: no test rows to resample")
    n = y.size
    k = 4.0 if scale == "stars" else 1.0
    labels = is_positive(y)
    errors = {"rmse": [np.square(k * (np.stack(ps, axis=1) - y[:, None])) for ps in (preds_a, preds_b)],  # (N, S)
              "mae": [np.abs(k * (np.stack(ps, axis=1) - y[:, None])) for ps in (preds_a, preds_b)]}
    sorted_rows = [[_auc_sorted(p, labels) for p in ps] for ps in (preds_a, preds_b)] if "auc" in metrics else []

    boot: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for idx in _index_chunks(n, n_boot, seed):
        counts = _draw_counts(idx, n)  # (B, N)
        for m in metrics:
            if m == "auc":
                n_pos = counts @ labels  # (B,)
                side = [np.mean([_resampled_auc(counts, s, n_pos, n - n_pos) for s in model], axis=0)
                        for model in sorted_rows]
            else:
                per_seed = [counts @ e / n for e in errors[m]]  # (B, S) mean squared / absolute error
                side = [(np.sqrt(v) if m == "rmse" else v).mean(axis=1) for v in per_seed]
            boot[m].append(side[0] - side[1])  # (B,)
    return {m: np.concatenate(v) for m, v in boot.items()}


def _paired(y: np.ndarray, preds_a: list[np.ndarray], preds_b: list[np.ndarray], metrics: Sequence[str],
            scale: str, n_boot: int, seed: int, level: float) -> dict[str, PairedDifference]:
    """All ``metrics`` of one pair of models, on one set of resamples."""
    _validate(metrics, scale, n_boot, level)
    boot = _resampled(y, preds_a, preds_b, metrics, scale, n_boot, seed)
    out = {}
    for m in metrics:
        estimate = (np.mean([rating_metrics(y, p, scale)[m] for p in preds_a])
                    - np.mean([rating_metrics(y, p, scale)[m] for p in preds_b]))
        d = boot[m][np.isfinite(boot[m])]
        if d.size == 0 or not math.isfinite(estimate):
            low = high = p_value = math.nan
        else:
            low, high = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
            p_value = max(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))), 1.0 / d.size)
        out[m] = PairedDifference(metric=m, scale=scale, estimate=float(estimate), low=float(low), high=float(high),
                                  p_value=float(p_value), n_boot=n_boot, n_rows=y.size, n_dropped=n_boot - d.size,
                                  level=level)
    return out


def bootstrap_differences(y_true_unit, preds_a: Sequence, preds_b: Sequence, metric: str, scale: str = "stars",
                          n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_boot,) the statistic of ``paired_bootstrap`` on each resample; NaN where it is undefined."""
    _validate([metric], scale, n_boot, 0.95)
    y = _rows(y_true_unit)
    return _resampled(y, _check(y, preds_a, "model A"), _check(y, preds_b, "model B"), [metric], scale, n_boot,
                      seed)[metric]


def paired_bootstrap(y_true_unit, preds_a: Sequence, preds_b: Sequence, metric: str, scale: str = "stars",
                     n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> PairedDifference:
    """metric(A) - metric(B) over the same resampled test rows; preds_*: per-seed (N,) unit-scale predictions.

    The seed counts of A and B may differ (a baseline such as ``llm_direct`` has one). Every
    resample uses the same row indices for both models and all their seeds.
    """
    y = _rows(y_true_unit)
    a, b = _check(y, preds_a, "model A"), _check(y, preds_b, "model B")
    return _paired(y, a, b, [metric], scale, n_boot, seed, level)[metric]


def compare_to_reference(results: Mapping[str, ModelResult], reference: str, y_true_unit,
                         metrics: Sequence[str] = METRICS, n_boot: int = 2000, seed: int = 0,
                         scale: str = "stars", level: float = 0.95) -> dict[str, dict[str, PairedDifference]]:
    """reference minus each other model: {other: {metric: PairedDifference}}, all on the same resamples.

    ``y_true_unit``: the (N,) unit-scale test ratings the predictions of every model refer to
    (a ``ModelResult`` keeps its predictions, not the ratings).
    """
    if reference not in results:
        raise ValueError(f"reference {reference!r} is not among the results: {', '.join(results)}")
    y = _rows(y_true_unit)
    preds = {name: _check(y, r.predictions, name) for name, r in results.items()}
    return {name: _paired(y, preds[reference], p, list(metrics), scale, n_boot, seed, level)
            for name, p in preds.items() if name != reference}


def _fmt(d: PairedDifference) -> str:
    if not math.isfinite(d.estimate) or not math.isfinite(d.p_value):
        return "n/a"
    p = "p<0.001" if d.p_value < 0.001 else f"p={d.p_value:.3f}"
    return f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}] {p}{d.stars}"


def paired_markdown(diffs: Mapping[str, Mapping[str, PairedDifference]], reference: str) -> str:
    """One row per other model: for each metric "difference [low, high] p" with significance marks."""
    first = next((d for row in diffs.values() for d in row.values()), None)
    if first is None:
        return f"No other model to compare {reference} with.\n"
    metrics = list(next(iter(diffs.values())))
    scale = "1-5 stars" if first.scale == "stars" else "unit scale (r-1)/4"
    lines = [f"{reference} minus each model on the same {first.n_rows} test rows (RMSE/MAE on {scale}): a negative "
             f"RMSE/MAE difference or a positive AUC difference means {reference} is better. "
             f"{100 * first.level:g}% paired bootstrap intervals over test rows ({first.n_boot} resamples), each "
             "model's metric averaged over its seeds; * p < 0.05, ** p < 0.01, *** p < 0.001 (two-sided).", "",
             "| model | " + " | ".join(m.upper() for m in metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for name, row in diffs.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row[m]) for m in metrics) + " |")
    dropped = {f"{n}/{m}": d.n_dropped for n, row in diffs.items() for m, d in row.items() if d.n_dropped}
    if dropped:
        lines += ["", "Resamples dropped (AUC undefined, one class only): "
                  + ", ".join(f"{k} {v}" for k, v in dropped.items()) + "."]
    return "\n".join(lines) + "\n"


def paired_json(diffs: Mapping[str, Mapping[str, PairedDifference]]) -> dict[str, Any]:
    """{other: {metric: {estimate, low, high, p_value, stars, better, ...}}}; NaN -> None."""
    return {name: {m: {"estimate": finite(d.estimate), "low": finite(d.low), "high": finite(d.high),
                       "p_value": finite(d.p_value), "stars": d.stars, "better": d.better, "level": d.level,
                       "scale": d.scale, "n_boot": d.n_boot, "n_rows": d.n_rows, "n_dropped": d.n_dropped}
                   for m, d in row.items()}
            for name, row in diffs.items()}
