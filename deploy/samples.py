"""Offline sample data: real photos shipped with scikit-image and handwritten digits shipped with scikit-learn.

Used for parity checks and for BatchNorm recalibration of random weights; never for measuring accuracy of
ImageNet models (the photos carry no labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

SampleSet = Literal["photos", "digits"]
DIGITS_SPLIT_SEED = 0
# PHOTO_NAMES[:8] is the demo calibration set, PHOTO_NAMES[8:] the demo verification set: never both.
DEMO_CALIBRATION_PHOTOS = 8
DIGITS_TEST_FRACTION = 0.25
DIGITS_TOTAL = 1797  # images in scikit-learn's bundled digits set (load_digits)
DIGITS_HELD_OUT = 450  # its held-out test split: ceil(1797 * DIGITS_TEST_FRACTION), as digits_split makes it

# Photos bundled inside scikit-image's wheel (no download): animals, objects, scenes, plus gray and RGBA.
PHOTO_NAMES: tuple[str, ...] = (
    # First half: demo calibration set; second half: demo verification set. Each half mixes colour photos,
    # gray photos and textures, so calibration ranges and verification inputs come from the same kind of data.
    "chelsea",
    "astronaut",
    "rocket",
    "immunohistochemistry",
    "logo",
    "camera",
    "moon",
    "brick",
    "coffee",
    "hubble_deep_field",
    "colorwheel",
    "retina",
    "coins",
    "clock",
    "grass",
    "gravel",
)


@dataclass(frozen=True)
class Sample:
    name: str
    image: Image.Image
    label: int | None = None


def sample_photos(count: int | None = None) -> list[Sample]:
    import skimage.data

    names = PHOTO_NAMES if count is None else PHOTO_NAMES[:count]
    return [Sample(name, Image.fromarray(getattr(skimage.data, name)())) for name in names]


def sample_digits(count: int | None = None, *, offset: int = 0) -> list[Sample]:
    """sklearn's 8×8 digits as 8-bit gray PIL images (0..16 ink levels scaled to 0..255), in file order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    stop = len(digits.images) if count is None else min(offset + count, len(digits.images))
    samples = []
    for index in range(offset, stop):
        pixels = (digits.images[index] * (255.0 / 16.0)).round().astype(np.uint8)
        samples.append(Sample(f"digits[{index}]", Image.fromarray(pixels), int(digits.target[index])))
    return samples


@dataclass(frozen=True)
class DigitsSplit:
    train: list[Sample]
    test: list[Sample]


def digits_split() -> DigitsSplit:
    """The fixed stratified 75/25 split every digits accuracy number in this project refers to."""
    from sklearn.model_selection import train_test_split

    samples = sample_digits()
    labels = [sample.label for sample in samples]
    train, test = train_test_split(
        samples, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    return DigitsSplit(train=list(train), test=list(test))


def write_samples(out_dir: Path, *, photos: int = 6, digits: int = 10) -> list[Path]:
    """Save sample photos (JPEG) and held-out digits (PNG, label in the name) for trying `deploy infer`."""
    from deploy.files import Staging, ensure_writable_dir

    _check_counts(photos, digits)
    ensure_writable_dir(out_dir)
    items = [(out_dir / f"{s.name}.jpg", s.image.convert("RGB"), "JPEG") for s in sample_photos(photos)]
    for index, sample in enumerate(digits_split().test[:digits]):
        items.append((out_dir / f"digit-{sample.label}-{index:02d}.png", sample.image, "PNG"))
    with Staging() as staging:
        for path, image, fmt in items:
            image.save(staging.path_for(path), format=fmt)
        staging.commit()
    return [path for path, _, _ in items]


def _check_counts(photos: int, digits: int) -> None:
    """Counts within what exists (a negative count would slice from the end): refused before anything is written."""
    from deploy.errors import BadInput

    for option, count, available, example in (
        ("--photos", photos, len(PHOTO_NAMES), 6),
        ("--digits", digits, DIGITS_HELD_OUT, 10),
    ):
        if not 0 <= count <= available:
            raise BadInput(
                f"{option} {count} is outside 0-{available} (there are {available})",
                hint=f"pass {option} {example}, or {option} 0 for none",
            )
    if photos == digits == 0:
        raise BadInput("--photos 0 and --digits 0 leave nothing to write", hint="pass --photos 6 or --digits 10")


def sample_count(sample_set: SampleSet) -> int:
    """How many images `samples_for(sample_set)` can give."""
    return DIGITS_TOTAL if sample_set == "digits" else len(PHOTO_NAMES)


def samples_for(sample_set: SampleSet, count: int | None = None) -> list[Sample]:
    return sample_digits(count) if sample_set == "digits" else sample_photos(count)
