"""Calibration images: a folder of user images (recursive, any Pillow format), or the offline demo set.

The set is described by a digest of its files and preprocessing, computed without decoding, so a cached
calibration can be reused without touching the images at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from deploy.errors import BadInput
from deploy.harness.checks import check_int
from deploy.precision.cache import is_cache_file
from deploy.preprocessing import Preprocessing, image_files, is_readable_image, preprocess_batch, preprocess_files
from deploy.samples import DEMO_CALIBRATION_PHOTOS, SampleSet, digits_split, sample_photos

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("calibration")
DEFAULT_COUNT = 500
RECOMMENDED_MINIMUM = 300
SAMPLE_SEED = 0


@dataclass(frozen=True)
class CalibrationConfig:
    directory: Path = DEFAULT_DIR
    count: int = DEFAULT_COUNT
    explicit: bool = False  # the user named the folder: an empty or unreadable one is an error, not a fallback

    def __post_init__(self) -> None:
        check_int("--calib-count", self.count, low=1, example=DEFAULT_COUNT)


@dataclass(frozen=True)
class CalibrationSet:
    """What will calibrate; `arrays()` decodes and preprocesses only when a calibration pass really runs."""

    source: str
    demo: bool
    requested: int
    count: int
    skipped: int
    digest: str
    warnings: tuple[str, ...]
    _loader: Callable[[], np.ndarray] = field(repr=False, compare=False)

    def arrays(self) -> np.ndarray:
        return self._loader()


@dataclass(frozen=True)
class Int8Source:
    """What both INT8 recipes (TensorRT Q/DQ and CPU U8S8) take: the model, its calibration data, the cache."""

    onnx: Path
    model_name: str
    onnx_sha256: str
    input_name: str
    input_chw: tuple[int, int, int]
    static_batch: int | None
    calibration: CalibrationSet
    cache_dir: Path
    recalibrate: bool


def check_calibration(config: CalibrationConfig) -> None:
    """Refuse a calibration folder that cannot work, before anything is exported, calibrated or written.

    A named folder (--calib-dir) must be a folder holding at least one readable image; the default folder may be
    missing (the demo set steps in) but not a file, since it also holds the calibration caches.
    """
    folder = config.directory
    if config.explicit:
        if not folder.exists():
            raise BadInput(
                f"calibration folder {folder} does not exist",
                hint="pass --calib-dir with an existing folder of representative images",
            )
        if not folder.is_dir():
            raise BadInput(
                f"calibration path {folder} is a file, not a folder",
                hint="pass --calib-dir with the folder that holds the images",
            )
        if not _has_image(folder):
            raise BadInput(
                f"calibration folder {folder} holds no readable images",
                hint="add representative images (any format Pillow reads), or omit --calib-dir for the demo set",
            )
    elif folder.exists() and not folder.is_dir():
        raise BadInput(
            f"the default calibration folder {folder} is a file, not a folder (it holds the images and the caches)",
            hint=f"move the file {folder} away, or pass --calib-dir with a folder of representative images",
        )


def _has_image(folder: Path) -> bool:
    """Whether any file below `folder` is a readable image; stops at the first (image_files verifies them all)."""
    try:
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith(".") and is_readable_image(path):
                return True
    except OSError as exc:
        raise BadInput(f"calibration folder {folder} cannot be read ({exc})", hint="check its permissions") from exc
    return False


def calibration_set(prep: Preprocessing, sample_set: SampleSet, config: CalibrationConfig) -> CalibrationSet:
    check_calibration(config)
    folder = config.directory
    files, skipped = image_files(folder) if folder.is_dir() else ([], 0)
    if skipped:  # the caches this folder holds (written at its top level) are not stray files
        skipped -= sum(1 for path in folder.glob("*.int8-*") if is_cache_file(path))
    if not files:
        if config.explicit:  # the folder changed since check_calibration
            raise BadInput(
                f"calibration folder {folder} holds no readable images ({skipped} other files)",
                hint="add representative images (any format Pillow reads), or omit --calib-dir for the demo set",
            )
        return _demo_set(prep, sample_set, config)

    chosen = stratified_sample(folder, files, config.count)
    warnings = []
    if len(chosen) < config.count:
        warnings.append(f"calibration folder {folder} has {len(files)} images, fewer than the {config.count} asked")
    if len(chosen) < RECOMMENDED_MINIMUM:
        warnings.append(
            f"calibrating on {len(chosen)} images; {RECOMMENDED_MINIMUM}+ representative images are recommended"
        )
    if skipped:
        warnings.append(f"skipped {skipped} files in {folder} that are not readable images")
    digest = _digest([(str(p.relative_to(folder)), _file_hash(p)) for p in chosen], prep)

    def load() -> np.ndarray:
        return preprocess_files(chosen, prep)

    return CalibrationSet(str(folder), False, config.count, len(chosen), skipped, digest, tuple(warnings), load)


def stratified_sample(folder: Path, files: list[Path], count: int, *, seed: int = SAMPLE_SEED) -> list[Path]:
    """`count` files spread evenly over the top-level subfolders (classes) of `folder`, seeded, in a stable order.

    The first N in sorted order would cover only the first few classes of an ImageNet-style tree (500 images ≈ ten
    classes); here each class gives one image per round, in a seeded shuffle, until `count` are chosen. The
    classes are visited in a seeded shuffle too, so with more classes than images (ImageNet: 1000 classes, 500
    images) the classes that get one are drawn at random, not the first ones alphabetically.
    """
    if len(files) <= count:
        return list(files)
    groups: dict[str, list[Path]] = {}
    for path in sorted(files):
        parts = path.relative_to(folder).parts
        groups.setdefault(parts[0] if len(parts) > 1 else "", []).append(path)
    rng = random.Random(seed)
    queues = []
    for name in sorted(groups):
        members = groups[name]
        rng.shuffle(members)
        queues.append(members)
    rng.shuffle(queues)
    chosen: list[Path] = []
    for round_index in range(max(len(q) for q in queues)):
        chosen.extend(q[round_index] for q in queues if round_index < len(q))
        if len(chosen) >= count:
            break
    return chosen[:count]


def _demo_set(prep: Preprocessing, sample_set: SampleSet, config: CalibrationConfig) -> CalibrationSet:
    if sample_set == "digits":
        train = digits_split().train[: config.count]
        source, images = "demo: sklearn digits (training split)", [s.image for s in train]
        names = [s.name for s in train]
    else:
        photos = sample_photos(DEMO_CALIBRATION_PHOTOS)
        source, images = "demo: scikit-image photos (with mirror images)", [s.image for s in photos]
        images += [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in images]
        names = [s.name for s in photos] + [f"{s.name}:mirrored" for s in photos]
        images, names = images[: config.count], names[: config.count]
    warning = (
        f"no calibration images in the folder {config.directory}/: using the offline demo set ({source}, {len(images)} "
        "images). It demonstrates the flow; calibrate on your own data for production accuracy."
    )
    digest = _digest([(name, "") for name in names], prep)

    def load() -> np.ndarray:
        return preprocess_batch(images, prep)

    return CalibrationSet(source, True, config.count, len(images), 0, digest, (warning,), load)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(entries: list[tuple[str, str]], prep: Preprocessing) -> str:
    payload = json.dumps({"files": entries, "preprocessing": prep.to_dict()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
