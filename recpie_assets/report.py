"""The evaluation report: RecPIE per round next to every baseline, as metadata, files and MLflow."""

import dagster as dg

from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_core.report import build_report


def build_report_asset(rounds: int) -> dg.AssetsDefinition:
    deps = [f"recommender_r{k}" for k in range(rounds + 1)] + [f"explanations_r{k}" for k in range(1, rounds + 1)]

    @dg.asset(deps=[*deps, "explanation_only", "explanation_ladder", "baselines", "llm_direct"], kinds={"mlflow"},
              group_name="report")
    def evaluation_report(context: dg.AssetExecutionContext, recpie: RecpieResource, mlflow: MlflowResource):
        """RMSE/MAE (stars and unit scale) and AUC per model; explanation quality; attention readout.
        Registers the selected round's recommender in MLflow and moves its @champion alias."""
        home = recpie.paths
        doc = build_report(home, recpie.get_profile(), truth_dir=recpie.truth_dir())
        with mlflow.step_run(context, "evaluation_report", recpie) as tracker:
            tracker.log_metrics({f"{name}/{m}": v for name, e in doc["models"].items()
                                 for m, v in [("rmse", e["rmse"]), ("mae", e["mae"]), ("auc", e["auc"]),
                                              ("unit_rmse", e["unit"]["rmse"]), ("unit_mae", e["unit"]["mae"])]
                                 if v is not None})
            for name in ("evaluation.json", "evaluation.md", "evaluation.png", "ladder.png"):
                mlflow.log_folder(tracker.run_id, home.reports / name, "report")
            version = mlflow.register_recommender(tracker.run_id, home.models / f"recommender_r{doc['selected_round']}")
        return dg.MaterializeResult(metadata={
            "report": dg.MetadataValue.md((home.reports / "evaluation.md").read_text()),
            "plot": dg.MetadataValue.path(str(home.reports / "evaluation.png")),
            "ladder_plot": dg.MetadataValue.path(str(home.reports / "ladder.png")),
            "json": dg.MetadataValue.path(str(home.reports / "evaluation.json")),
            "selected_round": doc["selected_round"],
            "recpie_rmse_stars": doc["models"]["recpie"]["rmse"],
            "registered_version": version,
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id)),
        })

    return evaluation_report
