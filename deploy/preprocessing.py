"""Image loading and the model's own preprocessing, with PIL and NumPy only (no torch import).

The transform reproduces torchvision's ImageClassification preset on PIL images: resize the shorter side,
center crop, scale to [0, 1], normalize. Same arithmetic, so eager and deployed models see identical tensors.
"""

from __future__ import annotations

import glob
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deploy.errors import BadInput

Interpolation = Literal["nearest", "bilinear", "bicubic"]
_PIL_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_COLORS = ("RGB", "L")

# Bounds on the work one image can cause. Pillow's decompression-bomb guard counts decoded pixels only: a PNG of a
# few hundred bytes, 60000x1 pixels, passes it and then asks for ~12 GB when its short side is resized to 256.
MAX_SIDE = 4096  # resize/crop sizes a sidecar or option may ask for (the zoo's largest is 342)
MAX_ASPECT_RATIO = 50.0  # wider than any panorama a classifier is fed; the centre crop would keep under 2% of it
MAX_RESIZED_PIXELS = 1 << 26  # 64 Mpx (192 MB as RGB) after resizing the short side


@dataclass(frozen=True)
class Preprocessing:
    """Everything needed to turn a picture into the network's input tensor."""

    resize_size: int
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: Interpolation = "bilinear"
    color: Literal["RGB", "L"] = "RGB"

    def __post_init__(self) -> None:
        """The invariants every later stage relies on; a sidecar that breaks one is refused when it is read."""
        if not 1 <= self.crop_size <= self.resize_size <= MAX_SIDE:
            raise ValueError(
                f"sizes must satisfy 1 <= crop_size <= resize_size <= {MAX_SIDE}, got crop_size {self.crop_size} "
                f"and resize_size {self.resize_size}"
            )
        if self.color not in _COLORS:
            raise ValueError(f"color must be one of {', '.join(_COLORS)}, got {self.color!r}")
        if self.interpolation not in _PIL_RESAMPLE:
            raise ValueError(f"interpolation must be one of {', '.join(_PIL_RESAMPLE)}, got {self.interpolation!r}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != self.channels:
                raise ValueError(f"{name} needs {self.channels} values for {self.color} images, got {len(values)}")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} must be finite, got {values}")
        if not all(v > 0 for v in self.std):
            raise ValueError(f"std must be greater than 0 (a zero divides every pixel by zero), got {self.std}")

    @property
    def channels(self) -> int:
        return 3 if self.color == "RGB" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            resize_size=int(data["resize_size"]),
            crop_size=int(data["crop_size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            interpolation=data.get("interpolation", "bilinear"),
            color=data.get("color", "RGB"),
        )


def load_image(path: Path) -> Image.Image:
    """Open and fully decode an image, turning every way a file can fail into one BadInput naming it."""
    if not path.is_file():
        raise BadInput(f"image {path} does not exist or is not a file", hint="check the path")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; we refuse both, the guard stays on.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadInput(
            f"image {path} is too large to decode safely ({exc})",
            hint="downscale it first; Pillow's decompression-bomb guard stays on",
        ) from exc
    except UnidentifiedImageError as exc:
        raise BadInput(f"{path} is not an image Pillow can read", hint="pass a JPEG, PNG, BMP, TIFF or WebP") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"image {path} is corrupt or truncated ({exc})", hint="re-export or re-download it") from exc
    except MemoryError as exc:
        raise BadInput(f"image {path} needs more memory to decode than this machine has", hint="downscale it") from exc
    width, height = image.size
    if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise BadInput(
            f"image {path} is {width}x{height} pixels: an aspect ratio beyond {MAX_ASPECT_RATIO:g}:1 is refused "
            "(resizing its short side would take more memory than the image is worth)",
            hint="crop it to the region to classify",
        )
    image.info["deploy.source"] = str(path)
    return image


def image_files(folder: Path) -> tuple[list[Path], int]:
    """Every readable image below `folder` (recursive, any Pillow format, sorted); other files are counted."""
    images, skipped = [], 0
    try:
        candidates = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise BadInput(f"image folder {folder} cannot be read ({exc})", hint="check its permissions") from exc
    for path in candidates:
        if is_readable_image(path):
            images.append(path)
        else:
            skipped += 1
    return images, skipped


def iter_files(folder: Path) -> Iterator[Path]:
    """The files `image_files` considers (recursive, no dot-files, symlinked folders not entered), in the same
    order as sorted(folder.rglob("*")), listing one folder at a time: nothing but that folder's names is held."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)  # name order within a folder = Path order overall
    except OSError as exc:
        raise BadInput(f"image folder {folder} cannot be read ({exc})", hint="check its permissions") from exc
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from iter_files(Path(entry.path))
        elif not entry.name.startswith(".") and entry.is_file():
            yield Path(entry.path)


def is_glob(text: str) -> bool:
    """Whether `text` is a glob pattern (`*`, `?` or `[...]`) rather than a plain path."""
    return glob.has_magic(text)


def glob_files(pattern: str) -> list[Path]:
    """The files a glob pattern matches (`**` spans folders; folders it matches are not entered), sorted."""
    matches = glob.iglob(os.path.expanduser(pattern), recursive=True)
    return sorted(path for path in map(Path, matches) if path.is_file())


def is_readable_image(path: Path) -> bool:
    """Pillow recognises the file and its structure checks out (headers only; nothing is decoded)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception:  # Pillow raises many types for non-images and damaged files alike
        return False
    return True


def to_color(image: Image.Image, color: Literal["RGB", "L"]) -> Image.Image:
    """Convert any Pillow mode (gray, palette, RGBA, CMYK, 16-bit, float) to 8-bit RGB or L."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        # Pillow's own conversion clips 16-bit values at 255; rescale the real range instead.
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = Image.fromarray(((values - low) * scale).round().astype(np.uint8))
    if image.mode == image.mode.upper() == color:
        return image
    return image.convert(color)


def preprocess(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """One image → float32 array (C, H, W), exactly as the model's transform prepares it."""
    image = to_color(image, prep.color)
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = prep.resize_size, int(prep.resize_size * long / short)
    if new_short * new_long > MAX_RESIZED_PIXELS:
        source = image.info.get("deploy.source", "an image")
        raise BadInput(
            f"{source} ({width}x{height} pixels) would be resized to {new_short}x{new_long} to give its short side "
            f"{prep.resize_size} pixels: more than {MAX_RESIZED_PIXELS >> 20} Mpx",
            hint="crop it closer to a square",
        )
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    image = image.resize(new_size, resample=_PIL_RESAMPLE[prep.interpolation])

    width, height = image.size
    crop = prep.crop_size
    top = round((height - crop) / 2.0)
    left = round((width - crop) / 2.0)
    image = image.crop((left, top, left + crop, top + crop))

    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    array = array.transpose(2, 0, 1)
    mean = np.asarray(prep.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(prep.std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((array - mean) / std, dtype=np.float32)


def preprocess_batch(images: list[Image.Image], prep: Preprocessing) -> np.ndarray:
    return np.stack([preprocess(image, prep) for image in images])


def preprocess_files(paths: list[Path], prep: Preprocessing) -> np.ndarray:
    """Image files → one float32 batch, decoding one at a time: 500 large photos never sit in memory together
    (500 × 24 MP decoded is ~36 GB; their crops are 300 MB at 224²)."""
    return np.stack([preprocess(load_image(path), prep) for path in paths])
