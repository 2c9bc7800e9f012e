"""Baselines on the same split, seeds and early stopping as RecPIE."""

from pathlib import Path

import dagster as dg

from recpie_assets.constants import GPU_POOL, GPU_TAGS
from recpie_assets.metadata import rounded, summary_table, table_metadata
from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_assets.run_config import RecommenderConfig
from recpie_core import store


@dg.asset(pool=GPU_POOL, op_tags=GPU_TAGS, kinds={"pytorch"}, group_name="variants")
def baselines(context: dg.AssetExecutionContext, config: RecommenderConfig, recpie: RecpieResource,
              mlflow: MlflowResource, user_temporal_split: Path, raw_places: Path) -> dg.MaterializeResult:
    """Means, MF, NCF, SASRec, BERT4Rec, DIN and Ablation 1: test predictions per seed, a run per model."""
    from recpie_core import steps  # the model stack loads in the step that runs it
    profile = config.to_core(recpie.get_profile())
    with mlflow.step_run(context, "baselines", recpie, profile, config.overrides()) as tracker:
        out = steps.run_baselines(user_temporal_split, raw_places, recpie.paths.table("baselines"), profile, tracker)
    return dg.MaterializeResult(metadata={
        **table_metadata(out.path), **config.metadata(),
        "summary": dg.MetadataValue.md(summary_table(out.summary)),
        "test_rmse_stars": dg.MetadataValue.json({n: round(s["test_rmse_stars"], 4) for n, s in out.summary.items()}),
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id))})


@dg.asset(pool=GPU_POOL, op_tags=GPU_TAGS, kinds={"pytorch"}, group_name="variants")
def llm_direct(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource,
               user_temporal_split: Path, raw_places: Path) -> dg.MaterializeResult:
    """The paper's direct-recommendation baseline: the LLM asked for each test rating."""
    from recpie_core import steps  # the model stack loads in the step that runs it
    with mlflow.step_run(context, "llm_direct", recpie) as tracker:
        out = steps.run_llm_direct(user_temporal_split, raw_places, recpie.paths.table("llm_direct"),
                                   recpie.get_profile(), store.caches(recpie.paths))
        tracker.log_metrics(out.summary)
    return dg.MaterializeResult(metadata={**rounded(out.summary), **table_metadata(out.path),
                                          "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id))})
