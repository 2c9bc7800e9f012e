"""The recommender as a pyfunc model from code, and a champion that only improves, against a real
SQLite MLflow store and real tiny RecPIE fits (toy rating tables, one epoch, seconds)."""

import shutil
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest
import torch

from recpie_assets.champion import Verdict, build_champion_asset, judge
from recpie_assets.resources import MlflowResource, RecpieResource, WarehouseIOManager
from recpie_core import store
from recpie_core.data.batches import load_rating_data, to_stars
from recpie_core.loop import rec_step, with_explanations
from recpie_core.paths import RecpieHome
from recpie_core.rec.fit import FitConfig, predict
from recpie_core.rec.toy import make_toy_split
from recpie_core.serving import input_frame, validation_rows

HIST = 10


def write_world(folder, seed):
    """A toy split and its places as Parquet files, the way the pipeline's assets hold them."""
    folder.mkdir(parents=True)
    split, places = make_toy_split(n_users=60, n_places=40, ratings_per_user=20, seed=seed)
    split.write_parquet(folder / "split.parquet")
    places.write_parquet(folder / "places.parquet")
    return folder / "split.parquet", folder / "places.parquet"


def explanations_table(split_path, dim=8):
    """Random explanation embeddings for every row, keyed like the split (a stand-in for the LLM's)."""
    split = pl.read_parquet(split_path)
    rng = np.random.default_rng(0)
    emb = lambda: pl.Series(rng.normal(size=(split.height, dim)).astype(np.float32).tolist(),  # noqa: E731
                            dtype=pl.Array(pl.Float32, dim))
    return split.select("user_id", "place_id", "ts").with_columns(pos_emb=emb(), neg_emb=emb())


def train(split_path, places_path, out, lr=0.01, epochs=1, explanations=None):
    """A fit folder (two seeds) as the round steps write it, and its summary."""
    torch.manual_seed(0)
    data = load_rating_data(pl.read_parquet(split_path), pl.read_parquet(places_path), hist_len=HIST)
    if explanations is not None:
        data = with_explanations(data, pl.read_parquet(explanations))
    result = rec_step(data, "recpie_r0", FitConfig(batch_size=128, epochs=epochs, lr=lr, progress=False), (0, 1),
                      overrides={"expl_dim": 8, "hist_len": HIST})
    summary = {"valid_rmse_unit": result.valid_rmse, "test_rmse_stars": result.test.mean("rmse"),
               "test_mae_stars": result.test.mean("mae"), "test_auc": result.test.mean("auc")}
    return store.save_fit(out, result, data.test), summary


@pytest.fixture
def world(tmp_path):
    split, places = write_world(tmp_path / "data", seed=0)
    return split, places


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory):
    """One store for the module (a fresh SQLite store's migrations take seconds)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def res(mlflow_home, request):
    """An experiment and a registered model of the test's own in the shared store."""
    name = request.node.name.replace("[", "-").rstrip("]")
    return MlflowResource(home=str(mlflow_home), experiment=f"recpie/{name}", model_name=f"recpie-{name}")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny fits: one torch thread (tests/conftest.py)."""


def log_fit(res, world, folder, summary, explanations=None, round_=0):
    client = res.client()
    run = client.create_run(res.experiment_id(), run_name=f"recommender_r{round_}").info.run_id
    res.log_recommender(run, folder, summary, *world, explanations, HIST)
    return run, res.register_recommender(folder, round_, "smoke")


def test_champion_loads_from_the_registry_and_predicts_like_the_checkpoints(res, world, tmp_path, monkeypatch):
    folder, summary = train(*world, tmp_path / "fit")
    run, version = log_fit(res, world, folder, summary)
    res.set_aliases(version, None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", res.uri())
    model = mlflow.pyfunc.load_model(f"models:/{res.model_name}@champion")
    rows = pl.read_parquet(world[0]).filter(pl.col("split") == "test")
    got = model.predict(input_frame(rows))["rating"].to_numpy()
    data = load_rating_data(pl.read_parquet(world[0]), pl.read_parquet(world[1]), hist_len=HIST)
    want = to_stars(torch.stack([predict(store.load_round(folder, s), data.test) for s in (0, 1)]).mean(0).numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert set(model.metadata.get_input_schema().input_names()) >= {"user_id", "place_id", "hist_place_ids"}
    assert model.input_example is not None and len(model.input_example) == 3
    client = res.client()
    mv = client.get_model_version(res.model_name, version)
    assert mv.run_id == run and mv.tags["round"] == "0" and mv.tags["profile"] == "smoke"
    assert float(mv.tags["valid_rmse"]) == pytest.approx(4 * summary["valid_rmse_unit"])
    assert client.get_run(run).data.metrics["test_rmse"] == pytest.approx(summary["test_rmse_stars"])
    files = mlflow.artifacts.download_artifacts(mv.source, tracking_uri=res.uri())
    assert not [p for p in Path(files).rglob("*") if p.suffix in (".pkl", ".pickle")]


def test_registering_the_same_fit_twice_gives_one_version(res, world, tmp_path):
    folder, summary = train(*world, tmp_path / "fit")
    _, version = log_fit(res, world, folder, summary)
    assert res.register_recommender(folder, 0, "smoke") == version


def test_an_unlogged_fit_cannot_be_registered(res, world, tmp_path):
    folder, _ = train(*world, tmp_path / "fit")
    with pytest.raises(LookupError, match="re-materialize"):
        res.register_recommender(folder, 0, "smoke")


@pytest.mark.parametrize("good_first", [True, False])
def test_the_champion_only_moves_to_a_better_model(res, world, tmp_path, good_first):
    fits = {"good": train(*world, tmp_path / "good", epochs=3), "bad": train(*world, tmp_path / "bad", lr=1e-6)}
    assert fits["good"][1]["valid_rmse_unit"] < fits["bad"][1]["valid_rmse_unit"]
    order = ["good", "bad"] if good_first else ["bad", "good"]
    versions = {}
    for name in order:
        versions[name] = log_fit(res, world, *fits[name])[1]
        verdict = judge(res, versions[name], world[0], None)
        res.set_aliases(*verdict.aliases())
    assert verdict.rows == "recorded" and verdict.promoted is (not good_first)
    assert verdict.candidate_rmse == pytest.approx(4 * fits[order[1]][1]["valid_rmse_unit"])
    assert res.alias_version("champion") == versions["good"]
    assert res.alias_version("challenger") == versions["bad"]


def test_a_tie_keeps_the_champion():
    tie = Verdict("2", "1", 0.9, 0.9, "recorded")
    assert not tie.promoted and tie.aliases() == ("1", "2")
    assert Verdict("2", "1", 0.8, 0.9, "recorded").aliases() == ("2", "1")
    assert Verdict("1", None, None, None, "none").aliases() == ("1", None)


def test_new_data_rescores_both_on_the_new_validation_rows(res, world, tmp_path):
    old = train(*world, tmp_path / "old")
    res.set_aliases(log_fit(res, world, *old)[1], None)
    new_world = write_world(tmp_path / "new_data", seed=3)
    new_folder, new_summary = train(*new_world, tmp_path / "new")
    candidate = log_fit(res, new_world, new_folder, new_summary)[1]
    verdict = judge(res, candidate, new_world[0], None)
    frame, stars = validation_rows(new_world[0], None)
    old_model = res.load_version(res.alias_version("champion"))
    assert verdict.rows == "rescored"
    assert verdict.champion_rmse == pytest.approx(np.sqrt(np.mean((old_model.predict(frame)["rating"] - stars) ** 2)))
    assert verdict.promoted is (verdict.candidate_rmse < verdict.champion_rmse)


def test_a_model_that_reads_explanations_asks_for_them(res, world, tmp_path):
    table = tmp_path / "explanations.parquet"
    explanations_table(world[0]).write_parquet(table)
    folder, summary = train(*world, tmp_path / "fit", explanations=table)
    _, version = log_fit(res, world, folder, summary, explanations=table, round_=1)
    model = res.load_version(version)
    with_emb, _ = validation_rows(world[0], table)
    assert model.predict(with_emb)["rating"].between(1, 5).all()
    assert model.predict(model.input_example)["rating"].between(1, 5).all()  # the example survives its JSON
    with pytest.raises(ValueError, match="needs pos_emb and neg_emb"):
        model.predict(with_emb.drop(columns=["pos_emb", "neg_emb"]))


def materialize_champion(res, home):
    """The champion asset in a Dagster run, its upstream assets stubbed over files already in ``home``."""
    stub = lambda name, meta=None: dg.asset(name=name, metadata=meta or {})(lambda: None)  # noqa: E731
    upstream = [stub("user_temporal_split"), stub("explanations_r1"), stub("evaluation_report"),
                *[stub(store.recommender(k), {"recpie/stored_in": "models"}) for k in (0, 1)]]
    result = dg.materialize([*upstream, build_champion_asset(1)], resources={
        "recpie": RecpieResource(home=str(home.root), profile="smoke"), "mlflow": res,
        "io_manager": WarehouseIOManager(home=str(home.root))})
    check = result.get_asset_check_evaluations()[0]
    return result.asset_materializations_for_node("champion")[0].metadata, check


def test_a_worse_second_run_leaves_the_champion_where_it_was(res, world, tmp_path):
    home = RecpieHome(tmp_path / "recpie").ensure()
    split, table = home.table("user_temporal_split"), home.table("explanations_r1")
    shutil.copy(world[0], split)
    explanations_table(split).write_parquet(table)
    for k in (0, 1):
        log_fit(res, world, *train(split, world[1], home.model(store.recommender(k)), epochs=3, explanations=table),
                explanations=table, round_=k)
    first, check = materialize_champion(res, home)
    assert check.passed and first["champion"].value == res.alias_version("champion")
    worse = train(split, world[1], home.model(store.recommender(1)), lr=1e-6, explanations=table)
    log_fit(res, world, *worse, explanations=table, round_=1)
    second, check = materialize_champion(res, home)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["candidate_valid_rmse"].value > check.metadata["champion_valid_rmse"].value
    assert res.alias_version("champion") == first["champion"].value == second["champion"].value
    assert res.alias_version("challenger") == second["candidate_version"].value
