"""The MLflow resource against a real SQLite store: nested runs per step with the settings each
reads, a parent with the whole profile, stale runs killed, tables MLflow previews, links to the
server in use; registering moves no alias (``test_champion.py``: the rule that does)."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from recpie_assets.resources import MlflowResource, RecpieResource
from recpie_core.tracking import EXPERIMENT_TAGS, run_url, summary_metrics


@pytest.fixture(scope="module")
def mlflow_res(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    res = MlflowResource(home=str(home), experiment="recpie/test")
    (home / "mlflow").mkdir()
    return res


@pytest.fixture
def recpie(tmp_path):
    return RecpieResource(home=str(tmp_path), profile="smoke")


def test_step_runs_nest_under_one_parent_per_dagster_run(mlflow_res, recpie):
    context = dg.build_asset_context()
    with mlflow_res.step_run(context, "recommender_r1", recpie) as tracker:
        tracker.log_metrics({"loss": 0.5, "bad": float("nan")}, step=1)
    with mlflow_res.step_run(context, "lora_adapter_r1", recpie) as tracker_b:
        pass
    client = MlflowClient(mlflow_res.uri())
    a, b = client.get_run(tracker.run_id), client.get_run(tracker_b.run_id)
    assert a.data.tags["mlflow.parentRunId"] == b.data.tags["mlflow.parentRunId"]
    assert a.data.params["fit.lr"] == "0.01" and a.data.params["round"] == "1"
    assert a.data.tags["round"] == "1" and a.data.tags["variant"] == "recpie"
    assert not any(k.startswith(("llm.", "pie.", "synthetic.")) for k in a.data.params)
    assert "pie.lr" in b.data.params and "fit.lr" not in b.data.params
    assert a.data.metrics == {"loss": 0.5}
    assert a.info.status == "FINISHED"


def test_the_parent_holds_the_profile_the_data_and_the_commit(mlflow_res, recpie):
    mlflow_res = mlflow_res.model_copy(update={"experiment": "recpie/parent"})  # a parent of its own
    split = recpie.paths.table("user_temporal_split")
    pl.DataFrame({"user_id": ["u"], "rating": [4]}).write_parquet(split)
    context = dg.build_asset_context()
    with mlflow_res.step_run(context, "evaluation_report", recpie) as tracker:
        mlflow_res.log_parent_metrics(context, recpie, {"recpie/rmse": 0.9})
    client = MlflowClient(mlflow_res.uri())
    parent = client.get_run(client.get_run(tracker.run_id).data.tags["mlflow.parentRunId"])
    assert parent.data.params["name"] == "smoke" and "synthetic.n_users" in parent.data.params
    assert len(parent.data.tags["data_fingerprint"]) == 16
    assert len(parent.data.tags["mlflow.source.git.commit"]) == 40
    assert parent.data.metrics == {"recpie/rmse": 0.9}


def test_the_final_table_goes_to_the_report_run_and_the_parent(mlflow_res, recpie, tmp_path):
    mlflow_res = mlflow_res.model_copy(update={"experiment": "recpie/evaluation"})
    models = {"recpie": {"rmse": 0.9, "mae": 0.7, "auc": 0.6, "unit": {"rmse": 0.225, "mae": 0.175}},
              "mf": {"rmse": 1.0, "mae": 0.8, "auc": None, "unit": {"rmse": 0.25, "mae": 0.2}}}
    context = dg.build_asset_context()
    with mlflow_res.step_run(context, "evaluation_report", recpie) as tracker:
        mlflow_res.log_evaluation(context, recpie, tracker.run_id, models)
    client = MlflowClient(mlflow_res.uri())
    run = client.get_run(tracker.run_id)
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert run.data.metrics == parent.data.metrics and parent.data.metrics["recpie/rmse"] == 0.9
    assert "mf/auc" not in parent.data.metrics
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "evaluation_table.json", str(tmp_path)))
                       .read_text())
    assert table["columns"][:2] == ["model", "rmse"] and [r[0] for r in table["data"]] == ["recpie", "mf"]


def test_the_experiment_opens_on_its_runs(mlflow_res):
    exp = MlflowClient(mlflow_res.uri()).get_experiment(mlflow_res.experiment_id())
    assert exp.tags["mlflow.experimentKind"] == EXPERIMENT_TAGS["mlflow.experimentKind"] == "custom_model_development"


def test_a_failing_step_marks_its_run_failed(mlflow_res, recpie):
    context = dg.build_asset_context()
    with pytest.raises(RuntimeError):
        with mlflow_res.step_run(context, "broken", recpie) as tracker:
            raise RuntimeError("boom")
    assert MlflowClient(mlflow_res.uri()).get_run(tracker.run_id).info.status == "FAILED"


def test_stale_running_runs_are_killed(mlflow_res):
    client = MlflowClient(mlflow_res.uri())
    live = client.create_run(mlflow_res.experiment_id(), tags={"dagster_run_id": "live"})
    dead = client.create_run(mlflow_res.experiment_id(), tags={"dagster_run_id": "dead"})
    assert mlflow_res.kill_stale_runs(lambda run_id: run_id == "live") == 1
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert client.get_run(live.info.run_id).info.status == "RUNNING"


def test_registering_moves_no_alias_set_aliases_does(mlflow_res, tmp_path):
    res = mlflow_res.model_copy(update={"model_name": "recpie-aliases"})
    client = MlflowClient(res.uri())
    client.create_registered_model(res.model_name)
    for _ in range(2):
        client.create_model_version(res.model_name, str(tmp_path))
    assert res.alias_version("champion") is None
    res.set_aliases("2", "1")
    assert (res.alias_version("champion"), res.alias_version("challenger")) == ("2", "1")


def test_a_table_is_logged_as_json_mlflow_previews(mlflow_res, tmp_path):
    pl.DataFrame({"user_id": ["u1", "u2"], "pos_text": ["quiet", "cheap"]}).write_parquet(tmp_path / "s.parquet")
    client = MlflowClient(mlflow_res.uri())
    run = client.create_run(mlflow_res.experiment_id()).info.run_id
    mlflow_res.log_table(run, tmp_path / "s.parquet", "samples.json")
    assert json.loads(client.get_run(run).data.tags["mlflow.loggedArtifacts"]) == [
        {"path": "samples.json", "type": "table"}]  # what the UI's table preview looks for
    table = json.loads(Path(client.download_artifacts(run, "samples.json", str(tmp_path))).read_text())
    assert table["columns"] == ["user_id", "pos_text"] and table["data"][1] == ["u2", "cheap"]


@pytest.mark.parametrize("uri, base", [("http://mlflow.internal:8080/", "http://mlflow.internal:8080"),
                                       ("sqlite:////tmp/h/mlflow.db", "http://127.0.0.1:5000")])
def test_run_links_point_to_the_server_in_use(uri, base):
    assert run_url(uri, "3", "r1") == f"{base}/#/experiments/3/runs/r1"


def test_the_resource_links_its_own_runs(mlflow_res):
    assert mlflow_res.run_url("r1") == f"http://127.0.0.1:5000/#/experiments/{mlflow_res.experiment_id()}/runs/r1"


def test_a_child_run_nests_under_the_step_and_carries_its_dagster_run(mlflow_res, recpie):
    context = dg.build_asset_context()
    with mlflow_res.step_run(context, "baselines", recpie) as tracker:
        with tracker.child("mf", {"kind": "baseline", "model": "mf"}) as child:
            child.log_metrics({"test_rmse": 1.1})
        with pytest.raises(RuntimeError):
            with tracker.child("sasrec", {"kind": "baseline"}) as broken:
                raise RuntimeError("boom")
    client = MlflowClient(mlflow_res.uri())
    mf, sasrec = client.get_run(child.run_id), client.get_run(broken.run_id)
    assert mf.info.run_name == "mf" and mf.data.tags["mlflow.parentRunId"] == tracker.run_id
    assert mf.info.experiment_id == client.get_run(tracker.run_id).info.experiment_id
    assert mf.data.tags["dagster_run_id"] == context.run_id and mf.data.tags["kind"] == "baseline"
    assert mf.data.metrics == {"test_rmse": 1.1} and mf.info.status == "FINISHED"
    assert sasrec.info.status == "FAILED"


def test_summaries_are_logged_under_the_names_rounds_and_baselines_share():
    summary = {"valid_rmse_unit": 0.25, "test_rmse_stars": 1.05, "test_mae_stars": 0.8, "test_auc": None, "seeds": 3}
    assert summary_metrics(summary) == {"valid_rmse": 1.0, "test_rmse": 1.05, "test_mae": 0.8}  # valid in stars
    with pytest.raises(KeyError, match="missing test_mae_stars"):
        summary_metrics({"valid_rmse_unit": 0.25, "test_rmse_stars": 1.0, "test_auc": 0.5})
