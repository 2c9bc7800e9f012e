"""The on-disk layout of a RecPIE home: the one module that spells artifact names, with typed
load and save functions for each artifact. Steps, the report and the case study ask it.

    warehouse/<asset>.parquet        every table asset (``RecpieHome.table``)
    warehouse/<asset>.parts/<fingerprint>/<split>-<nnnnn>.parquet
                                     an explanation pass's finished parts, until its table is written
    models/<asset>/                  every model asset (``RecpieHome.model``):
      recommender_r{k}/, explanation_only/, explanation_ladder/<rung>/   a *fit folder*:
        seed{s}/                     one checkpoint per seed (``rec.checkpoint``)
        fit.json                     per seed: best epoch, validation metrics, history
        test_predictions.parquet     one row per (seed, test row), unit scale
      lora_adapter_r{k}/             the explainer (``Explainer.save``) and pie.json, the update's statistics
    models/llm/, models/text_encoder_cache.safetensors   caches any step may share
    reports/<table>_sample.parquet   a look at an explanations table
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from recpie_core.io import atomic_write, scan_table
from recpie_core.paths import RecpieHome

if TYPE_CHECKING:  # the model side loads in the functions that need it: names stay cheap
    import torch

    from recpie_core.data.batches import RatingData, RatingTensors
    from recpie_core.explain.explainer import Explainer
    from recpie_core.explain.llm import LLMConfig
    from recpie_core.explain.pie_trainer import PIEStats
    from recpie_core.explain.text_encoder import TextEncoder
    from recpie_core.loop import RecStepResult
    from recpie_core.rec.recpie_dnn import RecPIEDNN

PREDICTIONS = "test_predictions.parquet"
FIT = "fit.json"
PIE = "pie.json"
VARIANT_EXPLANATIONS = "explanations_explanation_only"  # the explanation_only variant's table


# --- names ---------------------------------------------------------------------------------------

def recommender(k: int) -> str:
    """Asset (and models/ folder) of round k's recommender; k = 0 has no explanations."""
    return f"recommender_r{k}"


def explanations(k: int) -> str:
    """Asset (and warehouse table) of round k's explanations."""
    return f"explanations_r{k}"


def lora_adapter(k: int) -> str:
    """Asset (and models/ folder) of round k's explainer."""
    return f"lora_adapter_r{k}"


def round_asset(name: str) -> tuple[str, int] | None:
    """``("recommender" | "lora_adapter" | "explanations", k)`` for a round's asset name, else None."""
    spellings = {"recommender": recommender, "lora_adapter": lora_adapter, "explanations": explanations}
    kind, _, k = name.rpartition("_r")
    if kind in spellings and k.isdigit() and spellings[kind](int(k)) == name:
        return kind, int(k)
    return None


def round_model(k: int) -> str:
    """Round k's recommender as a model in predictions and the report."""
    return f"recpie_r{k}"


def is_round_model(name: str) -> bool:
    return name.startswith("recpie_r")


def explanation_parts(table: Path) -> Path:
    """Where an explanations table's finished parts wait while its pass runs (``explain_parts``):
    beside the table, so a killed pass resumes from them."""
    return table.with_name(f"{table.stem}.parts")


def sample_path(home: RecpieHome, table: Path) -> Path:
    """Where the first test rows of an explanations table are kept for a look."""
    return home.reports / f"{table.stem}_sample.parquet"


# --- inputs --------------------------------------------------------------------------------------

@dataclass
class Inputs:
    """The split, encoded, plus the tables prompts need."""

    split: pl.DataFrame
    places: pl.DataFrame
    data: RatingData


def load_inputs(split: Path, places: Path, hist_len: int) -> Inputs:
    """The user_temporal_split table, encoded with histories of ``hist_len``, and the place texts."""
    from recpie_core.data.batches import load_rating_data

    split_df = pl.read_parquet(split)
    places_df = scan_table(places).select("place_id", "name", "description", "category").collect()
    return Inputs(split_df, places_df, load_rating_data(split_df, places_df, hist_len))


# --- caches --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Caches:
    """Files any step may reuse: the converted LLM and the sentence encoder's embeddings by text hash."""

    llm: Path
    text_encoder: Path


def caches(home: RecpieHome) -> Caches:
    return Caches(llm=home.models / "llm", text_encoder=home.models / "text_encoder_cache.safetensors")


def make_encoder(encoder: str, cache: Caches, explainer: Explainer | None = None) -> TextEncoder:
    """The sentence encoder ``encoder`` names ('' = the default, 'llm' = the explainer's hidden states)."""
    from recpie_core.explain.text_encoder import LLMHiddenEncoder, SentenceEncoder

    if encoder == "llm":
        if explainer is None:
            raise ValueError("encoder 'llm' (Ablation 3) needs the explainer")
        return LLMHiddenEncoder(explainer)
    return SentenceEncoder(encoder or None, cache_file=cache.text_encoder)


def save_encoder_cache(encoder: TextEncoder) -> None:
    from recpie_core.explain.text_encoder import SentenceEncoder

    if isinstance(encoder, SentenceEncoder):
        encoder.save_cache()


def load_explainer(llm: LLMConfig, cache: Caches, adapter: Path | None, seed: int) -> Explainer:
    """The explainer saved in ``adapter``, or fresh LoRA adapters (the identity) when None."""
    from recpie_core.explain.explainer import Explainer

    if adapter is None:
        return Explainer.create(llm, cache.llm, seed=seed)
    return Explainer.load(adapter, cache.llm)


# --- fit folders (a recommender step, every seed) -------------------------------------------------

def predictions_frame(name: str, per_seed: dict[int, torch.Tensor], test: RatingTensors) -> pl.DataFrame:
    """Test predictions (unit scale) of model ``name``: one row per (seed, test row)."""
    return pl.concat([test.keys.with_columns(pl.lit(name).alias("model"), pl.lit(seed, dtype=pl.Int64).alias("seed"),
                                             pl.Series("prediction", p.numpy().astype("float32")))
                      for seed, p in per_seed.items()])


def save_fit(folder: Path, result: RecStepResult, test: RatingTensors) -> Path:
    """Per-seed checkpoints, fit summaries and test predictions of one recommender step."""
    from recpie_core.rec.checkpoint import save_checkpoint

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        fits = {}
        for seed, fit in result.fits.items():
            save_checkpoint(fit.model, "recpie", fit.model.config, tmp / f"seed{seed}")
            fits[str(seed)] = {"best_epoch": fit.best_epoch, "valid": fit.valid, "history": fit.history}
        (tmp / FIT).write_text(json.dumps({"name": result.test.name, "start": result.start,
                                           "valid_rmse_by_start": result.valid_by_start, "fits": fits}, indent=1))
        predictions_frame(result.test.name, dict(zip(result.test.seeds, result.test.predictions)),
                          test).write_parquet(tmp / PREDICTIONS)
    return atomic_write(folder, write)


def load_round(folder: Path, seed: int) -> RecPIEDNN:
    """The recommender of one seed in a fit folder."""
    from recpie_core.rec.checkpoint import load_checkpoint

    return load_checkpoint(folder / f"seed{seed}")


def round_states(folder: Path, seeds) -> dict[int, dict[str, torch.Tensor]]:
    return {s: load_round(folder, s).state_dict() for s in seeds}


def has_predictions(folder: Path) -> bool:
    """Whether the fit folder is complete (a run may leave a variant out with --select)."""
    return (folder / PREDICTIONS).is_file()


def load_predictions(folder: Path) -> pl.DataFrame:
    return pl.read_parquet(folder / PREDICTIONS)


def fit_seeds(folder: Path) -> list[int]:
    """The seeds a fit folder holds a recommender of, in the order they were trained."""
    return [int(s) for s in json.loads((folder / FIT).read_text())["fits"]]


def fit_start(folder: Path) -> str | None:
    """How the fit folder's recommenders started from the one before (``rec.starts``); None in older folders."""
    return json.loads((folder / FIT).read_text()).get("start")


def fit_valid_rmse(folder: Path) -> float:
    """Mean validation RMSE (unit scale) over seeds of a fit folder."""
    fits = json.loads((folder / FIT).read_text())["fits"]
    return sum(f["valid"]["rmse"] for f in fits.values()) / len(fits)


# --- explainer folders ---------------------------------------------------------------------------

def save_pie_stats(folder: Path, stats: PIEStats) -> None:
    (folder / PIE).write_text(json.dumps({"steps": stats.steps, "seconds": stats.seconds,
                                          "n_problems": stats.n_problems, "history": stats.history,
                                          "readout": stats.readout}, indent=1))


def load_pie_stats(folder: Path) -> dict:
    """What ``save_pie_stats`` wrote for the update saved in ``folder`` (``history``: per step;
    ``readout``: the same pairs before and after, absent in older folders); empty when there was none."""
    path = folder / PIE
    return json.loads(path.read_text()) if path.is_file() else {}


def load_pie_history(folder: Path) -> list[dict]:
    """Per PIE step statistics of the update saved in ``folder``; empty when there was none."""
    return load_pie_stats(folder).get("history", [])
