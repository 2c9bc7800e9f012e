"""The evaluation report: RecPIE per round next to every baseline, as metadata, files and MLflow."""

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from recpie_assets.metadata import image_markdown
from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_core import store

if TYPE_CHECKING:
    from recpie_core.report import ReportInputs


def _report_inputs(rounds: int, paths: dict[str, Path]) -> "ReportInputs":
    """The report's inputs from the IO manager's paths, by upstream asset name."""
    from recpie_core.report import ReportInputs

    return ReportInputs(
        split=paths["user_temporal_split"], places=paths["raw_places"], reviews=paths["raw_reviews"],
        recommenders=[paths[store.recommender(k)] for k in range(rounds + 1)],
        explanations=[paths[store.explanations(k)] for k in range(1, rounds + 1)],
        adapters=[paths[store.lora_adapter(k)] for k in range(1, rounds + 1)],
        explanation_only=paths["explanation_only"], variant_explanations=paths[store.VARIANT_EXPLANATIONS],
        ladder=paths["explanation_ladder"], baselines=paths["baselines"], llm_direct=paths["llm_direct"])


def build_report_asset(rounds: int) -> dg.AssetsDefinition:
    names = ["user_temporal_split", "raw_places", "raw_reviews", "explanation_only", store.VARIANT_EXPLANATIONS,
             "explanation_ladder", "baselines", "llm_direct", *[store.recommender(k) for k in range(rounds + 1)],
             *[f(k) for k in range(1, rounds + 1) for f in (store.explanations, store.lora_adapter)]]

    @dg.asset(ins={n: dg.AssetIn(n) for n in names}, kinds={"mlflow"}, group_name="report")
    def evaluation_report(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource,
                          **upstream: Path) -> dg.MaterializeResult:
        """RMSE/MAE (stars and unit scale) and AUC per model, explanation quality and attention, with plots."""
        # the ``champion`` asset then registers the selected round (``recpie_assets.champion``)
        from recpie_core.report import build_report

        home, inputs = recpie.paths, _report_inputs(rounds, upstream)
        doc = build_report(inputs, home.reports, recpie.get_profile(), store.caches(home), truth_dir=recpie.truth_dir())
        with mlflow.step_run(context, "evaluation_report", recpie) as tracker:
            mlflow.log_evaluation(context, recpie, tracker.run_id, doc["models"])
            for name in ("evaluation.json", "evaluation.md", "evaluation.png", "ladder.png"):
                mlflow.log_folder(tracker.run_id, home.reports / name, "report")
        return dg.MaterializeResult(metadata={
            "report": dg.MetadataValue.md((home.reports / "evaluation.md").read_text()),
            "plot": image_markdown(home.reports / "evaluation.png", "test RMSE per model"),
            "ladder_plot": image_markdown(home.reports / "ladder.png", "explanation ladder and PIE reward"),
            "plot_files": dg.MetadataValue.path(str(home.reports)),
            "json": dg.MetadataValue.path(str(home.reports / "evaluation.json")),
            "selected_round": doc["selected_round"],
            "recpie_rmse_stars": doc["models"]["recpie"]["rmse"],
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id)),
        })

    return evaluation_report
