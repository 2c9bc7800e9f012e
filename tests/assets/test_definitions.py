"""The code location loads, with the asset names scripts rely on and one set of assets per round."""

from dataclasses import replace

import dagster as dg
import pytest
import yaml

from recpie_assets.constants import GPU_POOL
from recpie_assets.definitions import build_definitions, defs
from recpie_assets.resources import CODE_LOCATION_ENV, PROJECT_ROOT
from recpie_core import profiles
from recpie_core.home import HomeError, Manifest, write_manifest
from recpie_core.profiles import get_profile


def keys(defs):
    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_definitions_load_with_the_documented_asset_names(tmp_path):
    defs = build_definitions("demo", str(tmp_path))
    names = keys(defs)
    assert {"raw_reviews", "rejected_reviews", "raw_places", "rejected_places", "mountain_view_ratings",
            "user_temporal_split", "baselines", "evaluation_report", "explanation_only", "llm_direct",
            "recommender_r0"} <= names
    for k in range(1, get_profile("demo").rounds + 1):
        assert {f"lora_adapter_r{k}", f"explanations_r{k}", f"recommender_r{k}"} <= names
    assert f"recommender_r{get_profile('demo').rounds + 1}" not in names
    defs.resolve_job_def("recpie_full")  # the whole graph resolves as one job


def test_round_k_reads_round_k_minus_1(tmp_path):
    graph = build_definitions("demo", str(tmp_path)).resolve_asset_graph()
    parents = lambda name: {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}  # noqa: E731
    assert {"recommender_r1", "lora_adapter_r1"} <= parents("lora_adapter_r2")
    assert {"explanations_r2", "recommender_r1"} <= parents("recommender_r2")
    assert "recommender_r0" in parents("lora_adapter_r1")


def test_round_1_can_read_its_reward_from_explanation_only(tmp_path, monkeypatch):
    demo = get_profile("demo")
    monkeypatch.setitem(profiles.PROFILES, "demo",
                        replace(demo, loop=replace(demo.loop, round1_reward="explanation_only")))
    defs = build_definitions("demo", str(tmp_path))
    graph = defs.resolve_asset_graph()
    parents = lambda name: {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}  # noqa: E731
    assert {"recommender_r0", "explanation_only"} <= parents("lora_adapter_r1")  # soft prompts; reward
    assert "explanation_only" not in parents("lora_adapter_r2") | parents("explanations_r1")
    defs.resolve_job_def("recpie_full")  # still one acyclic job


def test_heavy_steps_use_the_gpu_pool(tmp_path):
    defs = build_definitions("demo", str(tmp_path))
    for name in ("recommender_r0", "lora_adapter_r1", "explanations_r1", "recommender_r1", "baselines"):
        node = defs.resolve_assets_def(name).node_def
        assert node.pool == GPU_POOL and node.tags.get("recpie/gpu") == "true", name


def test_split_leak_check_is_blocking(tmp_path):
    defs = build_definitions("demo", str(tmp_path))
    checks = {spec.name: spec for c in defs.asset_checks for spec in c.check_specs}
    assert checks["split_has_no_leaks"].blocking
    assert "rejected_share_below_threshold" in checks


def test_the_code_location_reads_the_homes_manifest(tmp_path, monkeypatch):
    """What the UI and step pods load: the home's recorded profile and source, not the defaults."""
    write_manifest(tmp_path, Manifest("smoke", "/data/ca"))
    monkeypatch.setenv("RECPIE_HOME", str(tmp_path))
    for name in ("RECPIE_PROFILE", "RECPIE_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    loaded = defs()
    assert loaded.resources["recpie"].source == "/data/ca" and loaded.resources["recpie"].profile == "smoke"
    assert f"recommender_r{get_profile('smoke').rounds + 1}" not in keys(loaded)
    monkeypatch.setenv("RECPIE_PROFILE", "demo")
    with pytest.raises(HomeError, match="made with profile smoke, not demo: unset RECPIE_PROFILE"):
        defs()


def test_the_deploy_config_passes_what_the_code_location_reads():
    """Step pods once ran without RECPIE_SOURCE; the home must be the volume they share."""
    launcher = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.k8s.yaml").read_text())["run_launcher"]["config"]
    env = dict(v.partition("=")[::2] for v in launcher["env_vars"])
    assert set(CODE_LOCATION_ENV) <= set(env) and env["RECPIE_EXECUTOR"] == "k8s"
    assert [m["mountPath"] for m in launcher["volume_mounts"]] == [env["RECPIE_HOME"]]
    assert {v["name"] for v in launcher["volumes"]} == {m["name"] for m in launcher["volume_mounts"]}


def test_every_asset_check_job_schedule_and_sensor_says_what_it_is_in_one_line(tmp_path):
    defs = build_definitions("demo", str(tmp_path))
    described = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        described |= {f"asset {k.to_user_string()}": assets_def.descriptions_by_key.get(k) for k in assets_def.keys}
        described |= {f"check {s.name}": s.description for s in assets_def.check_specs}
    described |= {f"check {s.name}": s.description for c in defs.asset_checks for s in c.check_specs}
    described |= {f"job {j.name}": j.description for j in defs.jobs}
    described |= {f"schedule {s.name}": s.description for s in defs.schedules}
    described |= {f"sensor {s.name}": s.description for s in defs.sensors}
    assert {"job recpie_full", "asset lora_adapter_r2", "check beats_champion", "sensor new_source_files"} \
        <= set(described)
    missing = sorted(name for name, text in described.items() if not (text or "").strip())
    multi_line = sorted(name for name, text in described.items() if "\n" in (text or "").strip())
    assert not missing and not multi_line, (missing, multi_line)
    assert "Round 2's" in described["asset lora_adapter_r2"]  # each round says which it is
