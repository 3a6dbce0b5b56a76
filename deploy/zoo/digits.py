"""LeNet-5 trained on scikit-learn's handwritten digits: real weights with a real held-out accuracy, offline.

Deterministic (fixed seed, fixed stratified split), a few seconds on two CPU cores; used as ground truth for
accuracy checks because no ImageNet weights or labelled photos can be downloaded here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deploy.harness.images import Preprocessing, preprocess_batch
from deploy.samples import Sample, sample_digits

SPLIT_SEED = 0
TRAIN_SEED = 0
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class DigitsSplit:
    train: list[Sample]
    test: list[Sample]


@dataclass(frozen=True)
class TrainedDigits:
    state_dict: dict[str, torch.Tensor]
    test_accuracy: float
    epochs: int


def digits_split() -> DigitsSplit:
    """The fixed stratified 75/25 split every accuracy number in this project refers to."""
    from sklearn.model_selection import train_test_split

    samples = sample_digits()
    labels = [sample.label for sample in samples]
    train, test = train_test_split(
        samples, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    return DigitsSplit(train=list(train), test=list(test))


def digits_arrays(samples: list[Sample], prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    images = preprocess_batch([sample.image for sample in samples], prep)
    labels = np.asarray([sample.label for sample in samples], dtype=np.int64)
    return images, labels


def train_lenet5(module: nn.Module, prep: Preprocessing, *, epochs: int = 15, batch_size: int = 32) -> TrainedDigits:
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
