"""The `recpie` command: generate data, run the pipeline through Dagster, print the report.

Errors a user can cause (a missing folder, no review files, a bad selection, a home in use or
holding other data) print one line and exit non-zero; a failed run prints one line naming the
failed steps and their errors (``--verbose``: Dagster's tracebacks too).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from recpie_assets.console import quiet_libraries
from recpie_assets.resources import PROJECT_ROOT, asked_from_env, crash_target, default_home
from recpie_core.home import HomeError, HomeLock, Manifest, read_manifest, settle, write_manifest
from recpie_core.paths import RecpieHome
from recpie_core.profiles import PROFILES


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def _home(args) -> Path:
    return Path(args.home or default_home()).resolve()


def _instance(home: Path):
    """The local Dagster instance in ``DAGSTER_HOME`` (default ``$RECPIE_HOME/dagster``)."""
    import dagster as dg

    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    return dg.DagsterInstance.get()


def cmd_synth(args) -> int:
    from recpie_core.data.synthetic import SyntheticConfig
    from recpie_core.data.synthetic_writer import write_synthetic_google_local

    cfg = SyntheticConfig(n_users=args.users, n_places=args.places, seed=args.seed)
    summary = write_synthetic_google_local(cfg, Path(args.out))
    print(f"wrote {summary.n_reviews} reviews of {summary.n_places} places to {args.out}")
    return 0


def _mark_dead_runs_failed(instance) -> None:
    """A killed `recpie run` leaves its Dagster run STARTED and its `gpu` pool slot taken:
    mark it failed and free the slot before re-running (the UI's daemon would, given time)."""
    from dagster import DagsterRunStatus, RunsFilter

    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED], tags={"recpie/launcher": "cli"})):
        pid = int(run.tags.get("recpie/pid", "0"))
        try:
            os.kill(pid, 0)
            alive = pid > 0
        except OSError:
            alive = False
        if not alive:
            instance.report_run_failed(run, "process ended without finishing the run (killed?)")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _settle(args, root: Path, hint: str) -> Manifest:
    """The profile and source this command uses: asked (flags, else the environment) or the home's."""
    env_profile, env_source = asked_from_env()
    source = getattr(args, "source", None)
    source = env_source if source is None else (str(Path(source).resolve()) if source else "")
    try:
        return settle(read_manifest(root), args.profile or env_profile, source, force=getattr(args, "force", False))
    except HomeError as exc:
        raise UserError(f"{exc}: {hint}") from None


def _locked(root: Path, command: str, wait: bool = False) -> HomeLock:
    """The home's lock: refused in one line when another command holds it, or waited for."""
    say = lambda busy: print(f"recpie: {busy}; waiting for it to end", file=sys.stderr, flush=True)  # noqa: E731
    try:
        lock = HomeLock(root, command).acquire(on_busy=say if wait else None)
    except HomeError as exc:
        raise UserError(f"{exc}; wait for it to end (`recpie run --wait` waits), or use another --home") from None
    if lock.taken_over:
        print(f"recpie: took over the home's lock from {lock.taken_over}, which ended without releasing it",
              file=sys.stderr)
    return lock


def _open_stores(root: Path, manifest: Manifest):
    """The Dagster instance and the MLflow store, created and migrated here, under the home's lock,
    before any step opens them (fresh stores' migrations race)."""
    from recpie_assets import definitions

    instance = _instance(root)
    mlflow = definitions.build_resources(manifest.profile, str(root), manifest.source)["mlflow"]
    mlflow.experiment_id()
    return instance, mlflow


def _selected(select: str | None, defs) -> list:
    """The asset keys of ``--select``: Dagster's syntax; commas join parts (``a,b`` = a or b), as
    ``dagster asset materialize --select`` reads them."""
    import dagster as dg

    parts = None if select is None else [p.strip() for p in select.split(",")]
    if parts is not None and not all(parts):
        raise UserError(f"--select {select!r} has an empty selection; leave --select out to materialize every asset")
    try:
        selection = dg.AssetSelection.from_coercible(parts) if parts else dg.AssetSelection.all()
        # a multi-asset (reviews + rejected_reviews) runs whole, so take its siblings along
        keys = selection.required_multi_asset_neighbors().resolve(defs.resolve_asset_graph())
    except Exception as exc:  # Dagster's selection errors
        raise UserError(f"bad --select {select!r}: {exc}") from None
    if not keys:
        raise UserError(f"--select {select!r} matches no asset")
    return sorted(keys, key=str)


def _sweep(home: RecpieHome) -> None:
    """Temporaries of a killed or failed run: under the lock nothing else writes in the home, so all go."""
    from recpie_core.io import sweep_temp_files

    for folder in (home.raw, home.warehouse, home.models, home.reports):
        sweep_temp_files(folder, older_than_s=0)


def _resume_options(instance, manifest: Manifest):
    """Re-execution of the last failed CLI run, which must have read the data the home records."""
    import dagster as dg
    from dagster import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={"recpie/launcher": "cli"}), limit=1)
    if not runs:
        raise UserError("no failed `recpie run` to resume")
    recorded = runs[0].run_config.get("resources", {}).get("recpie", {}).get("config")
    if recorded and Manifest(recorded["profile"], recorded["source"]) != manifest:
        was = Manifest(recorded["profile"], recorded["source"])
        raise UserError(f"the last failed run read {was.describe_source()} with profile {was.profile}, not what "
                        "the home now holds: start a new run instead")
    return dg.ReexecutionOptions.from_failure(runs[0].run_id, instance)


def cmd_run(args) -> int:
    import dagster as dg

    from recpie_assets import definitions
    from recpie_core.data.google_local import find_source_files

    crash_target()  # an unknown RECPIE_CRASH_AT is refused here, in one line
    if args.resume and args.force:
        raise UserError("--resume goes on with the data the failed run read; --force replaces it: pick one")
    root = _home(args)
    with _locked(root, "recpie run", args.wait):
        manifest = _settle(args, root, "drop --profile/--source to use the home's, use another --home, "
                                       "or --force to replace the home's data")
        if manifest.source:
            find_source_files(Path(manifest.source))  # fail here, in one line, not inside a step
        keys = _selected(args.select, definitions.build_definitions(manifest.profile, str(root), manifest.source))
        home = RecpieHome(root).ensure()
        write_manifest(root, manifest)
        instance, mlflow = _open_stores(root, manifest)
        _mark_dead_runs_failed(instance)
        _sweep(home)
        mlflow.kill_stale_runs(lambda run_id: (r := instance.get_run_by_id(run_id)) is not None and not r.is_finished)
        options = _resume_options(instance, manifest) if args.resume else None
        what = "resuming the last failed run" if options else f"materializing {len(keys)} assets"
        print(f"recpie: {what} (profile {manifest.profile}, data from {manifest.describe_source()}) in {root}")
        with _core_logs_through_dagster():
            result = dg.execute_job(
                definitions.reconstructable_full_job(manifest.profile, str(root), manifest.source), instance,
                run_config=_run_config(root, manifest, args.verbose),
                tags={"recpie/launcher": "cli", "recpie/pid": str(os.getpid()), "recpie/profile": manifest.profile},
                asset_selection=None if options else keys, reexecution_options=options,
            )
    return _summarize(result, home)


@contextmanager
def _core_logs_through_dagster():
    """During a run Dagster prints the core's log lines (dagster.yaml manages its loggers): keep
    them from the root handler too, which would print each line twice."""
    core = logging.getLogger("recpie_core")
    core.propagate = False
    try:
        yield
    finally:
        core.propagate = True


def _run_config(root: Path, manifest: Manifest, verbose: bool) -> dict:
    """The run's config: recorded with the run, so a re-execution from the UI reads the same data."""
    return {
        "execution": {"config": {"in_process": {}}},  # one process: 2 cores, large models
        "loggers": {"console": {"config": {"log_level": "INFO", "verbose": verbose}}},  # not every event
        "resources": {"recpie": {"config": {"home": str(root), "profile": manifest.profile,
                                            "source": manifest.source}}},
    }


def _summarize(result, home: RecpieHome) -> int:
    """Failed checks one line each; a failed run one line, naming each failed step and its error."""
    failed = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            data = event.event_specific_data
            print(f"recpie: check {data.check_name} on {data.asset_key.to_user_string()} failed "
                  f"({_check_numbers(data)})", file=sys.stderr)
        elif event.is_step_failure:
            err = event.event_specific_data.error
            cause = err.cause or err
            failed.append(f"step {event.step_key} failed: {cause.message.strip().splitlines()[0]}")
    if result.success:
        print(f"recpie: run {result.run_id} succeeded; tables in {home.warehouse}")
        return 0
    print(f"recpie: run {result.run_id}: {'; '.join(failed) or 'failed'}. Fix the cause, then `recpie run --resume` "
          "re-runs only the failed steps and what depends on them (`--verbose` prints tracebacks)", file=sys.stderr)
    return 1


def _check_numbers(evaluation) -> str:
    """A check's scalar metadata, e.g. ``rejected_share=0.14, threshold=0.01``."""
    items = [(k, v.value) for k, v in evaluation.metadata.items() if isinstance(v.value, (int, float))]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def cmd_report(args) -> int:
    path = _home(args) / "reports" / "evaluation.md"
    if not path.is_file():
        raise UserError(f"no evaluation report at {path}; run `recpie run` first")
    print(path.read_text())
    return 0


def cmd_explain(args) -> int:
    from recpie_core.case_study import explain_pair
    from recpie_core.profiles import get_profile

    root = _home(args)
    manifest = _settle(args, root, "drop --profile to use the home's")
    print(explain_pair(RecpieHome(root), get_profile(manifest.profile), args.user, args.place).render())
    return 0


def cmd_ui(args) -> int:
    """The UI holds the home's lock while it runs (its runs and a `recpie run` would collide)."""
    root = _home(args)
    lock = _locked(root, "recpie ui")
    manifest = _settle(args, root, "drop --profile/--source to use the home's, or --force to replace its data")
    RecpieHome(root).ensure()
    write_manifest(root, manifest)  # what the code location reads
    _open_stores(root, manifest)
    os.set_inheritable(lock.fd, True)  # dagster dev, exec'd below, holds the lock until it exits
    os.environ["RECPIE_HOME"] = str(root)
    # dagster dev has no auth and accepts mutations over GET: loopback only
    cmd = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(args.port),
           "-w", str(PROJECT_ROOT / "workspace.yaml")]
    os.execv(sys.executable, cmd)


def _data_options(parser: argparse.ArgumentParser) -> None:
    """--profile, --source, --force: what the home's tables are made from (recorded in the home)."""
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="default: the home's, else $RECPIE_PROFILE, else demo")
    parser.add_argument("--source", help="folder of Google Local files (review-*.json[.gz], meta-*.json[.gz]); "
                                         "default: the home's, else $RECPIE_SOURCE, else the synthetic dataset")
    parser.add_argument("--force", "--reset", dest="force", action="store_true",
                        help="use this --profile/--source on a home that holds other data")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recpie", description=__doc__.splitlines()[0])
    p.add_argument("--home", help="state folder (default: $RECPIE_HOME or .recpie/ in the project)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic Google Local dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--users", type=int, default=600)
    s.add_argument("--places", type=int, default=400)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_synth)

    r = sub.add_parser("run", help="materialize the asset graph (or a selection) through Dagster")
    _data_options(r)
    r.add_argument("--select", help="Dagster asset selection, e.g. '*user_temporal_split'; commas join parts")
    r.add_argument("--resume", action="store_true",
                   help="re-execute the last failed run from its failure (finished steps are not redone)")
    r.add_argument("--verbose", action="store_true", help="print failed steps' tracebacks")
    r.add_argument("--wait", action="store_true", help="when another command holds the home, wait for it to end")
    r.set_defaults(fn=cmd_run)

    rep = sub.add_parser("report", help="print the latest evaluation table")
    rep.set_defaults(fn=cmd_report)

    ex = sub.add_parser("explain", help="the case study of one (user, place) pair, from the latest round")
    ex.add_argument("--user", required=True)
    ex.add_argument("--place", required=True)
    ex.add_argument("--profile", choices=sorted(PROFILES), help="default: the home's ($RECPIE_PROFILE on a new home)")
    ex.set_defaults(fn=cmd_explain)

    ui = sub.add_parser("ui", help="start the Dagster UI on 127.0.0.1")
    _data_options(ui)
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(fn=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # our INFO lines (outside a run: Dagster prints them during one), libraries' from WARNING up
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("recpie_core", "recpie_assets"):
        logging.getLogger(name).setLevel(logging.INFO)
    quiet_libraries()
    try:
        return args.fn(args)
    except (UserError, HomeError, ValueError, FileNotFoundError) as exc:
        print(f"recpie: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
