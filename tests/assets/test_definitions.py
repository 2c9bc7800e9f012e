"""The code location loads, with the asset names scripts rely on and one set of assets per round."""

import dagster as dg

from recpie_assets.constants import GPU_POOL
from recpie_assets.definitions import build_definitions
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
