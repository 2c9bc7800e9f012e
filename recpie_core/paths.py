"""Where RecPIE keeps its local state: one root folder (``RECPIE_HOME`` at the edge)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RecpieHome:
    """Layout of a RecPIE home folder.

    raw/        Google Local files (the synthetic default is generated here)
    warehouse/  one Parquet file or folder per asset, named after the asset
    models/     converted LLMs, LoRA adapters, recommender checkpoints
    mlflow/     the MLflow SQLite store and artifacts
    reports/    evaluation.json, evaluation.md, plots
    dagster/    DAGSTER_HOME (instance storage)
    """

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    def table(self, name: str) -> Path:
        """Parquet path of the warehouse table produced by asset ``name``."""
        return self.warehouse / f"{name}.parquet"

    def model(self, name: str) -> Path:
        """Folder of the model asset ``name`` (checkpoints, adapters)."""
        return self.models / name

    def ensure(self) -> RecpieHome:
        for p in (self.raw, self.warehouse, self.models, self.mlflow, self.reports, self.dagster):
            p.mkdir(parents=True, exist_ok=True)
        return self
