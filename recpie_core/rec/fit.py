"""The one training loop every rating model goes through, early-stopped on validation.

Set up (``prepare`` on the training table, optional warm start, Adam), then per epoch:
shuffle with a seeded generator; per batch forward, loss, backward, step; validate on
``data.valid``; keep the state with the lowest validation loss; stop after ``patience``
epochs without improvement. The starting state is scored too, as epoch 0, so a warm
start that training only makes worse is kept, and parameter-free models (the means)
are prepared and validated without an optimizer. Progress goes to tqdm and logging,
per-epoch numbers to a ``Tracker``; the test split is never read here.

Seeds: ``FitConfig.seed`` fixes the shuffling order (its own ``torch.Generator``) and the
dropout masks (the global RNG, forked for the call so the caller's RNG state is left as
it was). Model initialisation happens when the model is built, before this loop;
``evaluate.evaluate_model`` seeds it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from recpie_core.data.batches import RatingBatch, RatingData, RatingTensors, make_loader
from recpie_core.rec.base import RatingModel
from recpie_core.rec.fit_config import FitConfig
from recpie_core.rec.metrics import is_positive, rating_metrics
from recpie_core.tracking import NullTracker, Tracker

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    model: RatingModel  # the best state (lowest validation loss) loaded
    best_epoch: int  # 0 = the state before training (prepared / warm-started) was best
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, valid_loss, valid_rmse/mae/auc (unit), seconds
    valid: dict[str, float]  # loss, rmse, mae, auc on data.valid at the best epoch (unit scale)
    stopped_early: bool


def rating_loss(output: Tensor, rating: Tensor, task: str) -> Tensor:
    """output, rating: (B,). MSE on the unit scale, or BCE of the logit against rating >= 4."""
    if task == "regression":
        return F.mse_loss(output, rating)
    return F.binary_cross_entropy_with_logits(output, is_positive(rating).to(output.dtype))


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with the global RNG seeded, restoring the caller's RNG state after."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def tensors_to(t: RatingTensors, device: torch.device | str) -> RatingTensors:
    """A copy of ``t`` with every tensor on ``device`` (``keys`` stays as it is)."""
    moved = {f.name: getattr(t, f.name).to(device) for f in fields(RatingBatch) if getattr(t, f.name) is not None}
    return replace(t, **moved)


def _device_of(model: RatingModel) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _task_of(model: RatingModel) -> str:
    return getattr(getattr(model, "config", None), "task", "regression")


@torch.no_grad()
def _outputs(model: RatingModel, tensors: RatingTensors, batch_size: int) -> Tensor:
    """Raw model outputs (N,) in eval mode, on the model's device."""
    was_training = model.training
    model.eval()
    try:
        device = _device_of(model)
        outs = [model(b.to(device)) for b in make_loader(tensors, batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0, device=_device_of(model))


def predict(model: RatingModel, tensors: RatingTensors, batch_size: int = 4096) -> Tensor:
    """(N,) predictions on CPU: the unit-scale rating, or P(rating >= 4) for classification."""
    out = _outputs(model, tensors, batch_size)
    if _task_of(model) == "classification":
        out = torch.sigmoid(out)
    return out.float().cpu()


def _validate(model: RatingModel, valid: RatingTensors, task: str, batch_size: int) -> dict[str, float]:
    if len(valid) == 0:
        return {"loss": math.nan, "rmse": math.nan, "mae": math.nan, "auc": math.nan}
    out = _outputs(model, valid, batch_size)
    pred = torch.sigmoid(out) if task == "classification" else out
    return {"loss": rating_loss(out, valid.rating, task).item(), **rating_metrics(valid.rating, pred, scale="unit")}


def fit_rating_model(model: RatingModel, data: RatingData, cfg: FitConfig, tracker: Tracker = NullTracker(),
                     init_state: dict[str, Tensor] | None = None, label: str = "") -> FitResult:
    """Train ``model`` on ``data.train``, select the epoch on ``data.valid``; see the module docstring.
    ``label`` tells this fit apart from the step's others in the log and the progress bar."""
    if len(data.train) == 0:
        raise ValueError("data.train has no rows: nothing to train on")
    task = _task_of(model)
    if task != cfg.task:
        raise ValueError(f"the model was built for task {task!r} but FitConfig.task is {cfg.task!r}")
    device = torch.device(cfg.device)
    model.to(device)
    train, valid = tensors_to(data.train, device), tensors_to(data.valid, device)
    if len(valid) == 0:
        log.warning("data.valid is empty: no early stopping, the last epoch is kept")
    eval_bs = max(cfg.batch_size, 4096)
    name = f"{type(model).__name__} ({label})" if label else type(model).__name__

    with seeded(cfg.seed, device):
        model.prepare(train)
        if init_state is not None:
            model.load_state_dict(init_state)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if params else None
        epochs = cfg.epochs if opt is not None else 0
        gen = torch.Generator().manual_seed(cfg.seed)

        v = _validate(model, valid, task, eval_bs)
        history = [{"epoch": 0, "train_loss": math.nan, **{f"valid_{k}": x for k, x in v.items()}, "seconds": 0.0}]
        best_epoch, best_v = 0, v
        best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        stopped_early = False
        bar = tqdm(range(1, epochs + 1), desc=f"fit {name}", disable=not cfg.progress, leave=False)
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            loss_sum = torch.zeros((), device=device)
            for batch in make_loader(train, cfg.batch_size, shuffle=True, generator=gen):
                loss = rating_loss(model(batch), batch.rating, task)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(batch)
            seconds = time.perf_counter() - t0
            v = _validate(model, valid, task, eval_bs)
            row = {"epoch": epoch, "train_loss": loss_sum.item() / len(train),
                   **{f"valid_{k}": x for k, x in v.items()}, "seconds": seconds,
                   "samples_per_s": len(train) / max(seconds, 1e-9)}
            history.append(row)
            tracker.log_metrics({k: x for k, x in row.items() if k != "epoch" and math.isfinite(x)}, step=epoch)
            log.debug("%s epoch %d: train_loss %.4f valid_loss %.4f valid_rmse %.4f (unit) %.1fs",
                     name, epoch, row["train_loss"], v["loss"], v["rmse"], seconds)
            bar.set_postfix(train=f"{row['train_loss']:.4f}", valid=f"{v['loss']:.4f}")
            if len(valid) == 0 or v["loss"] < best_v["loss"]:
                best_epoch, best_v = epoch, v
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            elif epoch - best_epoch >= cfg.patience:
                stopped_early = True
                break
        bar.close()

    log.info("%s: best epoch %d of %d%s, valid_rmse %.4f (unit)", name, best_epoch, len(history) - 1,
             f" (stopped: {cfg.patience} epochs without a better validation loss)" if stopped_early else "",
             best_v["rmse"])
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model=model, best_epoch=best_epoch, history=history, valid=best_v, stopped_early=stopped_early)
