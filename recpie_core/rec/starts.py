"""How a recommender that reads explanations starts from the recommender before it.

Algorithm 1 trains round k's recommender on round k's explanations; it does not say from where.
Continuing the previous round's model (``warm``) is the obvious reading, and on the eval world
it is the one that fails: the model arrives at its validation optimum, the explanation
projections arrive with random weights (round 0 never gave them a gradient), and the first
epoch that lets the projections learn also lets the ids overfit, so every text-reading fit kept
epoch 0 or 1 and read nothing. The starts (``loop_config.REC_STARTS``):

- ``warm``: train all of it from the previous state;
- ``scratch``: a fresh model, ids and text learned together (as every baseline is fit);
- ``probe``: the previous state, only ``explanation_parameters()`` trained: a linear probe of
  the text on top of the frozen recommender (epoch 0 is the previous model, so it never ends
  worse on validation);
- ``probe_finetune``: the probe, then all of it at ``FINETUNE_LR_SCALE`` times the rate (LP-FT:
  Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
  Out-of-Distribution", ICLR 2022).

Which one reads a text best depends on the text (bench/reports/rec_starts.md), so ``rec_step``
fits the ones the profile lists and keeps the lowest validation RMSE: chosen on validation rows,
as every other choice here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from torch import Tensor, nn

from recpie_core.data.batches import RatingData
from recpie_core.loop_config import REC_STARTS
from recpie_core.rec.fit import FitConfig, FitResult, fit_rating_model
from recpie_core.rec.recpie_dnn import RecPIEDNN
from recpie_core.tracking import NullTracker, PrefixTracker, Tracker

FINETUNE_LR_SCALE = 0.1  # probe_finetune's second stage: the probe's rate times this (LP-FT fine-tunes gently)


@contextmanager
def only_trainable(model: nn.Module, params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Within the block only ``params`` of ``model`` require gradients; as they were after it."""
    keep = {id(p) for p in params}
    before = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in before:
        p.requires_grad_(id(p) in keep)
    try:
        yield
    finally:
        for p, flag in before:
            p.requires_grad_(flag)


def _then(first: FitResult, second: FitResult) -> FitResult:
    """``second`` (started from ``first``'s best state) as the continuation of ``first``: one history,
    epochs counted on; ``second``'s epoch 0 is ``first``'s best state, so it is not repeated."""
    offset = len(first.history) - 1
    history = first.history + [{**row, "epoch": row["epoch"] + offset} for row in second.history[1:]]
    best = first.best_epoch if second.best_epoch == 0 else second.best_epoch + offset
    return replace(second, best_epoch=best, history=history)


def fit_from(model: RecPIEDNN, data: RatingData, cfg: FitConfig, start: str, init: dict[str, Tensor] | None,
             tracker: Tracker = NullTracker(), label: str = "", probe: FitResult | None = None) -> FitResult:
    """Fit ``model`` (freshly built) on ``data`` as ``start`` says, from the state ``init`` (none: scratch);
    ``label`` names the fit in the log (``fit_rating_model``), the start added to it. ``probe``: this
    seed's ``probe`` fit when it was already made, which ``probe_finetune`` continues instead of fitting
    the same probe again (it is left as it is: the fine-tune trains ``model`` from its best state)."""
    if start not in REC_STARTS:
        raise ValueError(f"unknown start {start!r}; known: {', '.join(REC_STARTS)}")
    if start == "scratch" or init is None:
        return fit_rating_model(model, data, cfg, tracker, label=f"{label} scratch".strip())
    if start == "warm":
        return fit_rating_model(model, data, cfg, tracker, init_state=init, label=f"{label} warm".strip())
    if probe is None or start == "probe":
        with only_trainable(model, model.explanation_parameters()):
            probe = fit_rating_model(model, data, cfg, tracker, init_state=init, label=f"{label} probe".strip())
        if start == "probe":
            return probe
    state = {k: t.detach().clone() for k, t in probe.model.state_dict().items()}
    tuned = fit_rating_model(model, data, replace(cfg, lr=cfg.lr * FINETUNE_LR_SCALE),
                             PrefixTracker(tracker, "finetune/"), init_state=state,
                             label=f"{label} probe_finetune".strip())
    return _then(probe, tuned)
