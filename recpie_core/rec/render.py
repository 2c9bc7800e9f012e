"""The evaluation's readable forms: a markdown table, a JSON document and a PNG of bars.

``results_markdown`` (mean ± std over seeds, best per column in bold, the Table 2
improvement), ``results_json`` (NaN written as null) and ``plot_results`` render a
``{name: ModelResult}`` mapping from ``evaluate.py``; ``finite`` makes any number JSON-safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recpie_core.io import atomic_write
from recpie_core.rec.evaluate import LOWER_IS_BETTER, METRICS, ModelResult, improvement_table


def finite(x: float) -> float | None:
    """``x`` as a float, or None where it is NaN or infinite (JSON has neither)."""
    return float(x) if math.isfinite(x) else None


def _cell(r: ModelResult, metric: str, scale: str, best: bool) -> str:
    mean, std = r.mean(metric, scale), r.std(metric, scale)
    if not math.isfinite(mean):
        return "n/a"
    text = f"{mean:.4f} ± {std:.4f}"
    return f"**{text}**" if best else text


def results_markdown(results: Mapping[str, ModelResult], reference: str | None = None) -> str:
    """A readable table of test metrics (mean ± std over seeds), best per column in bold."""
    columns = [("rmse", "stars", "RMSE (1-5 stars)"), ("mae", "stars", "MAE (1-5 stars)"),
               ("rmse", "unit", "RMSE (unit (r-1)/4)"), ("mae", "unit", "MAE (unit (r-1)/4)"),
               ("auc", "stars", "AUC (rating >= 4)")]
    best = {}
    for m, s, _ in columns:
        vals = {n: r.mean(m, s) for n, r in results.items() if math.isfinite(r.mean(m, s))}
        if vals:
            best[(m, s)] = (min if LOWER_IS_BETTER[m] else max)(vals, key=vals.get)
    lines = ["Test split, mean ± std over seeds. RMSE and MAE on the 1-5 star scale and on the unit "
             "scale (r-1)/4; AUC of rating >= 4 does not depend on the scale.", "",
             "| model | seeds | " + " | ".join(c[2] for c in columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for n, r in results.items():
        cells = [_cell(r, m, s, best.get((m, s)) == n) for m, s, _ in columns]
        lines.append(f"| {n} | {len(r.seeds)} | " + " | ".join(cells) + " |")
    if reference is not None:
        lines += ["", f"Improvement of {reference} over the best other model (positive = {reference} better):", "",
                  "| metric | " + reference + " | best other | its value | improvement |", "|---|---:|---|---:|---:|"]
        for row in improvement_table(results, reference):
            lines.append(f"| {row['metric'].upper()} | {row['reference']:.4f} | {row['best_other'] or 'n/a'} | "
                         f"{row['best_other_value']:.4f} | {row['improvement_pct']:+.2f}% |")
    return "\n".join(lines) + "\n"


def results_json(results: Mapping[str, ModelResult], reference: str | None = None) -> dict[str, Any]:
    """``models.<name>.rmse/.mae/.auc`` (1-5 stars, mean over seeds), ``*_std``, ``.unit.rmse/.mae``; NaN -> None."""
    models = {}
    for n, r in results.items():
        entry: dict[str, Any] = {}
        for m in METRICS:
            entry[m], entry[f"{m}_std"] = finite(r.mean(m)), finite(r.std(m))
        entry["unit"] = {k: finite(v) for m in ("rmse", "mae")
                         for k, v in ((m, r.mean(m, "unit")), (f"{m}_std", r.std(m, "unit")))}
        entry |= {"seeds": list(r.seeds), "best_epochs": list(r.best_epochs), "per_seed": {
            "stars": [{k: finite(v) for k, v in d.items()} for d in r.stars],
            "unit": [{k: finite(v) for k, v in d.items()} for d in r.unit]}}
        models[n] = entry
    out: dict[str, Any] = {"scale": "rmse/mae on 1-5 stars; unit.* on (r-1)/4; auc of rating >= 4", "models": models}
    if reference is not None:
        out["reference"] = reference
        out["improvement"] = [{k: (finite(v) if isinstance(v, float) else v) for k, v in row.items()}
                              for row in improvement_table(results, reference)]
    return out


def plot_results(results: Mapping[str, ModelResult], path_png: str | Path) -> Path:
    """Bar charts of RMSE, MAE (1-5 stars) and AUC with std over seeds, written as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(results)
    fig = Figure(figsize=(max(6.0, 1.1 * len(names) + 2), 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True)
    panels = [("rmse", "RMSE (1-5 stars)"), ("mae", "MAE (1-5 stars)"), ("auc", "AUC (rating >= 4)")]
    for ax, (m, label) in zip(axes, panels):
        means = [results[n].mean(m) for n in names]
        stds = [results[n].std(m) for n in names]
        ax.bar(range(len(names)), np.nan_to_num(means), yerr=stds, capsize=3, color="tab:blue")
        ax.set_ylabel(label)
        finite = [x for x in means if math.isfinite(x)]
        if finite:
            lo, hi = min(finite), max(finite)
            ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo + 1e-3) - 0.05), hi + 0.15 * (hi - lo + 1e-3) + 0.02)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(names)), names, rotation=30, ha="right")
    fig.suptitle("Test metrics, mean ± std over seeds")
    return atomic_write(Path(path_png), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
