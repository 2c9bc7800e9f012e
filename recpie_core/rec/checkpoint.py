"""Rating-model checkpoints: safetensors weights plus a JSON config, never pickles.

A checkpoint is a folder::

    model.safetensors   the state dict (shared tensors stored once)
    config.json         {"model": registry name, "config": {...}, "n_users", "n_places", "n_categories"}

``load_checkpoint`` rebuilds the model through ``registry.build_model`` and loads the
weights; the folder is written to a temporary name and renamed into place, so a crash
never leaves half a checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

from safetensors.torch import load_model, save_model

from recpie_core.io import atomic_write
from recpie_core.rec.base import RatingModel
from recpie_core.rec.registry import build_model, model_entry

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "recpie-rating-model/1"


def save_checkpoint(model: RatingModel, name: str, config, path_dir: str | Path) -> Path:
    """Write ``model`` (registry name ``name``, config dataclass ``config``) to the folder ``path_dir``."""
    model_cls, config_cls = model_entry(name)
    if not isinstance(model, model_cls):
        raise ValueError(f"{name!r} is a {model_cls.__name__} in the registry, got a {type(model).__name__}")
    if not (is_dataclass(config) and isinstance(config, config_cls)):
        raise ValueError(f"config for {name!r} must be a {config_cls.__name__}, got {type(config).__name__}")
    meta = {
        "format": FORMAT,
        "model": name,
        "config": asdict(config),
        "n_users": model.n_users,
        "n_places": model.n_places,
        "n_categories": model.n_categories,
    }

    def write(tmp: Path) -> None:
        tmp.mkdir()
        save_model(model, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, "model": name})
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    return atomic_write(Path(path_dir), write)


def load_checkpoint(path_dir: str | Path, device: str = "cpu") -> RatingModel:
    """Rebuild the model saved in ``path_dir`` (in eval mode, on ``device``)."""
    path_dir = Path(path_dir)
    meta = json.loads((path_dir / CONFIG_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path_dir} is not a rating-model checkpoint (format {meta.get('format')!r})")
    model = build_model(meta["model"], meta["n_users"], meta["n_places"], meta["n_categories"], **meta["config"])
    load_model(model, str(path_dir / WEIGHTS_FILE), strict=True, device=device)
    return model.to(device).eval()
