"""LeNet-5 trained on scikit-learn's handwritten digits: real weights with a real held-out accuracy, offline.

Deterministic (fixed seed, fixed stratified split), a few seconds on two CPU cores; used as ground truth for
accuracy checks because no ImageNet weights or labelled photos can be downloaded here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deploy.preprocessing import Preprocessing, preprocess_batch
from deploy.samples import DIGITS_SPLIT_SEED, Sample, digits_split

TRAIN_SEED = 0
EPOCHS = 15
RECIPE = f"lenet5-digits-split{DIGITS_SPLIT_SEED}-seed{TRAIN_SEED}-e{EPOCHS}-v1"


@dataclass(frozen=True)
class TrainedDigits:
    state_dict: dict[str, torch.Tensor]
    test_accuracy: float
    epochs: int
    cache: Path | None = None


def cache_dir() -> Path:
    """Where deploy keeps weights it made itself: $DEPLOY_CACHE, else ~/.cache/deploy."""
    return Path(os.environ.get("DEPLOY_CACHE", Path.home() / ".cache" / "deploy"))


def digits_arrays(samples: list[Sample], prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    images = preprocess_batch([sample.image for sample in samples], prep)
    labels = np.asarray([sample.label for sample in samples], dtype=np.int64)
    return images, labels


def load_or_train_digits(module: nn.Module, prep: Preprocessing) -> TrainedDigits:
    """The cached result of `train_lenet5` for this recipe, training (and caching atomically) on first use."""
    from deploy.files import Staging

    path = cache_dir() / f"{RECIPE}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return TrainedDigits(saved["state_dict"], float(saved["test_accuracy"]), int(saved["epochs"]), path)
        except (OSError, RuntimeError, KeyError, TypeError, ValueError):
            pass  # a damaged cache entry is simply retrained and replaced
    trained = train_lenet5(module, prep, epochs=EPOCHS)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with Staging() as staging:
            payload = {
                "state_dict": trained.state_dict,
                "test_accuracy": trained.test_accuracy,
                "epochs": EPOCHS,
            }
            torch.save(payload, staging.path_for(path))
            staging.commit()
    except OSError:
        return trained  # an unwritable cache costs a retrain next time, nothing more
    return TrainedDigits(trained.state_dict, trained.test_accuracy, trained.epochs, path)


def train_lenet5(
    module: nn.Module, prep: Preprocessing, *, epochs: int = EPOCHS, batch_size: int = 32
) -> TrainedDigits:
    split = digits_split()
    x_train, y_train = (torch.from_numpy(a) for a in digits_arrays(split.train, prep))
    x_test, y_test = (torch.from_numpy(a) for a in digits_arrays(split.test, prep))
    generator = torch.Generator().manual_seed(TRAIN_SEED)
    optimizer = torch.optim.Adam(module.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_fn(module(x_train[index]), y_train[index]).backward()
            optimizer.step()
    module.eval()
    with torch.inference_mode():
        accuracy = float((module(x_test).argmax(dim=1) == y_test).float().mean())
    state = {key: value.detach().clone() for key, value in module.state_dict().items()}
    return TrainedDigits(state_dict=state, test_accuracy=accuracy, epochs=epochs)
