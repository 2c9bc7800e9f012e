"""The Launchpad's knobs: what a user changes per run, as ``dg.Config`` on the assets that read them.

Every field is optional: unset (the default, and what ``recpie run`` passes) keeps the profile's
value, so the profile in ``recpie_core/profiles.py`` stays the one place defaults live. Each class
lists only the knobs its assets read (a round's recommender has no explanation length), and its one
``to_core(profile)`` returns that profile with the set fields replaced. ``with_settings`` is where
a knob meets the core dataclasses (``FitConfig``, ``LoopConfig``, ``PIEConfig``,
``GenerationConfig``), through ``dataclasses.replace``, so their ``__post_init__`` checks still
refuse a bad value with a sentence.

To re-run one round with other settings from the UI: select ``lora_adapter_r1`` (or any round
asset), "Materialize" with shift-click (the Launchpad), and set e.g.
``ops: {lora_adapter_r1: {config: {pie_steps: 8}}}``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import Field

from recpie_core import store
from recpie_core.profiles import Profile

_KEEP = "Unset: the profile's value."


def with_settings(profile: Profile, *, epochs: int | None = None, seeds: list[int] | None = None,
                  pie_steps: int | None = None, pie_pairs: int | None = None, pie_batch_size: int | None = None,
                  max_new_tokens: int | None = None, engine: str | None = None,
                  rec_starts: list[str] | None = None) -> Profile:
    """``profile`` with the knobs that are not None replaced; a ValueError names a bad value.

    ``max_new_tokens`` goes to both generation configs (the explanation pass's and the PIE
    sampler's: the profile refuses two). New seeds must start with the profile's first seed:
    the next round's explainer and the report read that seed's recommender."""
    loop, pie, fit, generation = profile.loop, profile.pie, profile.fit, profile.loop.generation
    try:
        if seeds is not None:
            if not seeds or seeds[0] != profile.seeds[0] or len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds {seeds} must be distinct and start with the profile's first seed "
                                 f"({profile.seeds[0]}): the next round's explainer and the report read that "
                                 "seed's recommender")
            loop = replace(loop, seeds=tuple(seeds))
        if epochs is not None:
            fit = replace(fit, epochs=epochs)
        if rec_starts is not None:
            loop = replace(loop, rec_starts=tuple(rec_starts))
        if pie_pairs is not None:
            loop = replace(loop, pie_pairs=pie_pairs)
        if max_new_tokens is not None:
            generation = replace(generation, max_new_tokens=max_new_tokens)
            loop, pie = replace(loop, generation=generation), replace(pie, generation=generation)
        if engine is not None:
            loop = replace(loop, engine=replace(loop.engine, engine=engine))
        if pie_steps is not None:
            pie = replace(pie, steps=pie_steps)
        if pie_batch_size is not None:
            pie = replace(pie, batch_size=pie_batch_size)
        return replace(profile, fit=fit, loop=loop, pie=pie)
    except ValueError as exc:
        raise ValueError(f"run config on profile {profile.name!r}: {exc}") from None


class StepConfig(dg.Config):
    """A step's Launchpad settings; the subclasses say which knobs."""

    def overrides(self) -> dict:
        """The fields that were set (what the step's MLflow run tags as ``recpie_overrides``)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def to_core(self, profile: Profile) -> Profile:
        """The profile with this step's set fields replaced (``with_settings``)."""
        return with_settings(profile, **self.overrides())

    def metadata(self) -> dict:
        """The settings as asset metadata; nothing when the step ran the profile as it is."""
        return {"settings": dg.MetadataValue.json(self.overrides())} if self.overrides() else {}


class RecommenderConfig(StepConfig):
    """How a recommender (a round's, a variant's, each baseline) trains: epochs and seeds."""

    epochs: int | None = Field(default=None, description=f"Most training epochs per seed (early-stopped). {_KEEP}")
    seeds: list[int] | None = Field(default=None, description=(
        "Recommender seeds, starting with the profile's first; a round starts each from the previous "
        f"round's same seed, so that round must have them. {_KEEP}"))


class ReaderConfig(RecommenderConfig):
    """A recommender that reads explanations (a round's, a variant's, the ladder's): also how it starts."""

    rec_starts: list[str] | None = Field(default=None, description=(
        "How it starts from the recommender before it: any of 'warm', 'scratch', 'probe', 'probe_finetune' "
        f"(recpie_core/rec/starts.py); with several, the lowest validation RMSE is kept. {_KEEP}"))


class ExplanationsConfig(StepConfig):
    """How a round's explanations are written: their length, and the engine that writes them."""

    max_new_tokens: int | None = Field(default=None, description=(
        f"Explanation length cap in tokens; give the round's lora_adapter the same. {_KEEP}"))
    engine: str | None = Field(default=None, description=(
        "Generation engine of the explanation pass: 'hf' (transformers, the reference), 'vllm' (needs "
        f"vLLM installed: README, Generation engines) or 'auto'. {_KEEP}"))


class PIEUpdateConfig(StepConfig):
    """A round's PIE update of the explainer: steps, pairs per step, pairs drawn, sample length."""

    max_new_tokens: int | None = Field(default=None, description=(
        "Length cap in tokens of the PIE update's samples; give the round's explanations the same, so the "
        f"explainer learns on texts of the length the recommender reads. {_KEEP}"))
    pie_steps: int | None = Field(default=None, description=f"Sampled batches in this round's PIE update. {_KEEP}")
    pie_batch_size: int | None = Field(default=None, description=f"Pairs (user, place) per PIE step. {_KEEP}")
    pie_pairs: int | None = Field(default=None, description=(
        f"Training rows this round's PIE update draws its batches from. {_KEEP}"))


class VariantConfig(ReaderConfig, ExplanationsConfig):
    """The explanation-only variant: its explanations' length, then its recommender's epochs and seeds."""


def require_seeds(folder: Path, seeds, reader: str) -> None:
    """A step that reads ``seeds`` of the fit folder ``folder`` (a warm start, a frozen recommender)
    fails here, in one line, when that folder was trained on other seeds."""
    have = store.fit_seeds(folder)
    missing = [s for s in seeds if s not in have]
    if missing:
        raise ValueError(f"{reader} reads seed(s) {missing} of {folder.name}, which was trained on seeds {have}: "
                         f"give {reader} seeds among those, or re-materialize {folder.name} with them")
