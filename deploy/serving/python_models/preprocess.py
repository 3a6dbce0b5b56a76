"""Triton Python-backend model: encoded image bytes (JPEG, PNG, any format Pillow reads) → the network's input.

Written by `deploy triton --ensemble` as `<model>_preprocess/1/model.py`. The arithmetic is deploy's own
`deploy.preprocessing` (decode with EXIF orientation, convert to RGB or L, resize the short side, centre crop,
scale to [0, 1], normalise), restated here so the server needs NumPy and Pillow only; tests/test_triton.py checks
the two give bit-identical tensors. Parameters come from config.pbtxt (`preprocessing`, the sidecar's JSON).

A request whose image cannot be decoded, or is refused by the same bounds deploy applies, gets an error response;
the other requests of the batch are answered.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# deploy.preprocessing's bounds on the work one image may cause
MAX_ASPECT_RATIO = 50.0
MAX_RESIZED_PIXELS = 1 << 26
IMAGE_INPUT = "IMAGE"


class ImageRefused(ValueError):
    """An image this model will not turn into a tensor; the message goes back to the client."""


@dataclass(frozen=True)
class Transform:
    resize_size: int
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    color: str

    @classmethod
    def from_json(cls, text: str) -> Transform:
        data = json.loads(text)
        return cls(
            resize_size=int(data["resize_size"]),
            crop_size=int(data["crop_size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            interpolation=str(data.get("interpolation", "bilinear")),
            color=str(data.get("color", "RGB")),
        )


def decode(data: bytes) -> Image.Image:
    """Fully decode encoded bytes, EXIF orientation applied; every failure is one ImageRefused."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"image too large to decode safely ({exc})") from exc
    except MemoryError as exc:
        raise ImageRefused("image needs more memory to decode than the server has") from exc
    except UnidentifiedImageError as exc:
        raise ImageRefused(f"not an image Pillow can read ({len(data)} bytes)") from exc
    except Exception as exc:  # Pillow raises many types for non-images and damaged files alike
        raise ImageRefused(f"corrupt or truncated image ({type(exc).__name__}: {exc})") from exc
    width, height = image.size
    if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageRefused(f"image is {width}x{height} pixels: an aspect ratio beyond {MAX_ASPECT_RATIO:g}:1")
    return image


def to_color(image: Image.Image, color: str) -> Image.Image:
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = Image.fromarray(((values - low) * scale).round().astype(np.uint8))
    if image.mode == image.mode.upper() == color:
        return image
    return image.convert(color)


def transform(image: Image.Image, spec: Transform) -> np.ndarray:
    """One decoded image → float32 (C, H, W)."""
    image = to_color(image, spec.color)
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = spec.resize_size, int(spec.resize_size * long / short)
    if new_short * new_long > MAX_RESIZED_PIXELS:
        raise ImageRefused(f"image {width}x{height} would be resized to more than {MAX_RESIZED_PIXELS >> 20} Mpx")
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    image = image.resize(new_size, resample=_RESAMPLE[spec.interpolation])
    width, height = image.size
    crop = spec.crop_size
    top = round((height - crop) / 2.0)
    left = round((width - crop) / 2.0)
    image = image.crop((left, top, left + crop, top + crop))
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    array = array.transpose(2, 0, 1)
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((array - mean) / std, dtype=np.float32)


def preprocess_bytes(data: bytes, spec: Transform) -> np.ndarray:
    return transform(decode(data), spec)


def _as_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, np.bytes_):
        return bytes(item)
    raise ImageRefused(f"expected encoded image bytes, got {type(item).__name__}")


class TritonPythonModel:
    """IMAGE (TYPE_STRING, one encoded image per batch item) → the model's input tensor."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        self.spec = Transform.from_json(config["parameters"]["preprocessing"]["string_value"])
        self.output = config["output"][0]["name"]
        if not math.isfinite(sum(self.spec.mean)) or min(self.spec.std) <= 0:
            raise ValueError(f"unusable preprocessing parameters {self.spec}")

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]  # only in Triton's stub

        responses = []
        for request in requests:
            try:
                items = pb_utils.get_input_tensor_by_name(request, IMAGE_INPUT).as_numpy()
                batch = np.stack([preprocess_bytes(_as_bytes(item), self.spec) for item in items.reshape(-1)])
            except ImageRefused as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output, batch)]))
        return responses
