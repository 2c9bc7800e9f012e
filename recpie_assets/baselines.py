"""Baselines on the same split, seeds and early stopping as RecPIE."""

import dagster as dg

from recpie_assets.constants import GPU_POOL, GPU_TAGS
from recpie_assets.metadata import table_metadata
from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_core import steps


@dg.asset(deps=["user_temporal_split", "raw_places"], pool=GPU_POOL, op_tags=GPU_TAGS, kinds={"pytorch"},
          group_name="variants")
def baselines(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
    """Means, MF, NCF, SASRec, BERT4Rec, DIN and Ablation 1: test predictions per seed."""
    with mlflow.step_run(context, "baselines", recpie) as tracker:
        summary = steps.run_baselines(recpie.paths, recpie.get_profile(), tracker)
    return dg.MaterializeResult(metadata={
        **table_metadata(recpie.paths.table("baselines")),
        "test_rmse_stars": dg.MetadataValue.json({n: s["test_rmse_stars"] for n, s in summary.items()}),
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id))})


@dg.asset(deps=["user_temporal_split", "raw_places"], pool=GPU_POOL, op_tags=GPU_TAGS, kinds={"pytorch"},
          group_name="variants")
def llm_direct(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
    """The paper's direct-recommendation baseline: the LLM asked for each test rating."""
    with mlflow.step_run(context, "llm_direct", recpie) as tracker:
        summary = steps.run_llm_direct(recpie.paths, recpie.get_profile())
        tracker.log_metrics(summary)
    return dg.MaterializeResult(metadata={**summary, **table_metadata(recpie.paths.table("llm_direct")),
                                          "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id))})
