"""The RecPIE code location: what `dagster dev` and `recpie run` load."""

from __future__ import annotations

import os

import dagster as dg

from recpie_assets import baselines, checks, ingest, rounds, split
from recpie_assets.report import build_report_asset
from recpie_assets.resources import MlflowResource, RecpieResource, WarehouseIOManager, default_home, default_profile
from recpie_core.profiles import get_profile


def build_resources(profile: str, home: str, source: str = "") -> dict:
    return {
        "recpie": RecpieResource(home=home, profile=profile, source=source),
        "io_manager": WarehouseIOManager(home=home),
        "mlflow": MlflowResource(home=home, tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
                                 experiment=f"recpie/mountain-view-{profile}"),
    }


def build_definitions(profile: str, home: str, source: str = "") -> dg.Definitions:
    """All assets, checks and resources for one profile (its round count shapes the graph)."""
    prof = get_profile(profile)
    assets = [*dg.load_assets_from_modules([ingest, split, baselines]), rounds.recommender_r0,
              rounds.explanation_only, rounds.explanation_ladder, build_report_asset(prof.rounds)]
    for k in range(1, prof.rounds + 1):
        assets += rounds.build_round_assets(k)
    # the whole graph as one job (the UI's "materialize all"), retrained weekly once switched on
    full = dg.define_asset_job("recpie_full", selection=dg.AssetSelection.all(), tags={"recpie/gpu": "true"})
    retrain = dg.ScheduleDefinition(name="weekly_retrain", job=full, cron_schedule="0 3 * * 1",
                                    default_status=dg.DefaultScheduleStatus.STOPPED)
    return dg.Definitions(
        assets=assets,
        jobs=[full],
        schedules=[retrain],
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        resources=build_resources(prof.name, home, source),
    )


defs = build_definitions(default_profile(), default_home(), os.environ.get("RECPIE_SOURCE", ""))


def full_job() -> dg.JobDefinition:
    """The whole graph as a job, rebuilt from the environment: what `recpie run` executes
    (via ``dg.reconstructable``, which re-execution from a failure needs)."""
    return build_definitions(default_profile(), default_home(),
                             os.environ.get("RECPIE_SOURCE", "")).resolve_job_def("recpie_full")
