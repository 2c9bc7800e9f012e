"""The IO manager serves each upstream asset to its downstream parameter as the Path of its
files (a models/ folder when the upstream says so, else the warehouse table), through a real
Dagster materialization; a returned value is refused."""

from pathlib import Path

import dagster as dg
import pytest

from recpie_assets.resources import WarehouseIOManager
from recpie_assets.rounds import MODELS


@dg.asset(metadata=MODELS)
def model_asset() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset
def table_asset() -> dg.MaterializeResult:
    return dg.MaterializeResult()


def test_downstream_parameters_get_the_upstream_paths(tmp_path):
    seen = {}

    @dg.asset(ins={"renamed": dg.AssetIn("table_asset")})
    def downstream(model_asset: Path, renamed: Path) -> dg.MaterializeResult:
        seen.update(model=model_asset, table=renamed)
        return dg.MaterializeResult()

    result = dg.materialize([model_asset, table_asset, downstream],
                            resources={"io_manager": WarehouseIOManager(home=str(tmp_path))})
    assert result.success
    assert seen == {"model": tmp_path / "models" / "model_asset",
                    "table": tmp_path / "warehouse" / "table_asset.parquet"}


def test_an_asset_that_returns_a_value_fails(tmp_path):
    @dg.asset
    def returns_a_frame():
        return [1, 2]

    with pytest.raises(TypeError, match="returns_a_frame returned list"):
        dg.materialize([returns_a_frame], resources={"io_manager": WarehouseIOManager(home=str(tmp_path))})
