"""INT8 for ONNX Runtime on CPU: static quantization in QDQ with U8 activations and S8 per-channel weights.

This is the layout ONNX Runtime's x86 integer kernels fuse into QLinearConv/MatMulInteger; the TensorRT-style
model from deploy.precision.int8 (signed activations, symmetric) stays the accuracy proxy for TensorRT but runs
slowly on those kernels. Weights are quantized to [-64, 64] (`reduce_range`), which makes the kernels exact on every
x86 CPU, VNNI or not (deploy.targets.onnxruntime.u8s8), so an artifact built on one machine is right on any other.
Activation ranges come from our own calibration pass (entropy thresholds from deploy.precision.entropy), are
cached per (source ONNX, calibration set, method, onnxruntime version) as JSON, then handed to `quantize_static` as
TensorQuantOverrides.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from deploy.errors import ExportFailed
from deploy.files import Staging, sweep_stale
from deploy.precision.cache import CacheKey, tensor_names
from deploy.precision.calibration import Int8Source
from deploy.precision.typing_info import quantized_nodes
from deploy.sidecar import onnxruntime_version

log = logging.getLogger(__name__)

CpuMethod = Literal["entropy", "max", "percentile"]
HISTOGRAM_BINS = 2048  # per sign, as TensorRT's entropy calibrator
PERCENTILE = 99.999
CALIBRATION_BATCH = 8
BATCHES_PER_PASS = 4  # histograms merge pass by pass: memory stays bounded for 500 images of VGG16
CACHE_SCHEMA = "deploy.cpu-int8-ranges/3"  # /3: the key is stored in the file and checked
# Part of the cache key: ranges computed by an earlier algorithm (ORT's entropy thresholds, 1024 bins per sign)
# are never reused.
RANGE_ALGORITHM = "ranges-3"
WEIGHT_BITS = 7  # reduce_range: |w| <= 64 keeps every int16 pair sum of the U8S8 kernels in range
# Concat and BatchNormalization stay float. In densenet121 every conv output feeds a Concat whose output feeds a
# standalone BN; quantizing either one alone keeps those tensors quantized (247 Q/DQ either way), leaving both float
# removes 59 and measured 1.28x faster in OpenVINO and 1.09x in ONNX Runtime (batch 1, 2 threads, AMD EPYC Zen 3,
# interleaved); googlenet's inception Concats measured the same either way; models with neither op are unchanged.
UNQUANTIZED_OPS = frozenset({"Concat", "BatchNormalization"})
# The worker's answers when cached ranges do not fit the graph it pre-processed.
STALE_CACHE_EXIT = 3
MISFIT_CACHE_EXIT = 4
CACHE_MISFITS = {
    STALE_CACHE_EXIT: "was calibrated on another ONNX Runtime graph of this model (a different onnxruntime version?)",
    MISFIT_CACHE_EXIT: "holds ranges that do not match this model's quantized tensors",
}


@dataclass(frozen=True)
class CpuInt8Result:
    model: onnx.ModelProto
    cache_path: Path
    cache_key: str
    reused_cache: bool
    ranges: int
    quantized_nodes: tuple[str, ...]
    weight_bits: int
    images_used: int | None  # calibration images in whole batches; None when the cache was reused
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RangeCache:
    ranges: dict[str, tuple[float, float]]
    graph_sha256: str  # the graph ORT's pre-processing made: the tensor names the ranges belong to


def cpu_cache_path(directory: Path, model: str, key: CacheKey) -> Path:
    return directory / f"{model}.int8-{key.method}.{key.digest}.json"


def quantize_cpu_int8(job: Int8Source, *, method: CpuMethod) -> CpuInt8Result:
    key = CacheKey(
        job.onnx_sha256,
        f"{job.calibration.digest}:{RANGE_ALGORITHM}",
        f"cpu-{method}",
        f"onnxruntime {onnxruntime_version()}",
    )
    cache = cpu_cache_path(job.cache_dir, job.model_name, key)
    warnings: list[str] = []
    cached: RangeCache | None = None
    if cache.is_file() and not job.recalibrate:
        try:
            cached = _read_cache(cache, key)
        except ValueError as exc:
            warnings.append(f"{cache} is not a readable range cache ({exc}); recalibrating and replacing it")
    batch = job.static_batch or CALIBRATION_BATCH
    images_used: int | None = None
    with tempfile.TemporaryDirectory(prefix="deploy-cpu-int8-") as scratch_name:
        scratch = Path(scratch_name)
        work = Work(
            source=str(job.onnx), scratch=scratch_name, input_name=job.input_name, method=method, calibrate=False
        )
        if cached is not None:
            # The quantizer needs one batch to lay out the graph; the cached ranges replace what it measures, so no
            # calibration image is decoded.
            layout = np.random.default_rng(0).standard_normal((1, batch, *job.input_chw)).astype(np.float32)
            np.save(scratch / "calibration.npy", layout)
            (scratch / "ranges.json").write_text(json.dumps(cached.ranges), encoding="utf-8")
            try:
                misfit = _run_isolated(dataclasses.replace(work, graph_sha256=cached.graph_sha256))
            except ExportFailed as exc:  # a real quantizer failure recurs below, with the calibration data
                misfit = f"could not be applied ({exc.message})"
            if misfit is not None:
                warnings.append(f"{cache} {misfit}; recalibrating and replacing it")
                cached = None
        if cached is None:
            batches = _batched(job.calibration.arrays(), batch)
            images_used = min(batches.shape[0] * batch, job.calibration.count)
            np.save(scratch / "calibration.npy", batches)
            _run_isolated(dataclasses.replace(work, calibrate=True))
            ranges = _parse_ranges(json.loads((scratch / "ranges.json").read_text(encoding="utf-8")))
            graph = (scratch / "graph.sha256").read_text(encoding="ascii").strip()
            try:
                _write_cache(cache, RangeCache(ranges, graph), key, job.calibration.digest)
            except OSError as exc:  # the cache only saves time: a folder we cannot write costs the next build a pass
                warnings.append(
                    f"could not write the range cache {cache} ({exc.strerror or exc}); the next build calibrates again"
                )
        else:
            ranges = cached.ranges
        model = onnx.load(scratch / "quantized.onnx")
    quantized = quantized_nodes(model)
    if not quantized:
        raise ExportFailed(
            f"ONNX Runtime quantized no Conv/Gemm/MatMul layer of {job.onnx}",
            hint="the model may have no quantizable layers; keep the FP32 artifact",
        )
    return CpuInt8Result(
        model=model,
        cache_path=cache,
        cache_key=key.digest,
        reused_cache=cached is not None,
        ranges=len(ranges),
        quantized_nodes=quantized,
        weight_bits=WEIGHT_BITS,
        images_used=images_used,
        warnings=tuple(warnings),
    )


@dataclass(frozen=True)
class Work:
    """What the isolated worker does: files in `scratch` (calibration.npy, ranges.json, quantized.onnx)."""

    source: str
    scratch: str
    input_name: str
    method: str
    calibrate: bool
    graph_sha256: str | None = None  # with cached ranges: the pre-processed graph they were measured on


def _run_isolated(job: Work) -> str | None:
    """Run ONNX Runtime's quantization in a fresh interpreter.

    ModelOpt monkey-patches onnxruntime.quantization for the rest of the process the first time it quantizes
    (create_calibrator, the histogram collectors, QDQQuantizer), so in a process that has built the TensorRT INT8
    artifact, ORT's own calibration would silently run ModelOpt's variants. A subprocess keeps this recipe the same
    whatever ran before it. Returns why cached ranges do not fit (the worker's own exit codes), None when done.
    """
    spec = Path(job.scratch) / "job.json"
    spec.write_text(json.dumps(dataclasses.asdict(job)), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "deploy.precision.cpu_int8", str(spec)], capture_output=True, text=True, check=False
    )
    if done.returncode in CACHE_MISFITS:
        return CACHE_MISFITS[done.returncode]
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        log.debug("CPU INT8 worker stderr:\n%s", done.stderr)
        raise ExportFailed(
            f"ONNX Runtime INT8 quantization of {job.source} failed: {lines[-1] if lines else done.returncode}",
            hint="rerun with --debug to see the quantizer's output",
        )
    return None


def _work(job: Work) -> None:
    from onnxruntime import quantization
    from onnxruntime.quantization import calibrate, shape_inference

    scratch = Path(job.scratch)
    prepared = scratch / "prepared.onnx"
    shape_inference.quant_pre_process(job.source, str(prepared))
    graph = hashlib.sha256(prepared.read_bytes()).hexdigest()
    (scratch / "graph.sha256").write_text(graph, encoding="ascii")
    if not job.calibrate and job.graph_sha256 != graph:
        sys.exit(STALE_CACHE_EXIT)
    data = np.load(scratch / "calibration.npy")
    if job.calibrate:
        ranges = _calibrate(calibrate, prepared, scratch, job.input_name, data, job.method)
        (scratch / "ranges.json").write_text(json.dumps(ranges), encoding="utf-8")
    else:
        ranges = _parse_ranges(json.loads((scratch / "ranges.json").read_text(encoding="utf-8")))
        if not set(ranges) <= tensor_names(onnx.load(prepared)):  # ORT rejects overrides of unknown tensors
            sys.exit(MISFIT_CACHE_EXIT)
    overrides = {name: [{"rmin": np.float32(low), "rmax": np.float32(high)}] for name, (low, high) in ranges.items()}
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    quantization.quantize_static(
        str(prepared),
        str(scratch / "quantized.onnx"),
        _Reader(job.input_name, data[:1]),  # the ranges come from the overrides; one batch lays out the graph
        quant_format=quantization.QuantFormat.QDQ,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        per_channel=True,
        reduce_range=True,  # 7-bit weights: exact on every x86 CPU (see deploy.targets.onnxruntime.u8s8)
        calibrate_method=quantization.CalibrationMethod.MinMax,
        extra_options={"TensorQuantOverrides": overrides},
        # quantize_static's own default (both registries), less what stays float
        op_types_to_quantize=sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - UNQUANTIZED_OPS),
    )
    if not job.calibrate and not _ranges_cover(onnx.load(scratch / "quantized.onnx"), ranges):
        sys.exit(MISFIT_CACHE_EXIT)


def _ranges_cover(quantized: onnx.ModelProto, ranges: dict[str, Any]) -> bool:
    """Whether every activation quantize_static quantized got a cached range (it would take a missing one from the
    layout batch of random numbers)."""
    initializers = {init.name for init in quantized.graph.initializer}
    # ORT (1.24) quantizes a graph output through a renamed copy, `<output>_QuantizeLinear_Input`.
    activations = {
        node.input[0].removesuffix("_QuantizeLinear_Input")
        for node in quantized.graph.node
        if node.op_type == "QuantizeLinear" and node.input[0] not in initializers
    }
    return activations <= set(ranges)


def _calibrate(
    calibrate: Any, prepared: Path, scratch: Path, input_name: str, data: np.ndarray, method: str
) -> dict[str, tuple[float, float]]:
    from deploy.precision.entropy import entropy_range

    # Entropy and percentile collect ORT's signed histogram centred on zero; twice the bins gives each sign the
    # 2048 TensorRT's calibrator uses. The entropy thresholds are ours (deploy.precision.entropy), not ORT's.
    kinds = {
        "entropy": (calibrate.CalibrationMethod.Entropy, {"num_bins": 2 * HISTOGRAM_BINS}),
        "max": (calibrate.CalibrationMethod.MinMax, {}),
        "percentile": (
            calibrate.CalibrationMethod.Percentile,
            {"num_bins": 2 * HISTOGRAM_BINS, "percentile": PERCENTILE},
        ),
    }
    kind, options = kinds[method]
    calibrator = calibrate.create_calibrator(
        prepared,
        augmented_model_path=str(scratch / "augmented.onnx"),
        calibrate_method=kind,
        providers=["CPUExecutionProvider"],
        extra_options=options,
    )
    per_pass = max(1, CALIBRATION_BATCH * BATCHES_PER_PASS // data.shape[1])
    for start in range(0, len(data), per_pass):
        calibrator.collect_data(_Reader(input_name, data[start : start + per_pass]))
    if method == "entropy":
        histograms = calibrator.collector.histogram_dict
        return {
            name: entropy_range(hist, edges, float(low), float(high))
            for name, (hist, edges, low, high, _threshold) in histograms.items()
        }
    computed = calibrator.compute_data()
    return {name: (float(np.min(r.range_value[0])), float(np.max(r.range_value[1]))) for name, r in computed.items()}


def _batched(arrays: np.ndarray, batch: int) -> np.ndarray:
    """Images grouped into whole batches (repeated when there are fewer than one batch): shape (B, batch, C, H, W)."""
    if len(arrays) < batch:
        arrays = np.concatenate([arrays] * -(-batch // len(arrays)))
    usable = len(arrays) - len(arrays) % batch
    return arrays[:usable].reshape(usable // batch, batch, *arrays.shape[1:])


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over pre-batched arrays."""

    def __init__(self, input_name: str, batches: np.ndarray) -> None:
        self._feeds = iter([{input_name: np.ascontiguousarray(b)} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _parse_ranges(raw: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {name: (float(low), float(high)) for name, (low, high) in raw.items()}


def _checked_ranges(raw: object) -> dict[str, tuple[float, float]]:
    """Tensor name → (low, high), checked strictly: a non-empty mapping of names to two finite numbers, low <= high."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("no ranges")
    ranges = {}
    for name, pair in raw.items():
        if not (isinstance(name, str) and name and isinstance(pair, list | tuple) and len(pair) == 2):
            raise ValueError(f"range {name!r} is not a name with [low, high]")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pair):
            raise ValueError(f"range {name!r} holds {pair!r}, not two finite numbers")
        low, high = float(pair[0]), float(pair[1])
        if not low <= high:
            raise ValueError(f"range {name!r} has low {low} above high {high}")
        ranges[name] = (low, high)
    return ranges


def _read_cache(path: Path, key: CacheKey) -> RangeCache:
    """The cached activation ranges; ValueError when the file cannot be used (unreadable, malformed, another key)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("schema") != CACHE_SCHEMA:
        raise ValueError(f"schema {data.get('schema')!r}, expected {CACHE_SCHEMA!r}")
    if data.get("key") != key.digest:
        raise ValueError(
            f"written for another model, data set, method or onnxruntime (key {data.get('key')!r}, expected "
            f"{key.digest!r})"
        )
    graph = data.get("graph_sha256")
    if not (isinstance(graph, str) and re.fullmatch(r"[0-9a-f]{64}", graph)):
        raise ValueError(f"graph_sha256 {graph!r} is not a sha256")
    return RangeCache(_checked_ranges(data.get("ranges")), graph)


def _write_cache(path: Path, cache: RangeCache, key: CacheKey, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent)  # staged caches of a killed build (nothing else sweeps the calibration folder)
    payload = {
        "schema": CACHE_SCHEMA,
        "key": key.digest,
        "method": key.method.removeprefix("cpu-"),
        "quantizer": key.quantizer,
        "calibration_digest": digest,
        "graph_sha256": cache.graph_sha256,
        "ranges": cache.ranges,
    }
    with Staging() as staging:
        staging.path_for(path).write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        staging.commit()


if __name__ == "__main__":
    _work(Work(**json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
