"""Top-k classification through a deployed artifact, with the sidecar's preprocessing and labels.

`Predictor` is the one code path: `classify()` (a list of files), `deploy infer` (files, folders and globs,
streamed in batches: `infer_images`) and the Python API all run their images through it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeAlias

import numpy as np
from PIL import Image

from deploy.backends.base import Runner, TensorMeta
from deploy.errors import BadInput
from deploy.harness.checks import MAX_BATCH, check_int, missing_artifact_hint
from deploy.harness.image_selection import Found, check_named, looks_like_image, select_images
from deploy.preprocessing import (
    Preprocessing,
    is_readable_image,
    load_image,
    preprocess,
)
from deploy.sidecar import BatchRange, Sidecar, load_sidecar, sidecar_path
from deploy.targets import check_runnable, runner_for

log = logging.getLogger(__name__)

# Brought into the artifact's batch range. LeNet-5 on 2 CPU cores, 1,000 digit PNGs decoded and run: batch 1
# 1,464 img/s, 8 2,070, 32 2,119; past 8, decoding dominates and a larger batch only holds more memory.
DEFAULT_BATCH = 8


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
class Skipped:
    """A found image that could not be decoded, and why."""

    image: str
    reason: str


@dataclass(frozen=True)
class InferSummary:
    """What a streamed run did: how many images it classified and skipped, and how fast."""

    artifact: str
    model: str
    backend: str
    preprocessing_from: Literal["sidecar", "zoo"]
    batch: int
    images: int
    skipped: int  # found images that failed to decode (each reported through on_skip)
    not_images: int  # found files that are not images Pillow reads
    seconds: float  # decoding, inference and emitting rows; the session load is not counted

    json_derived = ("images_per_second",)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


# A path names an image file; a PIL image or an HxWxC / HxW uint8 array is an RGB (or gray) picture to
# preprocess; a floating array shaped like the model's input (C, H, W) is taken as already preprocessed. A 4-D
# array is a stack of either kind (N first).
ImageInput: TypeAlias = str | os.PathLike[str] | Image.Image | np.ndarray | Found
Images: TypeAlias = ImageInput | Iterable[ImageInput]
OnSkip = Callable[[Skipped], None]


@dataclass(frozen=True)
class _Contract:
    model: str
    input_name: str
    preprocessing: Preprocessing
    labels: tuple[str, ...] | None
    origin: Literal["sidecar", "zoo"]
    sidecar: Sidecar | None = None


@dataclass
class _Tally:
    images: int = 0
    skipped: int = 0
    not_images: int = 0


class Predictor:
    """A deployed classifier, ready to run images: its sidecar's preprocessing and labels, batched inference.

    Construction checks the artifact (sidecar, kind, that it can run here) without loading it; the runtime session
    opens at the first prediction (or `open()`) and stays open until `close()` or the end of a `with` block.
    """

    def __init__(
        self, artifact: str | os.PathLike[str], *, model: str | None = None, threads: int | None = None
    ) -> None:
        self.artifact = Path(artifact)
        self._contract = _contract(self.artifact, model)
        self._target = check_runnable(self.artifact)  # a plan without TensorRT or a GPU: refused before any work
        self._threads = threads
        self._runner: Runner | None = None
        self._batch_range = None if self._contract.sidecar is None else self._contract.sidecar.batch

    # --- what the artifact is -------------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._contract.model

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class names by output index, from the sidecar (or the zoo without one); None when unnamed."""
        return self._contract.labels

    @property
    def preprocessing(self) -> Preprocessing:
        return self._contract.preprocessing

    @property
    def preprocessing_from(self) -> Literal["sidecar", "zoo"]:
        return self._contract.origin

    @property
    def backend(self) -> str:
        return self._target.name if self._runner is None else self._runner.name

    @property
    def batch_range(self) -> BatchRange:
        """The batch sizes the artifact takes: its sidecar's record, or (without one) its input's first dimension
        once the session is open."""
        return self._batch_range or self.open()._batch_range or BatchRange(dynamic=True, min=1, max=MAX_BATCH)

    def batch_size(self, requested: int | None = None) -> int:
        """`requested` checked against the batch range; None: DEFAULT_BATCH brought into it (a static batch)."""
        batches = self.batch_range
        if requested is None:
            return max(batches.min, min(DEFAULT_BATCH, batches.max))
        check_int("--batch", requested, low=1, example=DEFAULT_BATCH)
        if batches.min <= requested <= batches.max:
            return requested
        if not batches.dynamic:
            raise BadInput(
                f"--batch {requested}: {self.artifact} was exported with a static batch of {batches.max}",
                hint=f"pass --batch {batches.max}, or leave --batch out (a last partial batch is padded)",
            )
        raise BadInput(
            f"--batch {requested} is outside {self.artifact}'s batch range {batches.min}..{batches.max}",
            hint=f"pass --batch {min(max(requested, batches.min), batches.max)}, or re-export with "
            "`deploy export MODEL --max-batch N` for larger batches",
        )

    # --- the session ----------------------------------------------------------------------------------------

    def open(self) -> Predictor:
        """Load the runtime session now (otherwise the first prediction does), and check that it classifies."""
        if self._runner is not None:
            return self
        contract = self._contract
        runner = runner_for(self.artifact, threads=self._threads, sidecar=contract.sidecar)
        if contract.sidecar is None:
            prep = contract.preprocessing
            shape = ("batch", prep.channels, prep.crop_size, prep.crop_size)
            wanted = TensorMeta(contract.input_name, shape, "float32")
            runner.expecting([wanted], artifact=str(self.artifact), source=f"--model {contract.model}")
        with_runner = runner.__enter__()
        try:
            scores = with_runner.outputs[0]
            if len(scores.shape) != 2:
                raise BadInput(
                    f"{contract.model} outputs {list(scores.shape[1:])} feature maps, not class scores",
                    hint="`deploy infer` and `deploy.load` label class scores only; run the file on ONNX Runtime "
                    "directly for its feature maps",
                )
            width = scores.shape[1]
            if contract.labels is not None and isinstance(width, int) and width != len(contract.labels):
                raise BadInput(
                    f"{self.artifact} outputs {width} class scores, and --model {contract.model} names "
                    f"{len(contract.labels)} classes: its labels would name the wrong classes",
                    hint=f"give the file its own sidecar: `deploy import {self.artifact} --labels FILE` "
                    "(with its --input-size/--mean/--std)",
                )
            if self._batch_range is None:
                first = next(m.shape[0] for m in with_runner.inputs if m.name == contract.input_name)
                fixed = isinstance(first, int) and first > 0
                self._batch_range = (
                    BatchRange(dynamic=False, min=int(first), max=int(first))
                    if fixed
                    else BatchRange(dynamic=True, min=1, max=MAX_BATCH)
                )
        except BaseException:
            runner.__exit__(None, None, None)
            raise
        self._runner = with_runner
        return self

    def close(self) -> None:
        """Free the runtime session (a later prediction opens it again)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.__exit__(None, None, None)

    def __enter__(self) -> Predictor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- predictions ----------------------------------------------------------------------------------------

    def predict(self, images: Images, *, top_k: int = 5, batch: int | None = None) -> list[Classification]:
        """Top-k labels with softmax probabilities for each image, in order (see `ImageInput` for what an image
        may be). batch None: DEFAULT_BATCH within the artifact's range; a static batch pads its last run."""
        return list(self.iter_predict(images, top_k=top_k, batch=batch))

    def iter_predict(
        self, images: Images, *, top_k: int = 5, batch: int | None = None, on_skip: OnSkip | None = None
    ) -> Iterator[Classification]:
        """`predict`, one batch decoded at a time: memory stays flat however many images `images` yields."""
        for rows in self._batches(images, top_k=top_k, batch=batch, on_skip=on_skip, tally=_Tally()):
            yield from rows

    def run(
        self,
        images: Images,
        *,
        emit: Callable[[list[Classification]], None],
        top_k: int = 5,
        batch: int | None = None,
        on_skip: OnSkip | None = None,
    ) -> InferSummary:
        """Stream `images` through the model, handing each batch's rows to `emit` as soon as they exist (nothing
        is kept), and return the counts and the throughput."""
        check_top(top_k)
        tally = _Tally()
        size = self.batch_size(batch)
        rows = self._batches(images, top_k=top_k, batch=size, on_skip=on_skip, tally=tally)
        self.open()  # loading the session is not part of the throughput
        start = time.perf_counter()
        for batch_rows in rows:
            emit(batch_rows)
        seconds = time.perf_counter() - start
        return InferSummary(
            str(self.artifact),
            self.model,
            self.backend,
            self.preprocessing_from,
            size,
            tally.images,
            tally.skipped,
            tally.not_images,
            seconds,
        )

    def _batches(
        self, images: Images, *, top_k: int, batch: int | None, on_skip: OnSkip | None, tally: _Tally
    ) -> Iterator[list[Classification]]:
        check_top(top_k)
        size = self.batch_size(batch)
        self.open()
        pending: list[tuple[str, np.ndarray]] = []
        for name, tensor in self._tensors(images, on_skip or _log_skip, tally):
            pending.append((name, tensor))
            if len(pending) == size:
                yield self._infer(pending, top_k)
                pending = []  # drop the batch's tensors: nothing per image outlives its batch
        if pending:
            yield self._infer(pending, top_k)

    def _tensors(self, images: Images, on_skip: OnSkip, tally: _Tally) -> Iterator[tuple[str, np.ndarray]]:
        prep = self._contract.preprocessing
        for index, item in enumerate(_each(images)):
            if isinstance(item, Found):
                if not looks_like_image(item.path) and not is_readable_image(item.path):
                    tally.not_images += 1  # notes.txt, .DS_Store-like files: passed over, counted
                    continue
                try:
                    tensor = preprocess(load_image(item.path), prep)
                except BadInput as exc:
                    tally.skipped += 1
                    on_skip(Skipped(str(item.path), exc.message))
                    continue
                tally.images += 1
                yield str(item.path), tensor
            elif isinstance(item, np.ndarray) and item.ndim == 4:
                for row, array in enumerate(item):
                    tally.images += 1
                    yield f"<array {index}[{row}]>", self._array(array, f"array {index}[{row}]")
            elif isinstance(item, np.ndarray):
                tally.images += 1
                yield f"<array {index}>", self._array(item, f"array {index}")
            elif isinstance(item, Image.Image):
                tally.images += 1
                yield str(item.info.get("deploy.source", f"<image {index}>")), preprocess(item, prep)
            elif isinstance(item, str | os.PathLike):
                tally.images += 1
                yield os.fspath(item), preprocess(load_image(Path(item)), prep)
            else:
                raise BadInput(
                    f"image {index} is a {type(item).__name__}, not an image",
                    hint="pass file paths, PIL images or numpy arrays (HxWx3 uint8, or preprocessed float32 CxHxW)",
                )

    def _array(self, array: np.ndarray, name: str) -> np.ndarray:
        prep = self._contract.preprocessing
        expected = (prep.channels, prep.crop_size, prep.crop_size)
        if array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
            pixels = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
            return preprocess(Image.fromarray(np.ascontiguousarray(pixels)), prep)
        if np.issubdtype(array.dtype, np.floating) and array.shape == expected:
            if not np.isfinite(array).all():
                raise BadInput(f"{name} holds NaN or infinite values", hint="pass the preprocessed values themselves")
            return np.ascontiguousarray(array, dtype=np.float32)
        raise BadInput(
            f"{name} is a {array.dtype} array of shape {list(array.shape)}: expected an HxWx3 (or HxW) uint8 "
            f"image, or a float array {list(expected)} already preprocessed for {self.model}",
            hint="convert a picture with np.asarray(image, dtype=np.uint8), or pass its file or PIL image",
        )

    def _infer(self, pending: list[tuple[str, np.ndarray]], top_k: int) -> list[Classification]:
        runner = self.open()._runner
        assert runner is not None  # open() sets it
        count = len(pending)
        stacked = np.stack([tensor for _, tensor in pending])
        rows = max(count, self.batch_range.min)
        if rows > count:  # a static batch: pad the last run with zeros and drop what they produce
            stacked = np.concatenate([stacked, np.zeros((rows - count, *stacked.shape[1:]), dtype=stacked.dtype)])
        scores = runner.infer({self._contract.input_name: stacked})[runner.outputs[0].name]
        if scores.ndim != 2 or scores.shape[0] != rows:
            raise BadInput(
                f"{self.model} outputs {list(scores.shape)} for a batch of {rows}, not one row of class scores each",
                hint="`deploy infer` and `deploy.load` label class scores only; run the file on ONNX Runtime "
                "directly for its feature maps",
            )
        return [Classification(name, _top(scores[i], self.labels, top_k)) for i, (name, _) in enumerate(pending)]


# --- what the CLI and classify() run ----------------------------------------------------------------------------


def check_top(top_k: int) -> None:
    if top_k < 1:
        raise BadInput(f"--top {top_k} must be at least 1", hint="pass --top 5")


def infer_images(
    artifact: Path,
    arguments: Sequence[str | os.PathLike[str]],
    *,
    emit: Callable[[list[Classification]], None],
    model: str | None = None,
    top_k: int = 5,
    batch: int | None = None,
    on_skip: OnSkip | None = None,
) -> InferSummary:
    """`deploy infer`: every argument checked before the model loads, then batches streamed to `emit`."""
    check_top(top_k)
    with Predictor(artifact, model=model) as predictor:
        selection = select_images(arguments)
        summary = predictor.run(selection, emit=emit, top_k=top_k, batch=batch, on_skip=on_skip)
    if summary.images == 0:
        where = ", ".join(os.fspath(argument) for argument in arguments)
        raise BadInput(
            f"none of the {summary.skipped} images found in {where} could be decoded",
            hint="check the warnings above for each file's reason",
        )
    return summary


def classify(
    artifact: Path, images: Sequence[Path], *, model: str | None = None, top_k: int = 5, batch: int | None = None
) -> InferResult:
    """Every image file through `artifact`, with its top-k labels and softmax probabilities, all in memory (for a
    few images; `infer_images` streams any number)."""
    check_top(top_k)
    with Predictor(artifact, model=model) as predictor:
        if not images:
            raise BadInput("no images given", hint="pass one or more image files after the artifact")
        for path in images:
            check_named(path)
        classifications = predictor.predict(images, top_k=top_k, batch=batch)
        return InferResult(
            str(artifact), predictor.model, predictor.backend, predictor.preprocessing_from, tuple(classifications)
        )


def _each(images: Images) -> Iterable[ImageInput]:
    if isinstance(images, str | os.PathLike | Image.Image | np.ndarray | Found):
        return (images,)  # one image (a 4-D array is expanded by the caller, with names)
    return images


def _log_skip(skipped: Skipped) -> None:
    log.warning("skipped %s: %s", skipped.image, skipped.reason)


def _contract(artifact: Path, model: str | None) -> _Contract:
    if not artifact.is_file():
        raise BadInput(f"artifact {artifact} does not exist", hint=missing_artifact_hint(artifact))
    # An unknown kind of file, or one whose target cannot run here (a plan without a GPU), is refused before
    # anything is read: that is the answer, whatever its sidecar says.
    check_runnable(artifact)
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
    order = np.argsort(-probabilities, kind="stable")[: min(k, probabilities.size)]
    return tuple(
        Prediction(int(i), labels[i] if labels and i < len(labels) else f"class {i}", float(probabilities[i]))
        for i in order
    )
