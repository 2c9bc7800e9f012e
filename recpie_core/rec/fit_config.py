"""``FitConfig``: how ``fit.fit_rating_model`` trains.

Apart from the loop in ``fit.py`` so that profiles, the code location and a data step
read it without importing torch."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

TASKS = ("regression", "classification")
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|hpu|npu|mtia|xla|meta)(:\d+)?")  # torch's device types, torch-free


@dataclass(frozen=True)
class FitConfig:
    lr: float = 0.01  # Adam learning rate (the paper's 0.01)
    batch_size: int = 256  # training rows per step (the paper's 256)
    epochs: int = 10  # most epochs (the paper's 10); 0 = prepare and validate only
    patience: int = 3  # epochs without a lower validation loss before stopping
    weight_decay: float = 0.0  # Adam's L2 penalty on all trainable parameters
    seed: int = 0  # shuffling order and dropout masks (model init is seeded where it is built)
    device: str = "cpu"  # torch device for training and validation, e.g. "cuda"
    task: str = "regression"  # "regression": MSE on the unit scale | "classification": BCE on rating >= 4
    progress: bool = True  # show a tqdm bar over epochs

    def __post_init__(self):
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.epochs < 0:
            raise ValueError(f"epochs cannot be negative (got {self.epochs}); use 0 to only prepare and validate")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1 epoch, got {self.patience}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay cannot be negative, got {self.weight_decay}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if not _DEVICE.fullmatch(self.device):
            raise ValueError(f"device {self.device!r} is not a torch device (cpu, cuda, cuda:1, mps, xpu, ...)")
