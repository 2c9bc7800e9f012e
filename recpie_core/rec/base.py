"""The surface every rating model shares, so one ``fit_rating_model`` serves them all."""

from __future__ import annotations

from torch import Tensor, nn

from recpie_core.data.batches import RatingBatch


class RatingModel(nn.Module):
    """Built as ``Model(config, n_users, n_places, n_categories)``; ``forward`` returns (B,).

    Every model keeps ``config``, ``n_users``, ``n_places`` and ``n_categories`` as
    attributes: checkpoints store them to rebuild the model through the registry.

    The output is a rating on the unit scale (r - 1) / 4 for regression, or a logit of
    P(rating >= 4) for classification; ``config.task`` says which. Models that need
    statistics of the training table (the mean baselines) override ``prepare``.
    """

    def __init__(self, config, n_users: int, n_places: int, n_categories: int):
        super().__init__()
        self.config = config
        self.n_users, self.n_places, self.n_categories = n_users, n_places, n_categories

    def forward(self, batch: RatingBatch) -> Tensor:  # (B,)
        raise NotImplementedError

    def prepare(self, train: RatingBatch) -> None:
        """Called once with the whole training table before the first epoch."""
