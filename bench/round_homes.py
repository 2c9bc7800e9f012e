"""What the round benchmarks share (``bench_data_efficiency.py``, ``bench_variants.py``): a home
made from a finished one, the round's steps as the assets call them, and reading the test
predictions back for paired intervals."""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

import polars as pl
import torch

from recpie_core import steps, store
from recpie_core.explain.ladder import find_review_truth
from recpie_core.paths import RecpieHome
from recpie_core.profiles import Profile
from recpie_core.rec.evaluate import ModelResult
from recpie_core.rec.paired import compare_to_reference
from recpie_core.report import model_result


def round_parser(doc: str, work_help: str, out: str) -> argparse.ArgumentParser:
    """The arguments both benchmarks take: the finished home, its profile, where the new homes go,
    the JSON report, the bootstrap resamples. Logging at INFO as a side effect."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a finished home of --profile")
    parser.add_argument("--profile", default="eval")
    parser.add_argument("--work", type=Path, required=True, help=work_help)
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--bootstrap", type=int, default=2000)
    return parser


def home_parser(doc: str, out: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark that only reads a finished home: the home, its profile, the folder
    of the synthetic truth (for the ideal rung), the JSON report."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a finished home of --profile")
    parser.add_argument("--profile", default="eval")
    parser.add_argument("--truth", type=Path, help="folder of the synthetic truth files (default: under raw/)")
    parser.add_argument("--out", type=Path, default=Path(out))
    return parser


def linked_home(source: RecpieHome, folder: Path, split: pl.DataFrame | None = None,
                models: tuple[str, ...] = ()) -> RecpieHome:
    """A home beside ``source``: its places, LLM cache and the given model folders linked (read
    only), the text-encoder cache copied, and ``split`` (default: the source's split)."""
    home = RecpieHome(folder).ensure()
    links = [(source.table("raw_places"), home.table("raw_places")), (source.models / "llm", home.models / "llm"),
             *[(source.models / m, home.models / m) for m in models]]
    if split is None:
        links.append((source.table("user_temporal_split"), home.table("user_temporal_split")))
    else:
        split.write_parquet(home.table("user_temporal_split"))
    for target, link in links:
        if not link.exists():
            link.symlink_to(target.resolve())
    cache = source.models / "text_encoder_cache.safetensors"
    if cache.exists():
        shutil.copyfile(cache, home.models / cache.name)
    return home


def run_round(home: RecpieHome, profile: Profile, train_r0: bool, reward_from: Path | None = None) -> dict:
    """Round 1 as the assets run it (after ``recommender_r0`` when asked); the steps' summaries.
    ``reward_from``: the fit folder whose recommender scores the PIE samples (default ``recommender_r0``,
    as Algorithm 1 does; ``LoopConfig.round1_reward`` in the pipeline); the soft prompts and the warm
    start stay ``recommender_r0``'s."""
    t0, cache = time.perf_counter(), store.caches(home)
    split, places = home.table("user_temporal_split"), home.table("raw_places")
    r0, r1 = home.model(store.recommender(0)), home.model(store.recommender(1))
    adapter, table = home.model(store.lora_adapter(1)), home.table(store.explanations(1))
    out = {"recommender_r0": steps.train_recommender_r0(split, places, r0, profile, cache).summary} if train_r0 else {}
    out["lora_adapter_r1"] = steps.update_lora(split, places, r0, None, adapter, 1, profile, cache,
                                               reward=reward_from).summary
    out["explanations_r1"] = steps.generate_explanations(split, places, r0, adapter, table,
                                                         store.sample_path(home, table), profile, cache).summary
    out["recommender_r1"] = steps.train_recommender(split, places, table, r0, r1, store.round_model(1),
                                                    profile).summary
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def review_truth(home: RecpieHome, folder: Path | None = None) -> Path | None:
    """The synthetic truth file of a home's reviews (in ``folder``, default the first source folder under raw/)."""
    return find_review_truth(folder or next(iter(sorted(home.raw.glob("*/"))), None))


def model_predictions(home: RecpieHome, folder: str, name: str | None = None) -> tuple[ModelResult, torch.Tensor]:
    return model_result(name or folder, store.load_predictions(home.model(folder)))


def best_baseline(home: RecpieHome) -> ModelResult:
    """The baseline with the lowest mean test RMSE (picking the comparator on test favours it, never RecPIE)."""
    frame = pl.read_parquet(home.table("baselines"))
    results = [model_result(m, frame.filter(pl.col("model") == m))[0] for m in frame["model"].unique().sort()]
    return min(results, key=lambda r: r.mean("rmse"))


def versus(result: ModelResult, other: ModelResult, y: torch.Tensor, n_boot: int) -> dict:
    """Test RMSE (mean, std over seeds) and ``result`` minus ``other`` with its paired 95% interval."""
    d = compare_to_reference({result.name: result, other.name: other}, result.name, y, metrics=("rmse",),
                             n_boot=n_boot)[other.name]["rmse"]
    return {"test_rmse": result.mean("rmse"), "test_rmse_std": result.std("rmse"), "vs": other.name,
            "minus": d.estimate, "ci_low": d.low, "ci_high": d.high, "p_value": d.p_value}
