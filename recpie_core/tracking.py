"""Metric logging that is a no-op by default, so notebooks and tests run without MLflow.

Training loops take a ``Tracker``; the Dagster edge passes an ``MlflowTracker``. A step that
trains several models (the baselines) gives each its own run with ``Tracker.child``. Below it,
what each run records (``step_params``, ``step_tags``, ``summary_metrics``, ``model_params``) so
that rounds and baselines line up in MLflow's compare view, and where a run shows in the MLflow
UI (``run_url``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from recpie_core import store


class Tracker(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def child(self, name: str, tags: dict[str, str]) -> AbstractContextManager[Tracker]:
        """A run of its own under this one (one model of a step that trains several), closed on exit."""
        ...


class NullTracker:
    """Accepts everything, keeps nothing."""

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    @contextmanager
    def child(self, name: str, tags: dict[str, str]) -> Iterator[Tracker]:
        yield self


class PrefixTracker:
    """Prefixes metric names (``rec/``, ``pie/``) before passing them on."""

    def __init__(self, inner: Tracker, prefix: str):
        self.inner, self.prefix = inner, prefix

    def log_params(self, params: dict[str, Any]) -> None:
        self.inner.log_params({f"{self.prefix}{k}": v for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.inner.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step=step)

    def child(self, name: str, tags: dict[str, str]) -> AbstractContextManager[Tracker]:
        """The inner tracker's child: a run of its own has its own names, unprefixed."""
        return self.inner.child(name, tags)


class MlflowTracker:
    """Logs to one MLflow run through the client API (no global active run, process-safe).
    ``inherit``: tags every child run gets too (the Dagster run id, which finds stale runs)."""

    def __init__(self, client, run_id: str, inherit: dict[str, str] | None = None):
        self.client, self.run_id, self.inherit = client, run_id, dict(inherit or {})

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = _flatten(params)
        items = [Param(k, str(v)[:6000]) for k, v in flat.items()]
        for start in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k.replace("@", "_"), float(v), now, step or 0)
                 for k, v in metrics.items() if v is not None and math.isfinite(float(v))]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start:start + 1000])

    @contextmanager
    def child(self, name: str, tags: dict[str, str]) -> Iterator[MlflowTracker]:
        """A nested run (``mlflow.parentRunId`` = this run) in the same experiment, closed FINISHED,
        or FAILED when the block raises."""
        experiment = self.client.get_run(self.run_id).info.experiment_id
        run = self.client.create_run(experiment, run_name=name,
                                     tags={"mlflow.parentRunId": self.run_id, **self.inherit, **tags})
        try:
            yield MlflowTracker(self.client, run.info.run_id, self.inherit)
        except BaseException:
            self.client.set_terminated(run.info.run_id, "FAILED")
            raise
        self.client.set_terminated(run.info.run_id, "FINISHED")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


# --- what each step's run records ----------------------------------------------------------------

# The profile sections each kind of step reads (the parent run holds the whole profile).
STEP_SECTIONS = {
    "recommender": ("fit", "split", "loop.seeds", "encoder"),
    "explanation_only": ("fit", "split", "loop.seeds", "encoder"),
    "explanation_ladder": ("fit", "split", "loop.seeds", "encoder"),
    "lora_adapter": ("pie", "llm", "prompt", "loop.pie_pairs", "loop.seed", "encoder"),
    "explanations": ("loop.generation", "loop.greedy", "loop.seed", "loop.chunk_rows", "loop.engine", "llm", "prompt",
                     "encoder"),
    "baselines": ("fit", "split", "baselines", "loop.seeds"),
    "baseline": ("fit", "split", "loop.seeds"),  # one baseline model's own run (``model_params``)
    "llm_direct": ("direct", "llm", "prompt"),
    "evaluation_report": ("report_bootstrap", "loop.rounds", "loop.seeds"),
}
# MLflow 3 opens an experiment without this tag on its GenAI pages (traces), empty for RecPIE;
# the value is the UI's "custom model development" kind (mlflow/server/js, ExperimentKind).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
UI_DEFAULT = "http://127.0.0.1:5000"  # `make mlflow` (mlflow ui) over a local store


def step_kind(step: str) -> str:
    """The kind of step an asset name is: ``recommender_r2`` -> ``recommender``; others as named."""
    found = store.round_asset(step)
    return found[0] if found else "explanations" if step.startswith("explanations_") else step


def step_tags(step: str) -> dict[str, str]:
    """``round`` and ``variant`` of a round's or a variant's step, so the compare view lines them up."""
    found = store.round_asset(step)
    if found:
        return {"round": str(found[1]), "variant": "recpie"}
    if step in ("explanation_only", "explanations_explanation_only"):
        return {"variant": "explanation_only"}
    return {"variant": step} if step in ("explanation_ladder", "baselines", "llm_direct") else {}


def step_params(step: str, profile) -> dict[str, Any]:
    """The profile's settings a step reads (``STEP_SECTIONS``), flattened, plus its round and variant."""
    whole = _flatten(asdict(profile))
    prefixes = STEP_SECTIONS.get(step_kind(step), ())
    picked = {k: v for k, v in whole.items() if any(k == p or k.startswith(f"{p}.") for p in prefixes)}
    return {"profile": profile.name, **picked, **step_tags(step)}


def model_params(model: str, profile, model_config) -> dict[str, Any]:
    """One baseline model's run: the settings its fit reads, named as a round recommender's
    (``fit.*``, ``split.*``, ``loop.seeds``), plus the model's name and its config as ``model.*``."""
    return {**step_params("baseline", profile), "model": model,
            **{f"model.{k}": v for k, v in _flatten(asdict(model_config)).items()}}


def model_tags(model: str, profile) -> dict[str, str]:
    """Tags of one baseline model's run: filter the baselines with ``tags.kind = 'baseline'``."""
    return {"kind": "baseline", "model": model, "profile": profile.name}


# A recommender step's summary (``steps._round_summary``: unit-scale validation RMSE, test metrics in
# stars, means over seeds) -> the metric names every round, variant and baseline run carries.
SUMMARY_METRICS = {"valid_rmse_unit": "valid_rmse", "test_rmse_stars": "test_rmse", "test_mae_stars": "test_mae",
                   "test_auc": "test_auc"}


def summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """``valid_rmse`` (stars: 4 x the unit scale), ``test_rmse``, ``test_mae`` (stars) and ``test_auc``,
    means over seeds, from a recommender step's summary: what the compare view lines runs up by."""
    missing = sorted(set(SUMMARY_METRICS) - set(summary))
    if missing:
        raise KeyError(f"a recommender summary needs {', '.join(SUMMARY_METRICS)}; missing {', '.join(missing)}")
    scale = {"valid_rmse_unit": 4.0}  # (r - 1) / 4 back to stars
    return {name: scale.get(key, 1.0) * summary[key] for key, name in SUMMARY_METRICS.items()
            if summary[key] is not None}


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page: on the tracking server itself when the URI is one (http/https), else on
    ``mlflow ui`` over the local store at its default address."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else UI_DEFAULT
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder``; None outside a git checkout (an installed package)."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
