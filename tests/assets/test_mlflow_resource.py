"""The MLflow resource against a real SQLite store: nested runs per step, stale runs killed,
the recommender registered without a pickle flavor and the @champion alias moved."""

import json

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from recpie_assets.resources import MlflowResource, RecpieResource


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
    with mlflow_res.step_run(context, "stepA", recpie) as tracker:
        tracker.log_metrics({"loss": 0.5, "bad": float("nan")}, step=1)
    with mlflow_res.step_run(context, "stepB", recpie) as tracker_b:
        pass
    client = MlflowClient(mlflow_res.uri())
    a, b = client.get_run(tracker.run_id), client.get_run(tracker_b.run_id)
    assert a.data.tags["mlflow.parentRunId"] == b.data.tags["mlflow.parentRunId"]
    assert a.data.params["fit.lr"] == "0.01" and a.data.params["name"] == "smoke"
    assert a.data.metrics == {"loss": 0.5}
    assert a.info.status == "FINISHED"


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


def test_register_moves_the_champion_alias(mlflow_res, tmp_path):
    folder = tmp_path / "ckpt"
    (folder / "seed0").mkdir(parents=True)
    (folder / "seed0" / "config.json").write_text(json.dumps({"model": "recpie"}))
    client = MlflowClient(mlflow_res.uri())
    run1 = client.create_run(mlflow_res.experiment_id()).info.run_id
    run2 = client.create_run(mlflow_res.experiment_id()).info.run_id
    v1 = mlflow_res.register_recommender(run1, folder, name="recpie-test")
    v2 = mlflow_res.register_recommender(run2, folder, name="recpie-test")
    assert (v1, v2) == ("1", "2")
    assert str(client.get_model_version_by_alias("recpie-test", "champion").version) == "2"
    files = {f.path for f in client.list_artifacts(run2, "recommender/seed0")}
    assert files == {"recommender/seed0/config.json"}
