"""Named profiles: one set of settings per scale. Defaults live here, once.

``demo``  the embedded default: synthetic Google Local data, SmolLM2-135M, minutes on 2 CPU cores.
``paper`` the paper's settings (Llama 3.1 8B, the full Mountain View data, 10 seeds): a GPU run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recpie_core.data.split import FilterConfig, SplitConfig
from recpie_core.data.synthetic import SyntheticConfig


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    reject_threshold: float = 0.01  # the rejected-reviews check fails above this share
    rounds: int = 2  # alternating rounds of Algorithm 1 (unrolled into assets)


PROFILES: dict[str, Profile] = {
    "demo": Profile(
        name="demo",
        description="synthetic Google Local data, SmolLM2-135M and MiniLM on CPU; minutes on 2 cores",
    ),
    "paper": Profile(
        name="paper",
        description="the paper's settings: full Mountain View data, Llama 3.1 8B, 10 seeds; needs a GPU",
        synthetic=SyntheticConfig(n_users=50_000, n_places=140_000),
        filter=FilterConfig(min_ratings=5),
        split=SplitConfig(hist_len=50),
        rounds=3,
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
