"""Metric logging that is a no-op by default, so notebooks and tests run without MLflow.

Training loops take a ``Tracker``; the Dagster edge passes an ``MlflowTracker``.
"""

from __future__ import annotations

from typing import Any, Protocol


class Tracker(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...


class NullTracker:
    """Accepts everything, keeps nothing."""

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass


class PrefixTracker:
    """Prefixes metric names (``rec/``, ``pie/``) before passing them on."""

    def __init__(self, inner: Tracker, prefix: str):
        self.inner, self.prefix = inner, prefix

    def log_params(self, params: dict[str, Any]) -> None:
        self.inner.log_params({f"{self.prefix}{k}": v for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.inner.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step=step)
