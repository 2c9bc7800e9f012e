"""The `recpie` command: generate data, run the pipeline through Dagster, print the report.

Errors a user can cause (a missing folder, no review files, a bad selection) print one
line and exit non-zero; a failed step prints the step and its error.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from recpie_assets.resources import PROJECT_ROOT, default_home
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
    from recpie_core.data.synthetic import SyntheticConfig, write_synthetic_google_local

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


def _last_failed_run(instance) -> str:
    from dagster import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE], tags={"recpie/launcher": "cli"}), limit=1)
    if not runs:
        raise UserError("no failed `recpie run` to resume")
    return runs[0].run_id


def cmd_run(args) -> int:
    import dagster as dg

    from recpie_assets import definitions
    from recpie_core.data.google_local import find_source_files
    from recpie_core.io import sweep_temp_files
    from recpie_core.paths import RecpieHome

    home = RecpieHome(_home(args)).ensure()
    source = ""
    if args.source:
        source = str(Path(args.source).resolve())
        find_source_files(Path(source))  # fail here, in one line, not inside a step
    # the job is rebuilt from these in each process that runs it (dg.reconstructable)
    os.environ.update(RECPIE_HOME=str(home.root), RECPIE_PROFILE=args.profile, RECPIE_SOURCE=source)
    defs = definitions.build_definitions(args.profile, str(home.root), source)
    try:
        selection = dg.AssetSelection.from_coercible(args.select) if args.select else dg.AssetSelection.all()
        # a multi-asset (reviews + rejected_reviews) runs whole, so take its siblings along
        keys = selection.required_multi_asset_neighbors().resolve(defs.resolve_asset_graph())
    except Exception as exc:  # Dagster's selection errors
        raise UserError(f"bad --select {args.select!r}: {exc}") from None
    if not keys:
        raise UserError(f"--select {args.select!r} matches no asset")

    instance = _instance(home.root)
    _mark_dead_runs_failed(instance)
    sweep_temp_files(home.warehouse)
    sweep_temp_files(home.models)
    mlflow = definitions.build_resources(args.profile, str(home.root), source)["mlflow"]
    mlflow.kill_stale_runs(lambda run_id: (r := instance.get_run_by_id(run_id)) is not None and not r.is_finished)

    options = dg.ReexecutionOptions.from_failure(_last_failed_run(instance), instance) if args.resume else None
    what = "resuming the last failed run" if options else f"materializing {len(keys)} assets"
    print(f"recpie: {what} (profile {args.profile}) in {home.root}")
    result = dg.execute_job(
        dg.reconstructable(definitions.full_job), instance,
        run_config={"execution": {"config": {"in_process": {}}},  # one process: 2 cores, large models
                    "loggers": {"console": {"config": {"log_level": "INFO"}}}},  # not every event
        tags={"recpie/launcher": "cli", "recpie/pid": str(os.getpid()), "recpie/profile": args.profile},
        asset_selection=None if options else sorted(keys, key=str), reexecution_options=options,
    )
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            data = event.event_specific_data
            print(f"recpie: check {data.check_name} on {data.asset_key.to_user_string()} failed "
                  f"({_check_numbers(data)})", file=sys.stderr)
        elif event.is_step_failure:
            err = event.event_specific_data.error
            cause = err.cause or err
            print(f"recpie: step {event.step_key} failed: {cause.message.strip().splitlines()[-1]}",
                  file=sys.stderr)
    if result.success:
        print(f"recpie: run {result.run_id} succeeded; tables in {home.warehouse}")
        return 0
    print(f"recpie: run {result.run_id} failed; fix the cause, then `recpie run --resume` re-runs only the "
          "failed steps and what depends on them", file=sys.stderr)
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
    from recpie_core.paths import RecpieHome
    from recpie_core.profiles import get_profile

    print(explain_pair(RecpieHome(_home(args)), get_profile(args.profile), args.user, args.place).render())
    return 0


def cmd_ui(args) -> int:
    home = _home(args)
    _instance(home)
    os.environ.setdefault("RECPIE_HOME", str(home))
    # dagster dev has no auth and accepts mutations over GET: loopback only
    cmd = [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(args.port),
           "-w", str(PROJECT_ROOT / "workspace.yaml")]
    os.execv(sys.executable, cmd)


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
    r.add_argument("--profile", default=os.environ.get("RECPIE_PROFILE", "demo"), choices=sorted(PROFILES))
    r.add_argument("--source", help="folder of Google Local files (review-*.json[.gz], meta-*.json[.gz])")
    r.add_argument("--select", help="Dagster asset selection, e.g. '*user_temporal_split'")
    r.add_argument("--resume", action="store_true",
                   help="re-execute the last failed run from its failure (finished steps are not redone)")
    r.set_defaults(fn=cmd_run)

    rep = sub.add_parser("report", help="print the latest evaluation table")
    rep.set_defaults(fn=cmd_report)

    ex = sub.add_parser("explain", help="the case study of one (user, place) pair, from the latest round")
    ex.add_argument("--user", required=True)
    ex.add_argument("--place", required=True)
    ex.add_argument("--profile", default=os.environ.get("RECPIE_PROFILE", "demo"), choices=sorted(PROFILES))
    ex.set_defaults(fn=cmd_explain)

    ui = sub.add_parser("ui", help="start the Dagster UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(fn=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"recpie: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
