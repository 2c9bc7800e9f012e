"""The RecPIE code location: what `dagster dev` and `recpie run` load."""

from __future__ import annotations

import os

import dagster as dg

from recpie_assets import baselines, checks, ingest, rounds, split
from recpie_assets.champion import build_champion_asset
from recpie_assets.console import console, quiet_libraries
from recpie_assets.executor import local_executor, step_executor
from recpie_assets.report import build_report_asset
from recpie_assets.resources import MlflowResource, RecpieResource, WarehouseIOManager, settings_from_env
from recpie_assets.sensors import WEEKLY, build_retrain_schedule, build_source_sensor
from recpie_core.profiles import get_profile

quiet_libraries()  # before any step imports transformers or logs a model


def build_resources(profile: str, home: str, source: str = "") -> dict:
    return {
        "recpie": RecpieResource(home=home, profile=profile, source=source),
        "io_manager": WarehouseIOManager(home=home),
        "mlflow": MlflowResource(home=home, tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""),
                                 experiment=f"recpie/mountain-view-{profile}"),
    }


def build_definitions(profile: str, home: str, source: str = "", retrain_cron: str = WEEKLY,
                      executor: dg.ExecutorDefinition = local_executor) -> dg.Definitions:
    """All assets, checks and resources for one profile (its round count shapes the graph);
    ``executor`` runs every job's steps (executor.py: in one process unless a run asks otherwise)."""
    prof = get_profile(profile)
    assets = [*dg.load_assets_from_modules([ingest, split, baselines]), rounds.recommender_r0,
              rounds.explanation_only, rounds.explanation_ladder, build_report_asset(prof.rounds),
              build_champion_asset(prof.rounds)]
    for k in range(1, prof.rounds + 1):
        assets += rounds.build_round_assets(k, prof.loop.round1_reward)
    # the whole graph as one job (the UI's "materialize all"), retrained on new files or a timetable
    full = dg.define_asset_job("recpie_full", selection=dg.AssetSelection.all(), tags={"recpie/gpu": "true"},
                               description="The whole RecPIE graph: ingestion, split, rounds, variants, baselines, "
                                           "report and champion.")
    return dg.Definitions(
        assets=assets,
        jobs=[full],
        schedules=[build_retrain_schedule(full, retrain_cron)],
        sensors=[build_source_sensor(source, full)],
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        resources=build_resources(prof.name, home, source),
        loggers={"console": console},
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev` and a step pod load: the home named by the environment, with the
    profile and source its manifest records (read once, here)."""
    home, manifest = settings_from_env()
    return build_definitions(manifest.profile, home, manifest.source, os.environ.get("RECPIE_RETRAIN_CRON") or WEEKLY,
                             step_executor())


def full_job(profile: str, home: str, source: str) -> dg.JobDefinition:
    """The whole graph as a job: what `recpie run` executes, via ``reconstructable_full_job``."""
    return build_definitions(profile, home, source).resolve_job_def("recpie_full")


def reconstructable_full_job(profile: str, home: str, source: str):
    """``full_job`` as Dagster rebuilds it in any process that runs it (re-execution from a
    failure needs that); the arguments travel in the run's origin, not in the environment."""
    return dg.build_reconstructable_job(__name__, "full_job", reconstructable_args=(profile, home, source))
