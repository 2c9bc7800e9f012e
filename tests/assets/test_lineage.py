"""The graph is the only statement of lineage: every upstream table or folder of every asset
reaches it as an input parameter (a Path from the IO manager), so no step reads a file the graph
does not show. Order-only edges (no file read through them) are listed here with their reason."""

from recpie_assets.definitions import build_definitions

ORDER_ONLY = {
    "ingest": ["google_local_files"],  # the source files come from the resource; the asset only describes them
    "champion": ["evaluation_report"],  # reads the MLflow registry version the report registered
}


def test_every_upstream_asset_is_an_input_parameter(tmp_path):
    graph = build_definitions("demo", str(tmp_path)).resolve_asset_graph()
    deps_only = {}
    for assets in graph.assets_defs:
        if not assets.keys:  # asset checks only
            continue
        upstream = set(assets.dependency_keys) - set(assets.keys)  # a multi-asset's own keys are not inputs
        served = {key for name, key in assets.keys_by_input_name.items()  # deps=[...] become Nothing inputs
                  if not assets.node_def.input_def_named(name).dagster_type.is_nothing}
        missing = upstream - served
        if missing:
            deps_only[assets.node_def.name] = sorted(k.to_user_string() for k in missing)
    assert deps_only == ORDER_ONLY
