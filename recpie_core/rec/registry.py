"""Every rating model by name: an explicit dict, so a grep finds them all.

``build_model("sasrec", n_users, n_places, n_categories, dropout=0.1)`` builds a model
from its config class's defaults plus overrides; checkpoints store the name and the
config and rebuild through here.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from recpie_core.rec.base import RatingModel
from recpie_core.rec.bert4rec import BERT4Rec, BERT4RecConfig
from recpie_core.rec.din import DIN, DINConfig
from recpie_core.rec.means import GlobalMean, MeanConfig, PlaceMean, UserMean
from recpie_core.rec.mf import BiasedMF, MFConfig
from recpie_core.rec.ncf import NCF, NCFConfig
from recpie_core.rec.recpie_dnn import RecPIEConfig, RecPIEDNN, RecPIENoExplConfig
from recpie_core.rec.sasrec import SASRec, SASRecConfig

RATING_MODELS: dict[str, tuple[type[RatingModel], type]] = {
    "global_mean": (GlobalMean, MeanConfig),
    "user_mean": (UserMean, MeanConfig),
    "place_mean": (PlaceMean, MeanConfig),
    "mf": (BiasedMF, MFConfig),
    "ncf": (NCF, NCFConfig),
    "sasrec": (SASRec, SASRecConfig),
    "bert4rec": (BERT4Rec, BERT4RecConfig),
    "din": (DIN, DINConfig),
    "recpie": (RecPIEDNN, RecPIEConfig),
    "recpie_no_expl": (RecPIEDNN, RecPIENoExplConfig),  # Ablation 1: learned explanation tokens
}


def model_entry(name: str) -> tuple[type[RatingModel], type]:
    """(model class, config class) for ``name``; a ValueError lists the known names."""
    if name not in RATING_MODELS:
        raise ValueError(f"unknown rating model {name!r}; known models: {', '.join(RATING_MODELS)}")
    return RATING_MODELS[name]


def make_config(name: str, **overrides: Any):
    """The config of model ``name``: defaults plus ``overrides`` (lists become tuples, as JSON gives them)."""
    _, config_cls = model_entry(name)
    known = {f.name: f for f in fields(config_cls)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"{config_cls.__name__} has no field(s) {unknown}; fields: {', '.join(known)}")
    values = {}
    for key, value in overrides.items():
        default = known[key].default
        as_tuple = isinstance(value, list) and (default is MISSING or isinstance(default, tuple))
        values[key] = tuple(value) if as_tuple else value
    return config_cls(**values)


def build_model(name: str, n_users: int, n_places: int, n_categories: int, **overrides: Any) -> RatingModel:
    """A fresh model ``name`` (see ``RATING_MODELS``); ``overrides`` replace config defaults."""
    model_cls, _ = model_entry(name)
    return model_cls(make_config(name, **overrides), n_users, n_places, n_categories)
