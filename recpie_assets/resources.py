"""Resources: where state lives (RECPIE_HOME), which profile runs, and MLflow."""

import os
import re
import signal
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from recpie_core.data.google_local import SourceFiles
from recpie_core.data.source import resolve_source
from recpie_core.home import HomeError, Manifest, read_manifest, settle
from recpie_core.paths import RecpieHome
from recpie_core.profiles import Profile, get_profile

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_home() -> str:
    """RECPIE_HOME, else ``.recpie/`` in the project root."""
    return os.environ.get("RECPIE_HOME") or str(PROJECT_ROOT / ".recpie")


# What the code location reads from the environment, once (``settings_from_env``): a deployment
# passes these to its run and step pods (deploy/dagster.k8s.yaml). RECPIE_EXECUTOR (executor.py)
# picks where steps run.
CODE_LOCATION_ENV = ("RECPIE_HOME", "RECPIE_PROFILE", "RECPIE_SOURCE", "MLFLOW_TRACKING_URI", "RECPIE_EXECUTOR")


def settings_from_env() -> tuple[str, Manifest]:
    """The code location's home, profile and source when Dagster loads it by module name (the UI,
    a step pod): ``RECPIE_HOME``, then what the home's manifest records. ``RECPIE_PROFILE`` and
    ``RECPIE_SOURCE`` serve a home without a manifest; one that disagrees with it is refused."""
    home = default_home()
    try:
        return home, settle(read_manifest(Path(home)), *asked_from_env())
    except HomeError as exc:
        raise HomeError(f"{exc}: unset RECPIE_PROFILE/RECPIE_SOURCE to use the home's") from None


def asked_from_env() -> tuple[str | None, str | None]:
    """RECPIE_PROFILE and RECPIE_SOURCE (as an absolute folder), None where unset or empty."""
    source = os.environ.get("RECPIE_SOURCE")
    return os.environ.get("RECPIE_PROFILE") or None, str(Path(source).resolve()) if source else None


# Where RECPIE_CRASH_AT can strike: each step that opens an MLflow run (``MlflowResource.step_run``)
# and each phase of the ingestion's commit (``recpie_core.data.google_local.ingest_source``).
CRASH_TARGETS = re.compile(r"(recommender|lora_adapter|explanations)_r\d+|explanation_only"
                           r"|explanation_ladder|baselines|llm_direct|evaluation_report"
                           r"|ingest:(before_commit|before_links|before_switch|after_switch)")


def crash_target() -> tuple[str, str] | None:
    """RECPIE_CRASH_AT as (target, "raise" or "kill"); None when unset. ValueError for an unknown target."""
    value = os.environ.get("RECPIE_CRASH_AT", "")
    if not value:
        return None
    target, how = (value.removesuffix(":kill"), "kill") if value.endswith(":kill") else (value, "raise")
    if not CRASH_TARGETS.fullmatch(target):
        raise ValueError(f"RECPIE_CRASH_AT={value!r} names no crash point (an asset with an MLflow run, e.g. "
                         "explanations_r1, or ingest:before_commit|before_links|before_switch|after_switch; "
                         "':kill' after it SIGKILLs)")
    return target, how


def crash_point(where: str) -> None:
    """Crash tests: ``RECPIE_CRASH_AT=<where>`` makes the step raise there,
    ``RECPIE_CRASH_AT=<where>:kill`` SIGKILLs the whole process, as an OOM killer would.
    An unknown target raises at the first crash point reached (``crash_target``)."""
    found = crash_target()
    if found is None or found[0] != where:
        return
    if found[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"RECPIE_CRASH_AT={where}: injected failure")


class RecpieResource(dg.ConfigurableResource):
    """The run's home folder, profile and data source."""

    home: str
    profile: str = "demo"
    source: str = ""  # folder of Google Local files; empty = the embedded synthetic dataset

    @property
    def paths(self) -> RecpieHome:
        return RecpieHome(Path(self.home)).ensure()

    def get_profile(self) -> Profile:
        return get_profile(self.profile)

    def source_files(self) -> SourceFiles:
        """The Google Local files: ``source``, or the synthetic dataset (generated on first use)."""
        return resolve_source(self.source, self.paths.raw, self.get_profile().synthetic)

    def truth_dir(self) -> Path:
        """The folder of the review files, where the synthetic generator puts its truth files."""
        return self.source_files().reviews[0].parent


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Assets write their own tables (streamed, atomic); downstream assets get the path.

    Tables can be far larger than memory (the California review file has 70M lines), so
    nothing passes through this manager but a ``Path``: ``warehouse/<asset>.parquet`` for
    tables, ``models/<asset>`` for assets whose metadata says ``recpie/stored_in: models``.
    """

    home: str

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is not None:
            raise TypeError(f"asset {context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                            "RecPIE assets write their own files and return MaterializeResult")

    def load_input(self, context: dg.InputContext) -> Path:
        name = context.asset_key.path[-1]
        meta = context.upstream_output.definition_metadata if context.upstream_output else {}
        home = RecpieHome(Path(self.home))
        return home.model(name) if meta.get("recpie/stored_in") == "models" else home.table(name)


class MlflowResource(dg.ConfigurableResource):
    """A small MLflow resource (``dagster-mlflow`` is stale): one parent run per Dagster run,
    a nested run per asset step, the recommender in the registry behind aliases.

    ``tracking_uri`` empty means ``sqlite:///<RECPIE_HOME>/mlflow/mlflow.db`` with artifacts
    beside it (MLflow 3 deprecates the file store); ``MLFLOW_TRACKING_URI`` overrides it.
    The parent run holds the whole profile, the data fingerprint and the git commit; a step's run
    holds the settings it reads, its round and variant (``recpie_core.tracking.step_params``).
    Round recommenders are logged as pyfunc models from code (``log_recommender``); the
    ``champion`` asset registers the selected one and moves the aliases (``recpie_assets.champion``).
    """

    home: str
    tracking_uri: str = ""
    experiment: str = "recpie/mountain-view-demo"
    model_name: str = "recpie-recommender"

    def uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{Path(self.home) / 'mlflow' / 'mlflow.db'}"

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri())

    def experiment_id(self) -> str:
        """Create the store and experiment once (fresh-DB migrations race under parallel steps),
        tagged as model development so that MLflow 3 opens it on its runs, not the GenAI pages."""
        from recpie_core.tracking import EXPERIMENT_TAGS

        client = self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            for key, value in EXPERIMENT_TAGS.items():
                if exp.tags.get(key) != value:  # an experiment made before the tag
                    client.set_experiment_tag(exp.experiment_id, key, value)
            return exp.experiment_id
        artifacts = (Path(self.home) / "mlflow" / "artifacts").resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        try:
            return client.create_experiment(self.experiment, artifact_location=artifacts.as_uri(),
                                            tags=EXPERIMENT_TAGS)
        except Exception:  # another process created it first
            return client.get_experiment_by_name(self.experiment).experiment_id

    def parent_run_id(self, dagster_run_id: str, recpie: RecpieResource) -> str:
        """The MLflow run of this Dagster run, found by tag or created with the profile as params,
        the split's fingerprint and the git commit as tags."""
        from recpie_core.serving import data_fingerprint
        from recpie_core.tracking import MlflowTracker, git_commit

        client, exp = self.client(), self.experiment_id()
        found = client.search_runs([exp], filter_string=f"tags.dagster_run_id = '{dagster_run_id}' "
                                                        "and tags.recpie_parent = 'true'", max_results=1)
        if found:
            return found[0].info.run_id
        split, commit = recpie.paths.table("user_temporal_split"), git_commit(PROJECT_ROOT)
        tags = {"dagster_run_id": dagster_run_id, "recpie_parent": "true", "recpie_profile": recpie.profile,
                **({"data_fingerprint": data_fingerprint(split)} if split.exists() else {}),
                **({"mlflow.source.git.commit": commit} if commit else {})}
        run = client.create_run(exp, run_name=f"dagster-{dagster_run_id[:8]}", tags=tags)
        MlflowTracker(client, run.info.run_id).log_params(asdict(recpie.get_profile()))
        return run.info.run_id

    @contextmanager
    def step_run(self, context: dg.AssetExecutionContext, name: str, recpie: RecpieResource,
                 profile: Profile | None = None, overrides: dict | None = None):
        """A nested MLflow run for one asset step, with the settings it reads as params (from
        ``profile``: the home's profile with the step's Launchpad settings, ``overrides``, applied;
        default the home's profile), the overrides also as a tag; closed FINISHED or FAILED whatever
        happens. Child runs (``tracker.child``) carry the Dagster run id too."""
        import json

        from recpie_core.tracking import MlflowTracker, step_params, step_tags

        client = self.client()
        parent = self.parent_run_id(context.run_id, recpie)
        extra = {"recpie_overrides": json.dumps(overrides, sort_keys=True)} if overrides else {}
        run = client.create_run(self.experiment_id(), run_name=name, tags={
            "mlflow.parentRunId": parent, "dagster_run_id": context.run_id, "dagster_asset": name, **step_tags(name),
            **extra})
        tracker = MlflowTracker(client, run.info.run_id, inherit={"dagster_run_id": context.run_id})
        try:
            tracker.log_params(step_params(name, profile or recpie.get_profile()))
            crash_point(name)  # crash tests: inside the step, after its MLflow run started
            yield tracker
        except BaseException:
            for run_id in (run.info.run_id, parent):
                client.set_terminated(run_id, "FAILED")
            raise
        # the parent shows the state of the run's latest step
        for run_id in (run.info.run_id, parent):
            client.set_terminated(run_id, "FINISHED")

    def log_parent_metrics(self, context: dg.AssetExecutionContext, recpie: RecpieResource,
                           metrics: dict[str, float]) -> None:
        """Metrics on the Dagster run's parent MLflow run (the final table's), beside the step's own."""
        from recpie_core.tracking import MlflowTracker

        MlflowTracker(self.client(), self.parent_run_id(context.run_id, recpie)).log_metrics(metrics)

    def log_folder(self, run_id: str, path: Path, artifact_path: str) -> None:
        """A file or folder as artifacts (safetensors and JSON, never a pickle flavor)."""
        path = Path(path)
        if path.is_dir():
            self.client().log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client().log_artifact(run_id, str(path), artifact_path)

    def log_table(self, run_id: str, table: Path, artifact_file: str) -> None:
        """A Parquet table as a JSON table artifact, which the MLflow UI previews (Parquet it does not)."""
        import polars as pl

        self.client().log_table(run_id, pl.read_parquet(table).to_pandas(), artifact_file)

    def log_evaluation(self, context: dg.AssetExecutionContext, recpie: RecpieResource, run_id: str,
                       models: dict[str, dict]) -> None:
        """The final table (``build_report``'s ``models``): RMSE/MAE in stars and unit scale and AUC per model,
        as metrics of the report's run and of the parent run, and as a table MLflow previews."""
        import pandas as pd

        from recpie_core.tracking import MlflowTracker

        rows = [{"model": name, "rmse": e["rmse"], "mae": e["mae"], "auc": e["auc"],
                 "unit_rmse": e["unit"]["rmse"], "unit_mae": e["unit"]["mae"]} for name, e in models.items()]
        metrics = {f"{r['model']}/{k}": v for r in rows for k, v in r.items() if k != "model" and v is not None}
        MlflowTracker(self.client(), run_id).log_metrics(metrics)
        self.log_parent_metrics(context, recpie, metrics)
        self.client().log_table(run_id, pd.DataFrame(rows), "evaluation_table.json")

    def log_recommender(self, run_id: str, folder: Path, summary: dict, split: Path, places: Path,
                        explanations: Path | None, hist_len: int) -> str:
        """Log a round's fit folder into its training run as a pyfunc model from code (``recommender/``:
        the checkpoints, the vocabulary, a signature, an input example of validation rows), with the
        summary ``valid_rmse``/``test_rmse`` (stars) and ``test_auc``; ``explanations`` is the table the
        fit read (None for round 0). Returns the model's artifact URI."""
        import tempfile

        from recpie_core.serving import checkpoint_digest, data_fingerprint, save_pyfunc, serving_inputs

        client = self.client()
        with tempfile.TemporaryDirectory() as tmp:
            serving, example = serving_inputs(split, places, explanations, hist_len, Path(tmp))
            client.log_artifacts(run_id, str(save_pyfunc(folder, serving, example, Path(tmp) / "model")),
                                 "recommender")
        client.set_tag(run_id, "recpie_checkpoint", checkpoint_digest(folder))
        client.set_tag(run_id, "data_fingerprint", data_fingerprint(split))
        self.log_summary(run_id, summary)
        return f"{client.get_run(run_id).info.artifact_uri}/recommender"

    def log_summary(self, run_id: str, summary: dict) -> None:
        """A recommender step's summary as ``valid_rmse``/``test_rmse``/``test_mae`` (stars, mean over
        seeds) and ``test_auc``: the names the compare view lines rounds, variants and baselines up by
        (``recpie_core.tracking.summary_metrics``)."""
        from recpie_core.tracking import MlflowTracker, summary_metrics

        MlflowTracker(self.client(), run_id).log_metrics(summary_metrics(summary))

    def register_recommender(self, folder: Path, round_: int, profile: str) -> str:
        """A registry version of ``model_name`` for the fit folder ``folder``, from the training run that
        logged it (found by its checkpoint digest), tagged with profile, round, validation RMSE (stars)
        and data fingerprint; the existing version when that run is already registered. No alias moves."""
        from recpie_core.serving import checkpoint_digest
        from recpie_core.store import fit_valid_rmse

        client, digest = self.client(), checkpoint_digest(folder)
        runs = client.search_runs([self.experiment_id()], filter_string=f"tags.recpie_checkpoint = '{digest}'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            raise LookupError(f"no MLflow run in {self.experiment!r} logged the recommender in {folder} "
                              f"(checkpoint digest {digest}): re-materialize that recommender asset")
        run = runs[0]
        if not client.search_registered_models(f"name = '{self.model_name}'"):
            client.create_registered_model(self.model_name, description=(
                "RecPIE's rating recommender (pyfunc from code, safetensors weights): predicts stars "
                "from a consumer, a candidate place, the consumer's history and explanation embeddings."))
        found = client.search_model_versions(f"name = '{self.model_name}' and run_id = '{run.info.run_id}'")
        if found:
            return str(found[0].version)
        tags = {"profile": profile, "round": str(round_), "valid_rmse": repr(4 * fit_valid_rmse(folder)),
                "data_fingerprint": run.data.tags.get("data_fingerprint", ""), "recpie_checkpoint": digest}
        version = client.create_model_version(
            self.model_name, f"{run.info.artifact_uri}/recommender", run_id=run.info.run_id, tags=tags,
            description=f"round {round_} of profile {profile!r}, from run {run.info.run_name}")
        return str(version.version)

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.model_name, version).tags)

    def alias_version(self, alias: str) -> str | None:
        """The version behind ``@alias``; None when there is none (or no registered model yet)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client().get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException:
            return None

    def set_aliases(self, champion: str, challenger: str | None) -> None:
        """``@champion`` on one version, ``@challenger`` on the other (when there is one)."""
        client = self.client()
        client.set_registered_model_alias(self.model_name, "champion", champion)
        if challenger is not None and challenger != champion:
            client.set_registered_model_alias(self.model_name, "challenger", challenger)

    def load_version(self, version: str):
        """A registered version as a pyfunc model, through this resource's tracking URI."""
        import mlflow

        source = self.client().get_model_version(self.model_name, version).source
        return mlflow.pyfunc.load_model(mlflow.artifacts.download_artifacts(source, tracking_uri=self.uri()))

    def run_url(self, run_id: str) -> str:
        """Where the run shows: on the tracking server in use, or on ``mlflow ui`` over the local store."""
        from recpie_core.tracking import run_url

        return run_url(self.uri(), self.experiment_id(), run_id)

    def kill_stale_runs(self, is_live) -> int:
        """Mark RUNNING runs whose Dagster run is no longer live as KILLED (SIGKILL leaves them RUNNING)."""
        client, n = self.client(), 0
        for run in client.search_runs([self.experiment_id()], filter_string="attributes.status = 'RUNNING'"):
            dagster_run = run.data.tags.get("dagster_run_id")
            if dagster_run and is_live(dagster_run):
                continue
            client.set_terminated(run.info.run_id, "KILLED")
            n += 1
        return n
