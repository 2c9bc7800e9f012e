"""Training throughput of the RecPIE recommender next to SASRec, on a toy table of ~50k ratings.

Prints training samples/s (forward, backward and Adam step; validation excluded) per
model and the ratio RecPIE / SASRec. RecPIE is run with random 384-d explanation
embeddings, as in a round of the alternating loop, and without them.

    .venv/bin/python bench/bench_rec.py [--users 2500] [--epochs 2] [--threads N]

Record the numbers in bench/reports/rec.md with the date, the machine and the command.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace

import torch

from recpie_core.data.batches import load_rating_data
from recpie_core.rec.fit import FitConfig, fit_rating_model
from recpie_core.rec.registry import build_model
from recpie_core.rec.toy import make_toy_split


def throughput(name: str, data, cfg: FitConfig) -> float:
    """Median training samples/s over the epochs of one fit."""
    torch.manual_seed(0)
    model = build_model(name, data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories)
    fit = fit_rating_model(model, data, cfg)
    rates = sorted(h["samples_per_s"] for h in fit.history[1:])
    return rates[len(rates) // 2]


def measure(users: int = 2500, epochs: int = 2, batch_size: int = 256, device: str = "cpu") -> dict:
    """Samples/s of RecPIE (with random explanation embeddings), recpie_no_expl and SASRec on the toy
    table of ``users`` x 20 ratings, and the ratio RecPIE / SASRec."""
    t0 = time.perf_counter()
    split, places = make_toy_split(n_users=users, n_places=2000, n_categories=20, ratings_per_user=20, seed=0)
    data = load_rating_data(split, places, hist_len=20)
    built = time.perf_counter() - t0
    cfg = FitConfig(epochs=epochs, patience=epochs + 1, batch_size=batch_size, device=device, progress=False)
    g = torch.Generator().manual_seed(0)
    expl = lambda t: t.with_explanations(torch.randn(len(t), 384, generator=g), torch.randn(len(t), 384, generator=g))  # noqa: E731
    with_expl = replace(data, train=expl(data.train), valid=expl(data.valid))
    rates = {"recpie": throughput("recpie", with_expl, cfg), "recpie_no_expl": throughput("recpie_no_expl", data, cfg),
             "sasrec": throughput("sasrec", data, cfg)}
    return {"rows": split.height, "train": len(data.train), "valid": len(data.valid), "built_s": round(built, 1),
            "epochs": epochs, "batch_size": batch_size, "threads": torch.get_num_threads(),
            "samples_per_s": {k: round(v) for k, v in rates.items()},
            "ratio_recpie_sasrec": round(rates["recpie"] / rates["sasrec"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2500, help="users x 20 ratings = rows")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    r = measure(args.users, args.epochs, args.batch_size, args.device)
    print(f"table: {r['rows']} rows ({r['train']} train, {r['valid']} valid), built in {r['built_s']:.1f}s; "
          f"torch {torch.__version__}, {r['threads']} threads, {platform.processor() or platform.machine()}, "
          f"device {args.device}")
    names = {"recpie": "recpie (with explanations)", "recpie_no_expl": "recpie_no_expl", "sasrec": "sasrec"}
    for key, rate in r["samples_per_s"].items():
        print(f"{names[key]:28s} {rate:10.0f} samples/s")
    print(f"ratio recpie / sasrec: {r['ratio_recpie_sasrec']:.2f}")


if __name__ == "__main__":
    main()
