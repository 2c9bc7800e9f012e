"""The Launchpad's settings: each knob lands on the core dataclass it names, unset keeps the profile,
bad values fail in one sentence, the CLI's run config still validates without any, and a run config
that changes a knob reaches the core: the baselines materialized over toy tables with a real SQLite
MLflow store (each baseline a run of its own, named like the round runs), and (slow, the real
SmolLM2) round 1 with other PIE steps and explanation length, and `recpie run` with no settings."""

import json

import dagster as dg
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from recpie_assets.baselines import baselines
from recpie_assets.cli import _run_config, main
from recpie_assets.definitions import build_definitions
from recpie_assets.resources import MlflowResource, RecpieResource, WarehouseIOManager
from recpie_assets.rounds import build_round_assets, recommender_r0
from recpie_assets.run_config import PIEUpdateConfig, RecommenderConfig, VariantConfig, require_seeds, with_settings
from recpie_core import store
from recpie_core.home import Manifest
from recpie_core.paths import RecpieHome
from recpie_core.profiles import get_profile
from recpie_core.rec.toy import make_toy_split
from recpie_core.tracking import SUMMARY_METRICS


def test_unset_settings_keep_the_profile():
    demo = get_profile("demo")
    assert RecommenderConfig().to_core(demo) == demo and PIEUpdateConfig().overrides() == {}


def test_each_knob_lands_on_its_core_field():
    demo = get_profile("demo")
    pie = PIEUpdateConfig(pie_steps=9, pie_batch_size=4, pie_pairs=12, max_new_tokens=20).to_core(demo)
    assert (pie.pie.steps, pie.pie.batch_size, pie.loop.pie_pairs) == (9, 4, 12)
    # one length for the explanation pass and the PIE sampler, the rest of generation as the profile's
    assert pie.loop.generation == pie.pie.generation and pie.loop.generation.max_new_tokens == 20
    assert pie.loop.generation.min_new_tokens == demo.loop.generation.min_new_tokens
    rec = VariantConfig(epochs=2, seeds=[0, 5]).to_core(demo)
    assert (rec.fit.epochs, rec.seeds, rec.fit.lr) == (2, (0, 5), demo.fit.lr)
    assert rec.pie == demo.pie and rec.loop.generation == demo.loop.generation
    # the explanation pass's engine, the rest of the engine settings as the profile's
    vllm = VariantConfig(engine="vllm").to_core(demo).loop.engine
    assert vllm.engine == "vllm" and vllm.cpu_min_rows == demo.loop.engine.cpu_min_rows


@pytest.mark.parametrize("settings, message", [
    ({"epochs": -1}, "epochs cannot be negative"),
    ({"seeds": [1, 2]}, r"start with the profile's first seed \(0\)"),
    ({"seeds": [0, 0]}, "must be distinct"),
    ({"seeds": []}, "must be distinct"),
    ({"max_new_tokens": 3}, r"min_new_tokens \(6\) > max_new_tokens \(3\)"),  # demo stops at sentence ends
    ({"pie_steps": 0}, "steps, batch_size and micro_batch must be >= 1"),
    ({"engine": "tgi"}, "engine must be one of"),
    ({"rec_starts": ["cold"]}, "rec_starts must name one or more of"),
])
def test_bad_settings_fail_in_one_sentence(settings, message):
    with pytest.raises(ValueError, match=f"run config on profile 'demo': .*{message}"):
        with_settings(get_profile("demo"), **settings)


def test_the_launchpad_shows_the_knobs_and_the_cli_needs_none(tmp_path):
    defs = build_definitions("smoke", str(tmp_path))
    fields = lambda name: set(defs.resolve_assets_def(name).op.config_schema.config_type.fields)  # noqa: E731
    assert fields("lora_adapter_r1") == {"pie_steps", "pie_batch_size", "pie_pairs", "max_new_tokens"}
    assert fields("explanations_r1") == {"max_new_tokens", "engine"}
    for name in ("recommender_r0", "baselines"):
        assert fields(name) == {"epochs", "seeds"}, name
    for name in ("recommender_r1", "explanation_ladder"):  # they read explanations: how they start, too
        assert fields(name) == {"epochs", "seeds", "rec_starts"}, name
    assert fields("explanation_only") == {"epochs", "seeds", "rec_starts", "max_new_tokens", "engine"}
    job = defs.resolve_job_def("recpie_full")
    cli = _run_config(tmp_path, Manifest("smoke", ""), verbose=False)
    assert dg.validate_run_config(job, cli)["ops"]["recommender_r1"]["config"]["epochs"] is None
    one_round = {**cli, "ops": {"lora_adapter_r1": {"config": {"pie_steps": 2}}}}
    assert dg.validate_run_config(job, one_round)["ops"]["lora_adapter_r1"]["config"]["pie_steps"] == 2
    with pytest.raises(dg.DagsterInvalidConfigError, match="pie_steps"):
        dg.validate_run_config(job, {**cli, "ops": {"recommender_r1": {"config": {"pie_steps": 2}}}})


@pytest.fixture
def toy_home(tmp_path):
    """A home whose split and places tables are a toy world (20 users, 160 ratings)."""
    home = RecpieHome(tmp_path / "home").ensure()
    split, places = make_toy_split(n_users=20, n_places=15, ratings_per_user=8, seed=1)
    split.write_parquet(home.table("user_temporal_split"))
    places.with_columns(name=pl.format("Place {}", "place_id"), description=pl.lit("a quiet cafe")).write_parquet(
        home.table("raw_places"))
    return home


def materialize(home, run_config, *assets):
    """The assets in one Dagster run, their upstream tables stubbed over the files in ``home``."""
    stub = lambda name: dg.asset(name=name)(lambda: None)  # noqa: E731
    resources = {"recpie": RecpieResource(home=str(home.root), profile="smoke"),
                 "mlflow": MlflowResource(home=str(home.root), experiment="recpie/run-config"),
                 "io_manager": WarehouseIOManager(home=str(home.root))}
    result = dg.materialize([stub("user_temporal_split"), stub("raw_places"), *assets], resources=resources,
                            run_config=run_config, selection=[a.key for a in assets])
    return result, resources["mlflow"]


def test_a_run_config_reaches_the_core_and_each_baseline_is_a_run(toy_home, one_torch_thread, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    smoke = get_profile("smoke")
    assert smoke.fit.epochs >= 3  # so that one epoch below is the run config's, not the profile's
    result, res = materialize(toy_home, {"ops": {"baselines": {"config": {"epochs": 1}}}}, baselines)
    assert result.success
    client = MlflowClient(res.uri())
    runs = client.search_runs([res.experiment_id()])
    step = next(r for r in runs if r.info.run_name == "baselines")
    assert step.data.params["fit.epochs"] == "1"
    assert json.loads(step.data.tags["recpie_overrides"]) == {"epochs": 1}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == step.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(smoke.baselines)
    for run in children:
        name = run.info.run_name
        assert {k: run.data.tags[k] for k in ("kind", "model", "profile")} == {
            "kind": "baseline", "model": name, "profile": "smoke"}
        assert run.info.status == "FINISHED" and run.data.tags["dagster_run_id"] == result.run_id
        assert run.data.params["fit.epochs"] == "1" and run.data.params["model"] == name
        # the summary under the round runs' names, so the compare view lines them up
        assert {"valid_rmse", "test_rmse", "test_mae"} <= set(run.data.metrics), name
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "seed0/train_loss")]
        assert steps == ([] if name == "global_mean" else [1]), name  # one epoch, as configured
    assert set(SUMMARY_METRICS.values()) == {"valid_rmse", "test_rmse", "test_mae", "test_auc"}
    mf = next(r for r in children if r.info.run_name == "mf").data.params
    assert mf["model.dim"] == "8" and "model.task" in mf
    meta = result.asset_materializations_for_node("baselines")[0].metadata
    assert meta["settings"].value == {"epochs": 1} and "| mf |" in meta["summary"].value


def test_seeds_a_fit_folder_lacks_fail_in_one_line(toy_home, tmp_path):
    folder = toy_home.model(store.recommender(0))
    folder.mkdir(parents=True)
    (folder / store.FIT).write_text(json.dumps({"name": "recpie_r0", "fits": {"0": {}}}))
    require_seeds(folder, (0,), "recommender_r1")
    with pytest.raises(ValueError, match=r"recommender_r1 reads seed\(s\) \[1, 2\] of recommender_r0, which was "
                                         r"trained on seeds \[0\]"):
        require_seeds(folder, (0, 1, 2), "recommender_r1")


@pytest.mark.slow
def test_one_round_re_runs_with_other_settings(toy_home, one_torch_thread, monkeypatch):
    """Round 1 on the real SmolLM2 with PIE steps and explanation length from the run config."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    smoke = get_profile("smoke")
    assert smoke.pie.steps != 2 and smoke.loop.generation.max_new_tokens != 4
    lora, table, _ = build_round_assets(1)
    config = {"ops": {"recommender_r0": {"config": {"epochs": 1}},
                      "lora_adapter_r1": {"config": {"pie_steps": 2, "pie_batch_size": 2, "max_new_tokens": 4}},
                      "explanations_r1": {"config": {"max_new_tokens": 4}}}}
    result, res = materialize(toy_home, config, recommender_r0, lora, table)
    assert result.success
    fits = json.loads((toy_home.model(store.recommender(0)) / store.FIT).read_text())["fits"]
    assert [row["epoch"] for row in fits["0"]["history"]] == [0, 1]  # the start, then one epoch
    assert len(store.load_pie_history(toy_home.model("lora_adapter_r1"))) == 2  # the profile's is 1 step
    runs = {r.info.run_name: r for r in MlflowClient(res.uri()).search_runs([res.experiment_id()])}
    # a round run carries the summary under the names the baseline runs carry
    assert set(SUMMARY_METRICS.values()) - {"test_auc"} <= set(runs["recommender_r0"].data.metrics)
    assert runs["recommender_r0"].data.params["fit.epochs"] == "1"
    assert runs["lora_adapter_r1"].data.params["pie.steps"] == "2"
    assert runs["lora_adapter_r1"].data.params["pie.generation.max_new_tokens"] == "4"
    assert runs["explanations_r1"].data.params["loop.generation.max_new_tokens"] == "4"
    texts = pl.read_parquet(toy_home.table("explanations_r1"))
    assert texts.height == pl.read_parquet(toy_home.table("user_temporal_split")).height
    written = texts.filter(pl.col("problems") == "")  # a flagged text is replaced by a fixed one
    assert written.height and written["pos_text"].str.split(" ").list.len().max() <= 4  # 4 tokens, <= 4 words


@pytest.mark.slow
def test_recpie_run_needs_no_settings_and_runs_the_profile(tmp_path, monkeypatch):
    """The CLI path: `recpie run` passes no step settings; the baselines run as the profile says."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    for name in ("RECPIE_PROFILE", "RECPIE_SOURCE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    assert main(["--home", str(home), "run", "--profile", "smoke", "--select", "*baselines"]) == 0
    res = MlflowResource(home=str(home), experiment="recpie/mountain-view-smoke")
    runs = MlflowClient(res.uri()).search_runs([res.experiment_id()], filter_string="tags.kind = 'baseline'")
    smoke = get_profile("smoke")
    assert sorted(r.info.run_name for r in runs) == sorted(smoke.baselines)
    assert {r.data.params["fit.epochs"] for r in runs} == {str(smoke.fit.epochs)}
    step = MlflowClient(res.uri()).get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert step.info.run_name == "baselines" and "recpie_overrides" not in step.data.tags
