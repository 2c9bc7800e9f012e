"""Algorithm 1, unrolled: one set of assets per round, round k reading round k-1.

Dagster rejects a partition that depends on the previous partition of another asset in a
cycle, so rounds are separate assets made by ``build_round_assets(k)``; each shows in the
UI and re-runs alone. ``recommender_r0`` starts the chain without explanations.
"""

import dagster as dg

from recpie_assets.constants import GPU_POOL, GPU_TAGS
from recpie_assets.metadata import table_metadata
from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_core import steps

MODELS = {"recpie/stored_in": "models"}


def _result(summary: dict, run_url: str, **extra) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={**summary, **extra, "mlflow_run": dg.MetadataValue.url(run_url)})


@dg.asset(deps=["user_temporal_split", "raw_places"], pool=GPU_POOL, op_tags=GPU_TAGS, kinds={"pytorch"},
          metadata=MODELS, group_name="rounds")
def recommender_r0(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
    """The RecPIE recommender before any explanation (constant explanation tokens)."""
    with mlflow.step_run(context, "recommender_r0", recpie) as tracker:
        summary = steps.train_recommender_r0(recpie.paths, recpie.get_profile(), tracker)
        mlflow.log_folder(tracker.run_id, recpie.paths.models / "recommender_r0", "recommender")
    return _result(summary, mlflow.run_url(tracker.run_id),
                   path=dg.MetadataValue.path(str(recpie.paths.models / "recommender_r0")))


def build_round_assets(k: int) -> list[dg.AssetsDefinition]:
    """lora_adapter_r{k} -> explanations_r{k} -> recommender_r{k}, reading round k-1."""
    prev_rec = f"recommender_r{k - 1}"
    prev_lora = [f"lora_adapter_r{k - 1}"] if k > 1 else []

    @dg.asset(name=f"lora_adapter_r{k}", deps=[prev_rec, *prev_lora, "user_temporal_split"], pool=GPU_POOL,
              op_tags=GPU_TAGS, kinds={"pytorch"}, metadata=MODELS, group_name="rounds")
    def lora_adapter(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
        """PIE update of the explainer (LoRA + soft prompt) against the frozen previous recommender."""
        with mlflow.step_run(context, f"lora_adapter_r{k}", recpie) as tracker:
            summary = steps.update_lora(recpie.paths, recpie.get_profile(), k, tracker)
            mlflow.log_folder(tracker.run_id, recpie.paths.models / f"lora_adapter_r{k}", "lora_adapter")
        return _result(summary, mlflow.run_url(tracker.run_id))

    @dg.asset(name=f"explanations_r{k}", deps=[lora_adapter, prev_rec], pool=GPU_POOL, op_tags=GPU_TAGS,
              kinds={"pytorch", "parquet"}, group_name="rounds")
    def explanations(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
        """Positive and negative explanations, with embeddings, for every train, valid and test row."""
        with mlflow.step_run(context, f"explanations_r{k}", recpie) as tracker:
            summary = steps.generate_explanations(recpie.paths, recpie.get_profile(), k)
            tracker.log_metrics({k_: v for k_, v in summary.items() if isinstance(v, (int, float))})
            mlflow.log_folder(tracker.run_id, recpie.paths.reports / f"explanations_r{k}_sample.parquet", "samples")
        return _result(summary, mlflow.run_url(tracker.run_id),
                       **table_metadata(recpie.paths.table(f"explanations_r{k}")))

    @dg.asset(name=f"recommender_r{k}", deps=[explanations, prev_rec], pool=GPU_POOL, op_tags=GPU_TAGS,
              kinds={"pytorch"}, metadata=MODELS, group_name="rounds")
    def recommender(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
        """The recommender trained on this round's explanations, warm-started from the previous round."""
        with mlflow.step_run(context, f"recommender_r{k}", recpie) as tracker:
            summary = steps.train_recommender_round(recpie.paths, recpie.get_profile(), k, tracker)
            mlflow.log_folder(tracker.run_id, recpie.paths.models / f"recommender_r{k}", "recommender")
        return _result(summary, mlflow.run_url(tracker.run_id))

    return [lora_adapter, explanations, recommender]


@dg.asset(deps=["recommender_r0", "user_temporal_split"], pool=GPU_POOL, op_tags=GPU_TAGS, kinds={"pytorch"},
          metadata=MODELS, group_name="variants")
def explanation_only(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
    """The paper's explanation-only variant: explanations without PIE updates, then the recommender."""
    with mlflow.step_run(context, "explanation_only", recpie) as tracker:
        summary = steps.explanation_only(recpie.paths, recpie.get_profile(), tracker)
    return _result(summary, mlflow.run_url(tracker.run_id))



@dg.asset(deps=["recommender_r0", "user_temporal_split", "raw_places"], pool=GPU_POOL, op_tags=GPU_TAGS,
          kinds={"pytorch"}, metadata=MODELS, group_name="variants")
def explanation_ladder(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
    """The ladder's direct-text rungs through the same recommender: the candidate's text, the LLM's
    whole input, and (synthetic data only) the ideal texts from the truth."""
    with mlflow.step_run(context, "explanation_ladder", recpie) as tracker:
        summary = steps.explanation_ladder(recpie.paths, recpie.get_profile(), recpie.truth_dir(), tracker)
    flat = {f"{rung}/{k}": v for rung, s in summary.items() for k, v in s.items() if isinstance(v, (int, float))}
    return _result(flat, mlflow.run_url(tracker.run_id))
