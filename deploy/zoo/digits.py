"""Networks trained on scikit-learn's handwritten digits: real weights with a real held-out accuracy, offline.

LeNet-5 in its own gray 32×32, and one network of the residual, concatenating and dense families with a
10-class head on the digits converted to RGB at a small input size: the ground truth that shows an
FP16 or INT8 regression in a residual or concatenating network, where random weights only show ties. Deterministic
(fixed seeds, fixed stratified split, fixed order), trained once per recipe and then read from the cache.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from deploy.listing import deploy_cache_dir
from deploy.preprocessing import Preprocessing, preprocess_batch
from deploy.samples import DIGITS_SPLIT_SEED, Sample, digits_split
from deploy.zoo.classic_specs import DIGITS_MEAN, DIGITS_STD

TRAIN_SEED = 0
EPOCHS = 15  # LeNet-5's; the families' are in their recipes
DIGIT_LABELS = tuple(str(digit) for digit in range(10))


@dataclass(frozen=True)
class DigitsRecipe:
    """How one architecture learns the digits. The cache file is named after every field, so a changed recipe
    trains anew instead of reading weights another recipe made."""

    model: str
    size: int  # input side (resize = crop: the digits are whole images)
    epochs: int
    lr: float
    batch: int = 32
    shift: int = 0  # random translation by up to this many pixels per batch (augmentation)
    one_cycle: bool = False  # OneCycle learning rate (Adam's lr as its peak) instead of a constant lr
    version: int = 1

    @property
    def name(self) -> str:
        if self.model == "lenet5":  # the name the first recipe was cached under
            return f"lenet5-digits-split{DIGITS_SPLIT_SEED}-seed{TRAIN_SEED}-e{self.epochs}-v{self.version}"
        schedule = "-onecycle" if self.one_cycle else ""
        return (
            f"{self.model}-digits-split{DIGITS_SPLIT_SEED}-seed{TRAIN_SEED}-s{self.size}-e{self.epochs}"
            f"-lr{self.lr:g}-b{self.batch}-shift{self.shift}{schedule}-v{self.version}"
        )

    def preprocessing(self, color: Literal["RGB", "L"]) -> Preprocessing:
        """The digits' own normalisation, repeated per channel for an RGB network (the gray digit, as RGB)."""
        channels = 3 if color == "RGB" else 1
        return Preprocessing(self.size, self.size, DIGITS_MEAN * channels, DIGITS_STD * channels, "bilinear", color)


# Measured on a 2-core AMD EPYC (Zen 3), batch 32, Adam with OneCycle peaking at 3e-3, ±2 px shifts, 4 epochs:
# resnet18 ~16 s/epoch → 98.9% held-out, googlenet ~11 s/epoch → 97.8%, densenet121 ~20 s/epoch → 99.3%. 32×32 is
# the smallest side at which every family's downsampling ends at 1×1; the digits are 8×8, so nothing is lost.
# vgg11_bn's classifier is 25088→4096→4096 whatever the input (adaptive pooling to 7×7): 129M parameters, a 515 MB
# cache, ~130 s/epoch here. Adam moves each of those 25088-wide sums by about lr per weight per step, so it needs a
# rate 30× lower: at 3e-4 with shifts, batch 32 it reached 31% in 4 epochs, at 2e-3 86.7% in 5; at 1e-4, batch 64,
# no shifts 97.6% in 3 epochs (163 s alone, 397 s beside other jobs; 3.8 GB peak). Its `pytest -m trained` share
# (train, export, build fp16/int8/int8-cpu, verify) was 9.5 min, every precision at 97.56%.
RECIPES: dict[str, DigitsRecipe] = {
    recipe.model: recipe
    for recipe in (
        DigitsRecipe("lenet5", size=32, epochs=EPOCHS, lr=2e-3),
        DigitsRecipe("resnet18", size=32, epochs=4, lr=3e-3, shift=2, one_cycle=True),
        DigitsRecipe("googlenet", size=32, epochs=4, lr=3e-3, shift=2, one_cycle=True),
        DigitsRecipe("densenet121", size=32, epochs=4, lr=3e-3, shift=2, one_cycle=True),
        DigitsRecipe("vgg11_bn", size=32, epochs=3, lr=1e-4, batch=64, one_cycle=True),
    )
}
RECIPE = RECIPES["lenet5"].name
# How a damaged or foreign cache file fails to load (a garbage file raises UnpicklingError, a truncated one
# RuntimeError, a pickle of something else TypeError/KeyError/AttributeError): each is retrained and replaced.
_DAMAGED = (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, AttributeError, pickle.UnpicklingError)


@dataclass(frozen=True)
class TrainedDigits:
    state_dict: dict[str, torch.Tensor]
    test_accuracy: float
    epochs: int
    cache: Path | None = None
    seconds: float | None = None  # training time (as recorded in the cache; None for caches made before it was)


def cache_dir() -> Path:
    """Where deploy keeps weights it made itself (the one rule `deploy list` also reads, without torch)."""
    return deploy_cache_dir()


def cache_path(recipe: DigitsRecipe) -> Path:
    return cache_dir() / f"{recipe.name}.pt"


def digits_arrays(samples: list[Sample], prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    images = preprocess_batch([sample.image for sample in samples], prep)
    labels = np.asarray([sample.label for sample in samples], dtype=np.int64)
    return images, labels


def load_or_train_digits(module: nn.Module, prep: Preprocessing, recipe: DigitsRecipe | None = None) -> TrainedDigits:
    """The cached result of training `module` by `recipe` (LeNet-5's by default), training (and caching
    atomically) on first use."""
    from deploy.files import Staging

    recipe = recipe or RECIPES["lenet5"]
    path = cache_path(recipe)
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            seconds = saved.get("seconds")
            return TrainedDigits(
                saved["state_dict"],
                float(saved["test_accuracy"]),
                int(saved["epochs"]),
                path,
                None if seconds is None else float(seconds),
            )
        except _DAMAGED:
            pass  # a damaged cache entry is simply retrained and replaced
    trained = train_on_digits(module, prep, recipe)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with Staging() as staging:
            payload = {
                "state_dict": trained.state_dict,
                "test_accuracy": trained.test_accuracy,
                "epochs": recipe.epochs,
                "seconds": trained.seconds,
            }
            torch.save(payload, staging.path_for(path))
            staging.commit()
    except OSError:
        return trained  # an unwritable cache costs a retrain next time, nothing more
    return TrainedDigits(trained.state_dict, trained.test_accuracy, trained.epochs, path, trained.seconds)


def train_lenet5(
    module: nn.Module, prep: Preprocessing, *, epochs: int = EPOCHS, batch_size: int = 32
) -> TrainedDigits:
    recipe = DigitsRecipe("lenet5", size=prep.crop_size, epochs=epochs, lr=2e-3, batch=batch_size)
    return train_on_digits(module, prep, recipe)


def train_on_digits(module: nn.Module, prep: Preprocessing, recipe: DigitsRecipe) -> TrainedDigits:
    """Train `module` from its current parameters on the digits' training split; accuracy on the test split."""
    import time

    split = digits_split()
    x_train, y_train = (torch.from_numpy(a) for a in digits_arrays(split.train, prep))
    x_test, y_test = (torch.from_numpy(a) for a in digits_arrays(split.test, prep))
    generator = torch.Generator().manual_seed(TRAIN_SEED)
    optimizer = torch.optim.Adam(module.parameters(), lr=recipe.lr)
    steps_per_epoch = -(-len(x_train) // recipe.batch)
    schedule = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.25
        )
        if recipe.one_cycle
        else None
    )
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    module.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), recipe.batch):
            index = order[start : start + recipe.batch]
            if len(index) < 2 and recipe.one_cycle:
                continue  # BatchNorm cannot train on a batch of one
            batch = x_train[index]
            if recipe.shift:
                dy, dx = (int(v) for v in torch.randint(-recipe.shift, recipe.shift + 1, (2,), generator=generator))
                batch = torch.roll(batch, shifts=(dy, dx), dims=(2, 3))
            optimizer.zero_grad()
            loss_fn(module(batch), y_train[index]).backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    seconds = time.perf_counter() - started
    module.eval()
    with torch.inference_mode():
        scores = torch.cat([module(x_test[i : i + 128]) for i in range(0, len(x_test), 128)])
    accuracy = float((scores.argmax(dim=1) == y_test).float().mean())
    state = {key: value.detach().clone() for key, value in module.state_dict().items()}
    return TrainedDigits(state_dict=state, test_accuracy=accuracy, epochs=recipe.epochs, seconds=seconds)
