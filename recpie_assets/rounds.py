"""Algorithm 1, unrolled: one set of assets per round, round k reading round k-1.

Dagster rejects a partition that depends on the previous partition of another asset in a
cycle, so rounds are separate assets made by ``build_round_assets(k)``; each shows in the
UI and re-runs alone. ``recommender_r0`` starts the chain without explanations. Every
upstream asset is a parameter, served as a ``Path`` by the IO manager: the graph is the
lineage. Names come from ``recpie_core.store``. Each asset takes the Launchpad's settings it
reads (``recpie_assets.run_config``); unset, the profile's.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from recpie_assets.constants import GPU_POOL, GPU_TAGS
from recpie_assets.metadata import rounded, table_metadata
from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_assets.run_config import (
    ExplanationsConfig,
    PIEUpdateConfig,
    ReaderConfig,
    RecommenderConfig,
    StepConfig,
    VariantConfig,
    require_seeds,
)
from recpie_core import store

if TYPE_CHECKING:
    from recpie_core import steps

MODELS = {"recpie/stored_in": "models"}
HEAVY = {"pool": GPU_POOL, "op_tags": GPU_TAGS}


def _result(out: "steps.Written", run_url: str, config: StepConfig, asset_key: str | None = None,
            **extra) -> dg.MaterializeResult:
    return dg.MaterializeResult(asset_key=asset_key, metadata={**rounded(out.summary), **extra, **config.metadata(),
                                                               "mlflow_run": dg.MetadataValue.url(run_url)})


@dg.asset(**HEAVY, kinds={"pytorch"}, metadata=MODELS, group_name="rounds")
def recommender_r0(context: dg.AssetExecutionContext, config: RecommenderConfig, recpie: RecpieResource,
                   mlflow: MlflowResource, user_temporal_split: Path, raw_places: Path) -> dg.MaterializeResult:
    """The RecPIE recommender before any explanation (constant explanation tokens)."""
    name, profile = store.recommender(0), config.to_core(recpie.get_profile())
    from recpie_core import steps  # the model stack loads in the step that runs it
    with mlflow.step_run(context, name, recpie, profile, config.overrides()) as tracker:
        out = steps.train_recommender_r0(user_temporal_split, raw_places, recpie.paths.model(name),
                                         profile, store.caches(recpie.paths), tracker)
        mlflow.log_recommender(tracker.run_id, out.path, out.summary, user_temporal_split, raw_places, None,
                               profile.split.hist_len)
    return _result(out, mlflow.run_url(tracker.run_id), config, path=dg.MetadataValue.path(str(out.path)))


def build_round_assets(k: int, round1_reward: str = store.recommender(0)) -> list[dg.AssetsDefinition]:
    """lora_adapter_r{k} -> explanations_r{k} -> recommender_r{k}, reading round k-1. Round 1's PIE
    samples are scored by ``round1_reward`` (``LoopConfig.round1_reward``): recommender_r0, as in
    Algorithm 1, or explanation_only, which then becomes an input of lora_adapter_r1."""
    lora, table, rec = store.lora_adapter(k), store.explanations(k), store.recommender(k)
    previous = store.recommender(k - 1)
    earlier = {"adapter": dg.AssetIn(store.lora_adapter(k - 1))} if k > 1 else {}  # round 1: fresh adapters
    scorer = round1_reward if k == 1 else previous
    reward = {"reward": dg.AssetIn(scorer)} if scorer != previous else {}

    @dg.asset(name=lora, ins={"recommender": dg.AssetIn(previous), **earlier, **reward}, **HEAVY,
              kinds={"pytorch"}, metadata=MODELS, group_name="rounds", description=(
                  f"Round {k}'s PIE update of the explainer (LoRA + soft prompt) against the frozen {scorer}."))
    def lora_adapter(context: dg.AssetExecutionContext, config: PIEUpdateConfig, recpie: RecpieResource,
                     mlflow: MlflowResource, user_temporal_split: Path, raw_places: Path, recommender: Path,
                     **inputs: Path):
        profile = config.to_core(recpie.get_profile())
        require_seeds(recommender, profile.seeds[:1], lora)
        if "reward" in inputs:
            require_seeds(inputs["reward"], profile.seeds[:1], lora)
        from recpie_core import steps  # the model stack loads in the step that runs it
        with mlflow.step_run(context, lora, recpie, profile, config.overrides()) as tracker:
            out = steps.update_lora(user_temporal_split, raw_places, recommender, inputs.get("adapter"),
                                    recpie.paths.model(lora), k, profile, store.caches(recpie.paths), tracker,
                                    reward=inputs.get("reward"))
            mlflow.log_folder(tracker.run_id, out.path, "lora_adapter")
        return _result(out, mlflow.run_url(tracker.run_id), config)

    @dg.asset(name=table, ins={"adapter": dg.AssetIn(lora), "recommender": dg.AssetIn(previous)}, **HEAVY,
              kinds={"pytorch", "parquet"}, group_name="rounds", description=(
                  f"Round {k}'s positive and negative explanations, with embeddings, for every train, valid "
                  "and test row."))
    def explanations(context: dg.AssetExecutionContext, config: ExplanationsConfig, recpie: RecpieResource,
                     mlflow: MlflowResource, user_temporal_split: Path, raw_places: Path, adapter: Path,
                     recommender: Path):
        profile = config.to_core(recpie.get_profile())
        sample = store.sample_path(recpie.paths, recpie.paths.table(table))
        require_seeds(recommender, profile.seeds[:1], table)
        from recpie_core import steps  # the model stack loads in the step that runs it
        with mlflow.step_run(context, table, recpie, profile, config.overrides()) as tracker:
            out = steps.generate_explanations(user_temporal_split, raw_places, recommender, adapter,
                                              recpie.paths.table(table), sample, profile, store.caches(recpie.paths))
            tracker.log_metrics({k_: v for k_, v in out.summary.items() if isinstance(v, (int, float))})
            mlflow.log_table(tracker.run_id, sample, "samples.json")
        return _result(out, mlflow.run_url(tracker.run_id), config, **table_metadata(out.path))

    @dg.asset(name=rec, ins={"explanations": dg.AssetIn(table), "previous": dg.AssetIn(previous)}, **HEAVY,
              kinds={"pytorch"}, metadata=MODELS, group_name="rounds", description=(
                  f"Round {k}'s recommender, trained on {table}, started from {previous} as the profile's "
                  "rec_starts say (the best start on validation is kept)."))
    def recommender(context: dg.AssetExecutionContext, config: ReaderConfig, recpie: RecpieResource,
                    mlflow: MlflowResource, user_temporal_split: Path, raw_places: Path, explanations: Path,
                    previous: Path):
        profile = config.to_core(recpie.get_profile())
        require_seeds(previous, profile.seeds, rec)
        from recpie_core import steps  # the model stack loads in the step that runs it
        with mlflow.step_run(context, rec, recpie, profile, config.overrides()) as tracker:
            out = steps.train_recommender(user_temporal_split, raw_places, explanations, previous,
                                          recpie.paths.model(rec), store.round_model(k), profile, tracker)
            mlflow.log_recommender(tracker.run_id, out.path, out.summary, user_temporal_split, raw_places,
                                   explanations, profile.split.hist_len)
        return _result(out, mlflow.run_url(tracker.run_id), config)

    return [lora_adapter, explanations, recommender]


_VARIANT_READS = ["user_temporal_split", "raw_places", store.recommender(0)]  # Dagster checks the ins against these


@dg.multi_asset(name="explanation_only", ins={"recommender": dg.AssetIn(store.recommender(0))}, **HEAVY,
                group_name="variants", specs=[
                    dg.AssetSpec(store.VARIANT_EXPLANATIONS, deps=_VARIANT_READS, kinds={"pytorch", "parquet"},
                                 description="Explanations of the LLM without any PIE update, every row."),
                    dg.AssetSpec("explanation_only", deps=[store.VARIANT_EXPLANATIONS, *_VARIANT_READS],
                                 kinds={"pytorch"}, metadata=MODELS,
                                 description="The recommender trained on them, started from round 0 (rec_starts).")])
def explanation_only(context: dg.AssetExecutionContext, config: VariantConfig, recpie: RecpieResource,
                     mlflow: MlflowResource, user_temporal_split: Path, raw_places: Path, recommender: Path):
    """The paper's explanation-only variant: explanations without PIE updates, then the recommender
    (one step, as in Algorithm 1 without ``pie_step``)."""
    profile, table = config.to_core(recpie.get_profile()), recpie.paths.table(store.VARIANT_EXPLANATIONS)
    require_seeds(recommender, profile.seeds, "explanation_only")
    from recpie_core import steps  # the model stack loads in the step that runs it
    with mlflow.step_run(context, "explanation_only", recpie, profile, config.overrides()) as tracker:
        texts = steps.generate_explanations(user_temporal_split, raw_places, recommender, None, table,
                                            store.sample_path(recpie.paths, table), profile, store.caches(recpie.paths))
        out = steps.train_recommender(user_temporal_split, raw_places, texts.path, recommender,
                                      recpie.paths.model("explanation_only"), "explanation_only", profile, tracker)
        mlflow.log_summary(tracker.run_id, out.summary)
    yield dg.MaterializeResult(asset_key=store.VARIANT_EXPLANATIONS, metadata={**rounded(texts.summary),
                                                                             **table_metadata(texts.path)})
    yield _result(out, mlflow.run_url(tracker.run_id), config, asset_key="explanation_only")


@dg.asset(ins={"recommender": dg.AssetIn(store.recommender(0))}, **HEAVY, kinds={"pytorch"}, metadata=MODELS,
          group_name="variants")
def explanation_ladder(context: dg.AssetExecutionContext, config: ReaderConfig, recpie: RecpieResource,
                       mlflow: MlflowResource, user_temporal_split: Path, raw_places: Path,
                       recommender: Path) -> dg.MaterializeResult:
    """The ladder's direct-text rungs (candidate text, LLM input, ideal) through recommender_r0's recommender."""
    # ideal: the synthetic truth's liked and disliked aspects, only where the source has that truth
    profile = config.to_core(recpie.get_profile())
    require_seeds(recommender, profile.seeds, "explanation_ladder")
    from recpie_core import steps  # the model stack loads in the step that runs it
    with mlflow.step_run(context, "explanation_ladder", recpie, profile, config.overrides()) as tracker:
        out = steps.explanation_ladder(user_temporal_split, raw_places, recommender,
                                       recpie.paths.model("explanation_ladder"), profile,
                                       store.caches(recpie.paths), recpie.truth_dir(), tracker)
    flat = {f"{rung}/{k}": v for rung, s in out.summary.items() for k, v in s.items() if isinstance(v, (int, float))}
    return dg.MaterializeResult(metadata={**rounded(flat), **config.metadata(),
                                          "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id))})
