"""Pipeline steps refuse bad configuration before any work starts."""

from dataclasses import replace

import pytest

from recpie_core import steps
from recpie_core.loop import LoopConfig
from recpie_core.profiles import get_profile


def test_unknown_baseline_fails_before_reading_or_training(tmp_path):
    profile = replace(get_profile("smoke"), baselines=("mf", "nope"))
    # the files do not exist: reaching the data would raise FileNotFoundError instead
    with pytest.raises(ValueError, match="unknown rating model 'nope'"):
        steps.run_baselines(tmp_path / "split.parquet", tmp_path / "places.parquet", tmp_path / "out.parquet", profile)


def test_loop_config_rejects_bad_values():
    with pytest.raises(ValueError, match="variant"):
        LoopConfig(variant="pie_only")
    with pytest.raises(ValueError, match="rounds"):
        LoopConfig(rounds=0)
    with pytest.raises(ValueError, match="seed"):
        LoopConfig(seeds=())
    with pytest.raises(ValueError, match="round1_reward must be one of"):
        LoopConfig(round1_reward="recommender_r1")


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ValueError, match="demo, eval, smoke, paper"):
        get_profile("huge")
