"""The recommender as an MLflow pyfunc model, built from code (no pickle).

``recpie_core/pyfunc_model.py`` is the code file MLflow copies into the model and runs on
``mlflow.pyfunc.load_model``; it only wraps a ``RecommenderModel`` for MLflow. The model's
artifacts are the fit folder (``seed{s}/`` safetensors checkpoints, ``store.save_fit``) and
``serving.json``: the training rows' id tables (``batches.Vocab``), the history length, and
whether the model reads explanation embeddings (rounds >= 1) or not (round 0).

Input, one row per (consumer, candidate place), the columns of ``signature()``:

    user_id          string         the consumer (unknown ids get the unknown embedding)
    place_id         string         the candidate place
    hist_place_ids   list[string]   the consumer's earlier places, oldest first
    hist_ratings     list[double]   their star ratings (1..5), aligned with hist_place_ids
    pos_emb, neg_emb list[double]   the positive / negative explanation's sentence embedding
                                    (required by models that read explanations)

Output: ``rating``, the predicted stars (1..5), the mean over the fit's seeds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import torch

from recpie_core.data.batches import Vocab, build_vocab, encode, to_stars
from recpie_core.io import scan_table
from recpie_core.rec.checkpoint import load_checkpoint
from recpie_core.rec.fit import predict

CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
SERVING_FILE = "serving.json"
INPUT_COLUMNS = ("user_id", "place_id", "hist_place_ids", "hist_ratings")
EMBEDDINGS = ("pos_emb", "neg_emb")
REQUIREMENTS = ["mlflow>=3.16.1,<4", "torch>=2.13", "safetensors>=0.4", "polars>=2,<3", "pandas", "numpy"]


def signature():
    """The pyfunc signature: the input columns of the module docstring, ``rating`` out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([ColSpec("string", "user_id"), ColSpec("string", "place_id"),
                     ColSpec(Array("string"), "hist_place_ids"), ColSpec(Array("double"), "hist_ratings"),
                     *[ColSpec(Array("double"), name, required=False) for name in EMBEDDINGS]])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "rating")]))


def write_serving_info(split: pl.DataFrame, places: pl.DataFrame, hist_len: int, reads_explanations: bool,
                       out: Path) -> Path:
    """``serving.json``: the vocabulary the fit was trained with (rebuilt from the same training rows)."""
    vocab = build_vocab(split, places)
    out.write_text(json.dumps({"vocab": asdict(vocab), "hist_len": hist_len,
                               "reads_explanations": reads_explanations}))
    return out


def input_frame(rows: pl.DataFrame, explanations: pl.DataFrame | None = None) -> pd.DataFrame:
    """Split-table rows as the model's input; with ``explanations`` (keyed like the split), their embeddings."""
    if explanations is not None:
        rows = rows.join(explanations.select("user_id", "place_id", "ts", *EMBEDDINGS),
                         on=["user_id", "place_id", "ts"], how="left")
    cols = [*INPUT_COLUMNS, *(EMBEDDINGS if explanations is not None else ())]
    frame = rows.select(*cols).with_columns(pl.col("hist_ratings").cast(pl.List(pl.Float64)))
    return frame.to_pandas()


def validation_rows(split: Path, explanations: Path | None) -> tuple[pd.DataFrame, np.ndarray]:
    """The split's validation rows as model input (with ``explanations``' embeddings when given) and
    their star ratings: the rows two recommenders are compared on."""
    rows = pl.read_parquet(split).filter(pl.col("split") == "train", pl.col("valid"))
    table = None if explanations is None else pl.read_parquet(explanations)
    return input_frame(rows, table), rows["rating"].cast(pl.Float64).to_numpy()


def rmse(predicted: pd.DataFrame, stars: np.ndarray) -> float:
    """RMSE in stars of a model's ``rating`` output against the true ``stars``."""
    return float(np.sqrt(np.mean((predicted["rating"].to_numpy() - stars) ** 2)))


def _as_list(v) -> list:
    return [] if v is None else list(v)


def to_split_rows(df: pd.DataFrame) -> pl.DataFrame:
    """The model input as rows of the split table (``encode`` reads those); a clear error for what is missing."""
    missing = [c for c in INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"model input lacks columns {missing}; expected {list(INPUT_COLUMNS)} (+ {list(EMBEDDINGS)})")
    hist, ratings = (df[c].map(_as_list).tolist() for c in ("hist_place_ids", "hist_ratings"))
    bad = [i for i, (h, r) in enumerate(zip(hist, ratings)) if len(h) != len(r)]
    if bad:
        raise ValueError(f"rows {bad[:5]}: hist_place_ids and hist_ratings differ in length")
    return pl.DataFrame({
        "user_id": df["user_id"].astype(str).tolist(), "place_id": df["place_id"].astype(str).tolist(),
        "hist_place_ids": hist, "hist_ratings": [[float(x) for x in r] for r in ratings],
        "ts": [0] * len(df), "rating": [3.0] * len(df),  # encode keeps a key and a target; unused here
    }, schema_overrides={"hist_place_ids": pl.List(pl.String), "hist_ratings": pl.List(pl.Float64)})


def _embeddings(df: pd.DataFrame, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    if any(c not in df.columns or df[c].isna().any() for c in EMBEDDINGS):
        raise ValueError(f"this model reads explanations: every row needs pos_emb and neg_emb ({dim} floats each)")
    pos, neg = (torch.from_numpy(np.stack([np.asarray(v, dtype=np.float32) for v in df[c]])) for c in EMBEDDINGS)
    if pos.shape[1] != dim or neg.shape[1] != dim:
        raise ValueError(f"pos_emb/neg_emb have {pos.shape[1]}/{neg.shape[1]} floats; the model reads {dim}")
    return pos, neg


class RecommenderModel:
    """What ``pyfunc_model.py`` hands MLflow (wrapped there as a ``PythonModel``): load the seeds, predict stars."""

    def load(self, artifacts: dict[str, str]) -> None:
        info = json.loads(Path(artifacts["serving"]).read_text())
        self.vocab, self.hist_len = Vocab(**info["vocab"]), info["hist_len"]
        self.reads_explanations = info["reads_explanations"]
        seeds = sorted(Path(artifacts["checkpoint"]).glob("seed*"))
        if not seeds:
            raise ValueError(f"{artifacts['checkpoint']} holds no seed*/ checkpoint")
        self.models = [load_checkpoint(s) for s in seeds]
        if any(m.config.task != "regression" for m in self.models):
            raise ValueError("only regression recommenders (a rating out) can be served")

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        tensors = encode(to_split_rows(df), self.vocab, self.hist_len)
        if self.reads_explanations:
            tensors = tensors.with_explanations(*_embeddings(df, self.models[0].config.expl_dim))
        with torch.no_grad():
            unit = torch.stack([predict(m, tensors) for m in self.models]).mean(dim=0)  # (N,)
        return pd.DataFrame({"rating": to_stars(unit.double().numpy())})


def serving_inputs(split: Path, places: Path, explanations: Path | None, hist_len: int,
                   out: Path) -> tuple[Path, pd.DataFrame]:
    """``serving.json`` (in ``out``) and an input example (three validation rows) for a fit that read
    ``explanations`` (None: round 0, no explanations)."""
    split_df = pl.read_parquet(split)
    places_df = scan_table(places).select("place_id", "category").collect()
    serving = write_serving_info(split_df, places_df, hist_len, explanations is not None, out / SERVING_FILE)
    table = None if explanations is None else pl.read_parquet(explanations)
    return serving, input_frame(split_df.filter(pl.col("split") == "train", pl.col("valid")).head(3), table)


def save_pyfunc(folder: Path, serving: Path, example: pd.DataFrame, out: Path) -> Path:
    """The MLflow model directory for the fit folder ``folder``: code file, artifacts, signature, example."""
    import mlflow

    mlflow.pyfunc.save_model(str(out), python_model=str(CODE_FILE),
                             artifacts={"checkpoint": str(folder), "serving": str(serving)},
                             signature=signature(), input_example=example, pip_requirements=REQUIREMENTS)
    return out


def data_fingerprint(split: Path) -> str:
    """sha256 (16 hex) of the split table's bytes (one file or a folder of parts): equal fingerprints,
    equal validation rows. Streamed, so cheap on any size; an equal table written by another Parquet
    writer gets another fingerprint, which only costs a re-scoring (``recpie_assets.champion``)."""
    split = Path(split)
    h = hashlib.sha256()
    for part in sorted(split.rglob("*.parquet")) if split.is_dir() else [split]:
        with part.open("rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:16]


def checkpoint_digest(folder: Path) -> str:
    """sha256 (16 hex) of a fit folder's seed weights: names the training run that wrote them."""
    h = hashlib.sha256()
    for weights in sorted(Path(folder).glob("seed*/model.safetensors")):
        h.update(weights.parent.name.encode())
        h.update(weights.read_bytes())
    return h.hexdigest()[:16]
