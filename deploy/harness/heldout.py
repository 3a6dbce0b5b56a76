"""Held-out images for verification: a user folder (class subfolders give labels) or the offline demo split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import BadInput
from deploy.imported import has_onnx_reference
from deploy.preprocessing import image_files, preprocess_batch, preprocess_files
from deploy.samples import DEMO_CALIBRATION_PHOTOS, PHOTO_NAMES, Sample, SampleSet, digits_split, sample_photos
from deploy.sidecar import Sidecar


@dataclass(frozen=True)
class HeldOutSet:
    source: str
    arrays: np.ndarray
    names: tuple[str, ...]
    labels: np.ndarray | None


def held_out_set(sidecar: Sidecar, *, images: Path | None, count: int | None) -> HeldOutSet:
    if count is not None and count < 1:
        raise BadInput(f"--count {count} must be at least 1", hint="omit --count to use every held-out image")
    if images is not None:
        return _folder(sidecar, images, count)
    if demo_set(sidecar) == "digits":
        test = digits_split().test[:count]
        arrays = preprocess_batch([s.image for s in test], sidecar.preprocessing)
        if not _digits_classify(sidecar):
            return HeldOutSet("sklearn digits (held-out test split, unlabelled)", arrays, _names(test), None)
        labels = np.asarray([s.label for s in test], dtype=np.int64)
        return HeldOutSet("sklearn digits (held-out test split)", arrays, _names(test), labels)
    photos = sample_photos()[DEMO_CALIBRATION_PHOTOS:][:count]
    arrays = preprocess_batch([s.image for s in photos], sidecar.preprocessing)
    names = tuple(s.name for s in photos)
    return HeldOutSet(
        f"scikit-image photos {', '.join(PHOTO_NAMES[DEMO_CALIBRATION_PHOTOS:][:3])}, …", arrays, names, None
    )


def demo_set(sidecar: Sidecar) -> SampleSet:
    """The offline images that stand in for the user's own: scikit-learn's digits for models trained on them (and
    for gray-input models, which photos do not fit), scikit-image's photos for the rest."""
    return "digits" if sidecar.weights.kind == "digits" or sidecar.preprocessing.color == "L" else "photos"


def _names(samples: list[Sample]) -> tuple[str, ...]:
    return tuple(sample.name for sample in samples)


def _digits_classify(sidecar: Sidecar) -> bool:
    """The digits' labels are ground truth for weights trained on them and for LeNet-5's 10-class checkpoints (the
    zoo's gray classifier); a gray model of unknown origin gets the digit images without their labels."""
    if sidecar.outputs[0].shape[-1] != 10 or demo_set(sidecar) != "digits":
        return False
    return sidecar.weights.kind == "digits" or not has_onnx_reference(sidecar)


def _folder(sidecar: Sidecar, folder: Path, count: int | None) -> HeldOutSet:
    if not folder.is_dir():
        raise BadInput(f"images folder {folder} does not exist", hint="pass --images with a folder of images")
    files = image_files(folder)[0][:count]  # files that are not images are skipped, as in calibration folders
    if not files:
        raise BadInput(f"images folder {folder} holds no readable images", hint="add images, any Pillow format")
    arrays = preprocess_files(files, sidecar.preprocessing)
    names = tuple(str(path.relative_to(folder)) for path in files)
    return HeldOutSet(str(folder), arrays, names, _labels_from_folders(sidecar, folder, files))


def _labels_from_folders(sidecar: Sidecar, folder: Path, files: list[Path]) -> np.ndarray | None:
    """Class subfolders named by label (or class index) give ground truth; anything else gives none."""
    if sidecar.labels is None:
        return None
    index = {label.lower(): i for i, label in enumerate(sidecar.labels)}
    labels = []
    for path in files:
        parts = path.relative_to(folder).parts
        if len(parts) != 2:
            return None
        name = parts[0].lower()
        if name in index:
            labels.append(index[name])
        elif name.isdigit() and int(name) < len(sidecar.labels):
            labels.append(int(name))
        else:
            return None
    return np.asarray(labels, dtype=np.int64)
