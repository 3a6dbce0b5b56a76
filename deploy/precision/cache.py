"""Calibration cache: activation scales keyed by source ONNX + calibration set + method.

Stored in TensorRT's calibration-cache text layout (a header line, then `tensor: big-endian float32 hex`), which
ModelOpt imports and TensorRT users recognise. The key lives in the file name, so a changed model, data set or
method never picks up stale scales.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import numpy_helper

from deploy.files import Staging

HEADER = "TRT-deploy-{method}Calibration"


class CorruptCache(ValueError):
    """A cache file that exists but cannot be parsed."""


@dataclass(frozen=True)
class CacheKey:
    onnx_sha256: str
    calibration_digest: str
    method: str

    @property
    def digest(self) -> str:
        text = f"{self.onnx_sha256}:{self.calibration_digest}:{self.method}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(directory: Path, model: str, key: CacheKey) -> Path:
    return directory / f"{model}.int8-{key.method}.{key.digest}.cache"


def read_scales(path: Path) -> dict[str, float]:
    """Tensor name → activation scale. Raises CorruptCache when the file is not a readable cache."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
        if not lines or not lines[0].startswith("TRT-"):
            raise CorruptCache(f"{path} has no TensorRT calibration-cache header")
        scales = {}
        for line in lines[1:]:
            name, hex_value = line.rsplit(": ", 1)
            scales[name] = struct.unpack("!f", bytes.fromhex(hex_value))[0]
    except (OSError, UnicodeDecodeError, ValueError, struct.error) as exc:
        raise CorruptCache(f"{path} is not a readable calibration cache ({exc})") from exc
    if not scales or any(not scale > 0 for scale in scales.values()):
        raise CorruptCache(f"{path} holds no usable scales")
    return scales


def write_scales(path: Path, scales: dict[str, float], method: str) -> Path:
    lines = [HEADER.format(method=method.capitalize())]
    lines += [f"{name}: {struct.pack('!f', scale).hex()}" for name, scale in sorted(scales.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    with Staging() as staging:
        staging.path_for(path).write_text("\n".join(lines) + "\n", encoding="ascii")
        staging.commit()
    return path


def activation_scales(model: onnx.ModelProto) -> dict[str, float]:
    """The per-tensor scales of every quantized activation (weights, which have initializers, are skipped)."""
    initializers = {init.name: init for init in model.graph.initializer}
    scales = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in initializers:
            continue
        # Keyed by the quantized tensor, as TensorRT caches are (scale initializers get renamed by the
        # high-precision conversion, the tensors they quantize do not).
        scale = initializers.get(node.input[1])
        if scale is not None:
            value = numpy_helper.to_array(scale)
            if value.size == 1:
                scales[node.input[0]] = float(value.reshape(()))
    return scales
