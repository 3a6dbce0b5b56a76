"""Calibration cache: activation scales keyed by source ONNX + calibration set + method + quantizer version.

Stored in TensorRT's calibration-cache text layout (a header line, then `tensor: big-endian float32 hex`), which
ModelOpt imports and TensorRT users recognise. The key lives in the file name and again in the header (ModelOpt
skips that line), so a changed model, data set, method or quantizer never picks up stale scales, and neither does a
cache copied or renamed from elsewhere. Contents are checked strictly: a cache is a performance shortcut, and one
that does not fit is replaced, never trusted.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import numpy_helper

from deploy.files import Staging, sweep_stale

HEADER = "TRT-deploy-{method}Calibration key={key}"
_HEADER = re.compile(r"^TRT-deploy-(?P<method>[A-Za-z]+)Calibration key=(?P<key>[0-9a-f]{16})$")
# ModelOpt splits each line at ": " (calib_utils.import_scales_from_calib_cache): a name holding it cannot be read.
_CACHE_NAME = re.compile(r"\.int8-[a-z-]+\.[0-9a-f]{16}\.(?:cache|json)$")  # cache_path, cpu_int8.cpu_cache_path
_LINE = re.compile(r"^(?P<name>(?:(?!: ).)+): (?P<hex>[0-9a-fA-F]{8})$")


class CorruptCache(ValueError):
    """A cache file that exists but cannot be used: unreadable, malformed, or written under another key."""


@dataclass(frozen=True)
class CacheKey:
    onnx_sha256: str
    calibration_digest: str
    method: str
    quantizer: str  # the quantizing packages and their versions: another version's scales are never reused

    @property
    def digest(self) -> str:
        text = f"{self.onnx_sha256}:{self.calibration_digest}:{self.method}:{self.quantizer}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(directory: Path, model: str, key: CacheKey) -> Path:
    return directory / f"{model}.int8-{key.method}.{key.digest}.cache"


def is_cache_file(path: Path) -> bool:
    """Whether `path` is named as a calibration cache of either recipe (they live in the calibration folder)."""
    return path.is_file() and _CACHE_NAME.search(path.name) is not None


def read_scales(path: Path, key: CacheKey | None = None) -> dict[str, float]:
    """Tensor name → activation scale, checked line by line (and against `key` when given).

    Raises CorruptCache when the file is not a readable cache, or was written under another key.
    """
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptCache(f"{path} is not a readable calibration cache ({exc})") from exc
    header = _HEADER.match(lines[0]) if lines else None
    if header is None:
        raise CorruptCache(f"{path} is not a readable calibration cache (no deploy calibration-cache header)")
    if key is not None and header["key"] != key.digest:
        raise CorruptCache(
            f"{path} was written for another model, data set, method or quantizer version (key {header['key']}, "
            f"expected {key.digest})"
        )
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        match = _LINE.match(line)
        if match is None:
            raise CorruptCache(f"{path} is not a readable calibration cache (line {number} is not `tensor: hex`)")
        name, scale = match["name"], struct.unpack("!f", bytes.fromhex(match["hex"]))[0]
        if name in scales:
            raise CorruptCache(f"{path} is not a readable calibration cache (tensor {name!r} appears twice)")
        if not (math.isfinite(scale) and scale > 0):
            raise CorruptCache(f"{path} is not a readable calibration cache (scale {scale} of {name!r})")
        scales[name] = scale
    if not scales:
        raise CorruptCache(f"{path} is not a readable calibration cache (it holds no scales)")
    return scales


def write_scales(path: Path, scales: dict[str, float], key: CacheKey) -> Path:
    lines = [HEADER.format(method=key.method.capitalize(), key=key.digest)]
    lines += [f"{name}: {struct.pack('!f', scale).hex()}" for name, scale in sorted(scales.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent)  # staged caches of a killed build (nothing else sweeps the calibration folder)
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


def tensor_names(model: onnx.ModelProto) -> set[str]:
    """Every tensor a node reads or writes, and the graph inputs."""
    names = {value.name for value in model.graph.input}
    for node in model.graph.node:
        names.update(node.input)
        names.update(node.output)
    names.discard("")
    return names
