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
# passes these to its run and step pods (deploy/dagster.k8s.yaml).
CODE_LOCATION_ENV = ("RECPIE_HOME", "RECPIE_PROFILE", "RECPIE_SOURCE", "MLFLOW_TRACKING_URI")


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
        paths = RecpieHome(Path(self.home))
        if meta.get("recpie/stored_in") == "models":
            return paths.models / name
        return paths.table(name)


class MlflowResource(dg.ConfigurableResource):
    """A small MLflow resource (``dagster-mlflow`` is stale): one parent run per Dagster run,
    a nested run per asset step, the recommender in the registry behind an alias.

    ``tracking_uri`` empty means ``sqlite:///<RECPIE_HOME>/mlflow/mlflow.db`` with artifacts
    beside it (MLflow 3 deprecates the file store); ``MLFLOW_TRACKING_URI`` overrides it.
    """

    home: str
    tracking_uri: str = ""
    experiment: str = "recpie/mountain-view-demo"

    def uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{Path(self.home) / 'mlflow' / 'mlflow.db'}"

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri())

    def experiment_id(self) -> str:
        """Create the store and experiment once (fresh-DB migrations race under parallel steps)."""
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        artifacts = (Path(self.home) / "mlflow" / "artifacts").resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        try:
            return client.create_experiment(self.experiment, artifact_location=artifacts.as_uri())
        except Exception:  # another process created it first
            return client.get_experiment_by_name(self.experiment).experiment_id

    def parent_run_id(self, dagster_run_id: str, profile: str) -> str:
        """The MLflow run of this Dagster run, found by tag or created."""
        client, exp = self.client(), self.experiment_id()
        found = client.search_runs([exp], filter_string=f"tags.dagster_run_id = '{dagster_run_id}' "
                                                        "and tags.recpie_parent = 'true'", max_results=1)
        if found:
            return found[0].info.run_id
        run = client.create_run(exp, run_name=f"dagster-{dagster_run_id[:8]}", tags={
            "dagster_run_id": dagster_run_id, "recpie_parent": "true", "recpie_profile": profile})
        return run.info.run_id

    @contextmanager
    def step_run(self, context: dg.AssetExecutionContext, name: str, recpie: RecpieResource):
        """A nested MLflow run for one asset step, with the profile as params; closed
        FINISHED or FAILED whatever happens."""
        from recpie_core.tracking import MlflowTracker

        client = self.client()
        parent = self.parent_run_id(context.run_id, recpie.profile)
        run = client.create_run(self.experiment_id(), run_name=name, tags={
            "mlflow.parentRunId": parent, "dagster_run_id": context.run_id, "dagster_asset": name})
        tracker = MlflowTracker(client, run.info.run_id)
        try:
            tracker.log_params(asdict(recpie.get_profile()))
            crash_point(name)  # crash tests: inside the step, after its MLflow run started
            yield tracker
        except BaseException:
            for run_id in (run.info.run_id, parent):
                client.set_terminated(run_id, "FAILED")
            raise
        # the parent shows the state of the run's latest step
        for run_id in (run.info.run_id, parent):
            client.set_terminated(run_id, "FINISHED")

    def log_folder(self, run_id: str, path: Path, artifact_path: str) -> None:
        """A file or folder as artifacts (safetensors and JSON, never a pickle flavor)."""
        path = Path(path)
        if path.is_dir():
            self.client().log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client().log_artifact(run_id, str(path), artifact_path)

    def register_recommender(self, run_id: str, folder: Path, name: str = "recpie-recommender") -> str:
        """Log the checkpoint folder (safetensors + JSON, no pickle flavor) and register it as a
        new version of ``name``; the ``champion`` alias moves to it. Call from one step only."""
        client = self.client()
        self.log_folder(run_id, folder, "recommender")
        try:
            client.create_registered_model(name)
        except Exception:  # already registered
            pass
        source = f"{client.get_run(run_id).info.artifact_uri}/recommender"
        version = client.create_model_version(name, source, run_id=run_id)
        client.set_registered_model_alias(name, "champion", version.version)
        return str(version.version)

    def run_url(self, run_id: str) -> str:
        """Where the run shows in ``mlflow ui --backend-store-uri <uri>`` (default port 5000)."""
        return f"http://127.0.0.1:5000/#/experiments/{self.experiment_id()}/runs/{run_id}"

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
