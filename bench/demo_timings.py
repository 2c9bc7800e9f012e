"""Where a finished home's last run spent its time, step by step, from its Dagster event log.

``last_run_steps(home)`` copies ``<home>/dagster/history`` (the SQLite run and event-log
storage) into a temporary folder and opens that copy as a Dagster instance, so the home is only
read: opening an instance may migrate its storage, and a home in use must not change under its
owner. It returns the latest run's id, status, start and end, and per step (one step per asset,
or per multi-asset) its seconds from ``STEP_START`` to its end and the assets it materialized.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path


class HomeReadError(Exception):
    """The home cannot give step timings; the message is one line for the user."""


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else None


def last_run_steps(home: Path) -> dict:
    """The latest run of ``home``: ``run_id``, ``status``, ``start``/``end``, ``wall_s`` and ``steps``
    (``step``, ``status``, ``seconds``, ``assets``), slowest first. ``HomeReadError`` when the home
    has no Dagster history or no run."""
    history = Path(home) / "dagster" / "history"
    if not (history / "runs.db").is_file():
        raise HomeReadError(f"{home} has no Dagster run history ({history / 'runs.db'} is missing): "
                            "give --home a folder that `recpie run` finished in")
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with tempfile.TemporaryDirectory(prefix="recpie-home-copy-") as tmp:
        shutil.copytree(history, Path(tmp) / "history")
        with DagsterInstance.from_ref(InstanceRef.from_dir(tmp)) as instance:
            runs = instance.get_runs(limit=1)
            if not runs:
                raise HomeReadError(f"{home} has a Dagster history but no run in it")
            run = runs[0]
            stats = instance.get_run_stats(run.run_id)
            steps = []
            for s in instance.get_run_step_stats(run.run_id):
                assets = sorted({e.asset_materialization.asset_key.to_user_string()
                                 for e in s.materialization_events if e.asset_materialization is not None})
                seconds = (s.end_time - s.start_time) if (s.start_time and s.end_time) else None
                steps.append({"step": s.step_key, "status": s.status.value if s.status else "unknown",
                              "seconds": round(seconds, 2) if seconds is not None else None, "assets": assets})
    steps.sort(key=lambda s: -(s["seconds"] or 0.0))
    manifest = Path(home) / "recpie.json"
    profile = json.loads(manifest.read_text()).get("profile") if manifest.is_file() else None
    wall = (stats.end_time - stats.start_time) if (stats.start_time and stats.end_time) else None
    return {"home": str(home), "profile": profile, "run_id": run.run_id, "status": run.status.value,
            "start": _iso(stats.start_time), "end": _iso(stats.end_time),
            "wall_s": round(wall, 1) if wall is not None else None,
            "steps_s": round(sum(s["seconds"] or 0.0 for s in steps), 1), "steps": steps}
