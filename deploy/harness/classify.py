"""Top-k classification of image files through a deployed artifact, using the sidecar's preprocessing and labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from deploy.backends.base import TensorMeta
from deploy.errors import BadInput
from deploy.preprocessing import Preprocessing, load_image, preprocess
from deploy.sidecar import Sidecar, load_sidecar, sidecar_path
from deploy.targets import check_runnable, runner_for, target_for


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class Classification:
    image: str
    predictions: tuple[Prediction, ...]


@dataclass(frozen=True)
class InferResult:
    artifact: str
    model: str
    backend: str
    preprocessing_from: Literal["sidecar", "zoo"]
    classifications: tuple[Classification, ...]


@dataclass(frozen=True)
class _Contract:
    model: str
    input_name: str
    preprocessing: Preprocessing
    labels: tuple[str, ...] | None
    origin: Literal["sidecar", "zoo"]
    sidecar: Sidecar | None = None


def classify(artifact: Path, images: Sequence[Path], *, model: str | None = None, top_k: int = 5) -> InferResult:
    """Run every image through `artifact` (batch 1) and return its top-k labels with softmax probabilities."""
    if top_k < 1:
        raise BadInput(f"--top {top_k} must be at least 1", hint="pass --top 5")
    if not images:
        raise BadInput("no images given", hint="pass one or more image files after the artifact")
    contract = _contract(artifact, model)
    check_runnable(artifact)  # a plan without TensorRT or a GPU: refused before any image is decoded
    # Decode everything first: a bad image fails the command before any inference runs.
    tensors = [(path, preprocess(load_image(path), contract.preprocessing)) for path in images]

    classifications = []
    runner = runner_for(artifact, sidecar=contract.sidecar)
    if contract.sidecar is None:
        prep = contract.preprocessing
        wanted = TensorMeta(contract.input_name, ("batch", prep.channels, prep.crop_size, prep.crop_size), "float32")
        runner.expecting([wanted], artifact=str(artifact), source=f"--model {contract.model}")
    with runner:
        output = runner.outputs[0]
        for path, tensor in tensors:
            scores = runner.infer({contract.input_name: tensor[None]})[output.name]
            if scores.ndim != 2:
                raise BadInput(
                    f"{contract.model} outputs {scores.shape[1:]} feature maps, not class scores",
                    hint="`deploy infer` prints labels for classifiers only; use the Python API for raw outputs",
                )
            classifications.append(Classification(str(path), _top(scores[0], contract.labels, top_k)))
    return InferResult(str(artifact), contract.model, runner.name, contract.origin, tuple(classifications))


def _contract(artifact: Path, model: str | None) -> _Contract:
    if not artifact.is_file():
        raise BadInput(f"artifact {artifact} does not exist", hint="export one with `deploy export MODEL`")
    target_for(artifact)  # an unknown kind of file is refused before anything is read
    if sidecar_path(artifact).is_file() or model is None:
        sidecar = load_sidecar(artifact)
        if model is not None and model.lower() != sidecar.model:
            raise BadInput(
                f"--model {model} conflicts with {sidecar_path(artifact)}, which records {sidecar.model}",
                hint="drop --model: it only names the preprocessing of an artifact that has no sidecar",
            )
        return _Contract(
            sidecar.model, sidecar.inputs[0].name, sidecar.preprocessing, sidecar.labels, "sidecar", sidecar
        )
    from deploy.zoo import get_spec  # torch is only needed on this fallback path

    spec = get_spec(model)
    # Without a sidecar the zoo's default preprocessing is assumed; the result says so (preprocessing_from).
    return _Contract(spec.name, spec.input_name, spec.preprocessing, spec.labels, "zoo")


def _top(logits: np.ndarray, labels: tuple[str, ...] | None, k: int) -> tuple[Prediction, ...]:
    shifted = logits.astype(np.float64) - logits.max()
    probabilities = np.exp(shifted) / np.exp(shifted).sum()
    order = np.argsort(-probabilities)[: min(k, probabilities.size)]
    return tuple(
        Prediction(int(i), labels[i] if labels and i < len(labels) else f"class {i}", float(probabilities[i]))
        for i in order
    )
