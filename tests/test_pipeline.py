"""The whole method through `recpie run` on the smoke profile (real SmolLM2, MiniLM, Dagster,
MLflow): a failed round resumes without redoing finished steps, and the report, `recpie
report` and `recpie explain` show every model."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import psutil
import pytest
from mlflow.tracking import MlflowClient

from recpie_assets.cli import main
from recpie_core.loop_config import REC_STARTS
from recpie_core.paths import RecpieHome
from recpie_core.profiles import BASELINES, WHOLE, get_profile

pytestmark = pytest.mark.slow
DAGSTER_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - ")
# an INFO line outside Dagster's log: the CLI's root handler (a core line printed twice, a
# library's chatter) or MLflow's own handler
PLAIN_INFO = re.compile(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(DEBUG|INFO) \S+: ")


@pytest.fixture(scope="module")
def finished_home(tmp_path_factory):
    """A smoke run SIGKILLed in explanations_r1 (as an OOM kill would), resumed into a raised
    error in recommender_r1, resumed again to the end."""
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "DAGSTER_HOME": str(home / "dagster"), "RECPIE_CRASH_AT": "explanations_r1:kill"}
    log = home / "killed-run.log"  # a file, not a pipe: Dagster's `tail -F` log mirrors outlive the kill
    with open(log, "w") as out:
        killed = subprocess.run([sys.executable, "-m", "recpie_assets.cli", "--home", str(home), "run",
                                 "--profile", "smoke"], env=env, stdout=out, stderr=subprocess.STDOUT)
    assert killed.returncode == -9, log.read_text()[-2000:]
    for proc in psutil.process_iter(["name", "cmdline"]):  # Dagster's `tail -F` log mirrors, orphaned
        if proc.info["name"] == "tail" and any(str(home) in arg for arg in proc.info["cmdline"] or []):
            proc.kill()
    stamps = {p: (home / p).stat().st_mtime_ns for p in ("models/lora_adapter_r1", "models/recommender_r0")}
    assert not (home / "warehouse" / "explanations_r1.parquet").exists()

    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.setenv("RECPIE_CRASH_AT", "recommender_r1")
    assert main(["--home", str(home), "run", "--profile", "smoke", "--resume"]) == 1
    stamps["warehouse/explanations_r1.parquet"] = (home / "warehouse/explanations_r1.parquet").stat().st_mtime_ns
    assert not (home / "models" / "recommender_r1").exists()
    mp.delenv("RECPIE_CRASH_AT")
    assert main(["--home", str(home), "run", "--profile", "smoke", "--resume"]) == 0
    mp.undo()
    return home, stamps


def test_the_killed_steps_mlflow_run_is_marked_killed(finished_home):
    home, _ = finished_home
    client = MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("recpie/mountain-view-smoke")
    runs = client.search_runs([exp.experiment_id], "tags.dagster_asset = 'explanations_r1'")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]


def test_the_runs_output_prints_each_line_once(finished_home):
    """Issue 9: each line once, the core's through Dagster's logger only, no library chatter (MLflow's
    INFO lines and artifact bars, Hugging Face's weight-loading bars). Read from the killed run's
    output (a `recpie run` from the data steps into explanations_r1), timestamps cut, our bars left out."""
    home, _ = finished_home
    text = (home / "killed-run.log").read_text()
    lines = [line.split(" - ", 1)[-1] if DAGSTER_LINE.match(line) else line
             for line in text.split("\n") if line and "\r" not in line]
    assert len(lines) > 20
    assert not [line for line in lines if PLAIN_INFO.match(line)]
    assert [line for line, n in Counter(lines).items() if n > 1] == []
    assert "Downloading artifacts" not in text and "Loading weights" not in text


def test_resume_redoes_only_the_failed_round(finished_home):
    home, stamps = finished_home
    for path, mtime in stamps.items():
        assert (home / path).stat().st_mtime_ns == mtime, f"{path} was redone"
    assert (home / "models" / "recommender_r1" / "seed0" / "model.safetensors").is_file()


def test_report_has_every_model_on_both_scales(finished_home, capsys):
    home, _ = finished_home
    doc = json.loads((home / "reports" / "evaluation.json").read_text())
    smoke = get_profile("smoke")
    expected = {"recpie", "recpie_r0", "recpie_r1", "explanation_only", "llm_direct", *smoke.baselines,
                "text_candidate", "text_prompt", "ideal"}
    assert expected <= set(doc["models"])
    ladder = {row["name"]: row for row in doc["ladder"]}
    assert list(ladder) == ["recpie_r0", "text_candidate", "text_prompt", "explanation_only", "recpie_r1",
                            "recpie", "ideal"]
    assert ladder["recpie_r0"]["gap_closed"] == 0 and ladder["ideal"]["gap_closed"] == pytest.approx(1)
    # how each text-reading recommender started from recpie_r0's, kept on validation (rec/starts.py)
    assert ladder["recpie_r0"]["start"] == "scratch"
    assert {ladder[n]["start"] for n in ladder if n != "recpie_r0"} <= set(smoke.loop.rec_starts)
    assert smoke.loop.rec_starts == REC_STARTS and "| start |" in (home / "reports" / "evaluation.md").read_text()
    # paired intervals for RecPIE against every other model (but its own selected round)
    assert set(doc["paired"]) == set(doc["models"]) - {"recpie", "recpie_r1"}
    rmse = doc["paired"]["recpie_r0"]["rmse"]
    assert rmse["low"] <= rmse["estimate"] <= rmse["high"] and 0 < rmse["p_value"] <= 1
    assert len(doc["pie"]["recpie_r1"]["reward"]) == smoke.pie.steps
    readout = doc["pie"]["recpie_r1"]["readout"]
    assert readout["samples"] == smoke.pie.batch_size and 0 < readout["before"] <= 1 and 0 < readout["after"] <= 1
    assert "same pairs before -> after" in (home / "reports" / "evaluation.md").read_text()
    assert (home / "reports" / "ladder.png").stat().st_size > 0
    for name, entry in doc["models"].items():
        assert 0 < entry["rmse"] < 4 and 0 < entry["unit"]["rmse"] < 1, name
        assert entry["unit"]["rmse"] == pytest.approx(entry["rmse"] / 4, rel=1e-4)  # same errors, scaled
    assert doc["selected_round"] == 1
    assert set(doc["attention"]["recpie_r1"]["positive"]["received"]) == {"pos", "neg", "user", "place", "seq"}
    assert 0 <= doc["explanation_quality"]["recpie_r1"]["coverage_pos"] <= 1
    assert main(["--home", str(home), "report"]) == 0
    assert "| recpie |" in capsys.readouterr().out
    assert set(BASELINES) >= set(smoke.baselines)


def test_explain_prints_the_case_study(finished_home, capsys):
    home, _ = finished_home
    split = pl.read_parquet(home / "warehouse" / "user_temporal_split.parquet")
    row = split.filter(pl.col("split") == "test").row(0, named=True)
    assert main(["--home", str(home), "explain", "--profile", "smoke", "--user", row["user_id"],
                 "--place", row["place_id"]]) == 0
    out = capsys.readouterr().out
    assert "positive explanation:" in out and "negative explanation:" in out and "attention received:" in out
    assert main(["--home", str(home), "explain", "--profile", "smoke", "--user", row["user_id"],
                 "--place", "0xdoes:0xnotexist"]) == 2


def test_the_token_cap_bench_over_the_home(finished_home, monkeypatch):
    """bench/bench_token_cap.py over the finished home, with the profiles' sentence-end stop: a
    greedy text that ends within a cap ends the same way within a larger one, so the share cut
    at the cap can only fall as the cap rises."""
    home, _ = finished_home
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_token_cap

    report = bench_token_cap.measure(RecpieHome(home), get_profile("smoke").with_generation(WHOLE), 0, [8, 48])
    rows = report["rows"]
    assert [r["cap"] for r in rows] == [8, 48] and rows[0]["rows"] == rows[1]["rows"] > 0
    assert rows[0]["cut_at_cap_share"] > rows[1]["cut_at_cap_share"]
    assert "coverage_pos" in rows[0]  # the synthetic truth is found under raw/
