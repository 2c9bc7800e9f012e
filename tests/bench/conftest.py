"""The bench scripts import each other by module name (they run as ``python bench/X.py``):
put ``bench/`` on the path for the tests that import them, and offer a finished Dagster home."""

import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.fixture
def finished_home(tmp_path: Path) -> Path:
    """A home whose Dagster instance ran one real two-asset run (``slow_asset`` sleeps 1.5 s),
    laid out as ``recpie run`` leaves it: ``<home>/dagster/history/runs.db`` and a manifest."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    @dg.asset
    def slow_asset() -> int:
        time.sleep(1.5)
        return 1

    @dg.asset
    def fast_asset(slow_asset: int) -> int:
        return slow_asset + 1

    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "recpie.json").write_text('{"profile": "demo", "source": ""}')
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home / "dagster"))) as instance:
        assert dg.materialize([slow_asset, fast_asset], instance=instance).success
    return home
