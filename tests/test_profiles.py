"""Profiles: the explanation pass and the PIE sampler share one generation config."""

from dataclasses import replace

import pytest

from recpie_core.explain.generation import GenerationConfig
from recpie_core.profiles import PROFILES, get_profile


@pytest.mark.parametrize("name", list(PROFILES))
def test_explanation_pass_and_pie_sampler_share_one_generation_config(name):
    profile = get_profile(name)
    assert profile.loop.generation is profile.pie.generation


def test_a_profile_with_two_generation_configs_is_refused():
    demo = get_profile("demo")
    with pytest.raises(ValueError, match="loop.generation and pie.generation differ"):
        replace(demo, pie=replace(demo.pie, generation=GenerationConfig(max_new_tokens=8)))
