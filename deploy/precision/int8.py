"""INT8 by explicit quantization: ModelOpt ONNX PTQ inserts Q/DQ pairs, calibrated on CPU through ONNX Runtime.

Symmetric (zero points 0), per-channel weight scales, per-tensor activation scales; the layers left unquantized run
in `high_precision` (FP16 for TensorRT by default). Activation scales are cached (deploy.precision.cache) so a
rebuild with the same model, data, method and ModelOpt skips the calibration pass over the data set.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from deploy.errors import ExportFailed, first_line
from deploy.lazy import require
from deploy.precision.cache import (
    CacheKey,
    CorruptCache,
    activation_scales,
    cache_path,
    read_scales,
    tensor_names,
    write_scales,
)
from deploy.precision.calibration import Int8Source
from deploy.precision.modelopt_run import modelopt_version, private_copy, quiet
from deploy.precision.typing_info import quantized_nodes, unquantized_compute_nodes
from deploy.sidecar import onnxruntime_version

log = logging.getLogger(__name__)

CalibrationMethod = Literal["entropy", "max"]
HighPrecision = Literal["fp16", "fp32"]
CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class Int8Result:
    model: onnx.ModelProto
    cache_path: Path
    cache_key: str
    reused_cache: bool
    qdq_pairs: int
    quantized_nodes: tuple[str, ...]
    high_precision_nodes: tuple[str, ...]
    warnings: tuple[str, ...]


def quantize_int8(job: Int8Source, *, method: CalibrationMethod, high_precision: HighPrecision) -> Int8Result:
    quantizer = f"modelopt {modelopt_version()}, onnxruntime {onnxruntime_version()}"
    key = CacheKey(job.onnx_sha256, job.calibration.digest, method, quantizer)
    path = cache_path(job.cache_dir, job.model_name, key)
    warnings: list[str] = []
    model = None
    if path.is_file() and not job.recalibrate:
        try:
            cached = read_scales(path, key)
        except CorruptCache as exc:
            warnings.append(f"{exc}; recalibrating and replacing it")
        else:
            # ONNX Runtime's quantizer needs one pass to lay out the graph; the scales then come from the cache.
            try:
                model = _quantize(job, method, high_precision, cache_file=path)
                misfit = _misfit(model, cached)
            except ExportFailed as exc:  # a real ModelOpt failure recurs below, with the calibration data
                misfit = f"ModelOpt could not use it: {exc.message}"
            if misfit:
                warnings.append(
                    f"calibration cache {path} does not fit {job.onnx} ({misfit}); recalibrating and replacing it"
                )
                model = None
    reused = model is not None
    if model is None:
        model = _quantize(job, method, high_precision, cache_file=None)
        scales = activation_scales(model)
        if not scales:
            raise ExportFailed(
                f"ModelOpt inserted no activation Q/DQ into {job.onnx}",
                hint="the model may have no quantizable Conv/Gemm/MatMul layers; build --fp16 instead",
            )
        try:
            write_scales(path, scales, key)
        except OSError as exc:  # the cache only saves time: a folder we cannot write costs the next build a pass
            warnings.append(
                f"could not write the calibration cache {path} ({exc.strerror or exc}); the next build calibrates again"
            )

    qdq = sum(1 for node in model.graph.node if node.op_type == "QuantizeLinear")
    return Int8Result(
        model=model,
        cache_path=path,
        cache_key=key.digest,
        reused_cache=reused,
        qdq_pairs=qdq,
        quantized_nodes=quantized_nodes(model),
        high_precision_nodes=unquantized_compute_nodes(model),
        warnings=tuple(warnings),
    )


def _quantize(
    job: Int8Source, method: CalibrationMethod, high_precision: HighPrecision, *, cache_file: Path | None
) -> onnx.ModelProto:
    # The same calibration shapes on both paths: ModelOpt's layer exclusions (e.g. GEMV at batch 1) depend on them.
    batch = job.static_batch or CALIBRATION_BATCH
    if cache_file is None:
        data = job.calibration.arrays()
        if len(data) < batch:
            data = np.concatenate([data] * -(-batch // len(data)))
    else:  # the layout pass: no calibration image is decoded
        data = np.random.default_rng(0).standard_normal((batch, *job.input_chw)).astype(np.float32)
    usable = len(data) - len(data) % batch
    return _run_modelopt(
        job.onnx,
        data=data[:usable],
        shapes=f"{job.input_name}:{'x'.join(map(str, (batch, *job.input_chw)))}",
        input_name=job.input_name,
        method=method,
        high_precision=high_precision,
        cache_file=cache_file,
    )


def _misfit(model: onnx.ModelProto, cached: dict[str, float]) -> str | None:
    """Why the cached scales are not exactly what ModelOpt applied to `model`, or None when they are.

    ModelOpt quietly quantizes only the nodes whose inputs the cache names, and takes any other activation's scale
    from the layout pass's random batch; so a cache from another graph shows up here, not as an error.
    """
    foreign = sorted(set(cached) - tensor_names(model))
    if foreign:
        return f"{len(foreign)} of its {len(cached)} tensors are not in the graph, e.g. {foreign[0]!r}"
    applied = activation_scales(model)
    if set(applied) != set(cached):
        return f"it holds scales for {len(cached)} activations, ModelOpt quantized {len(applied)} with it"
    changed = [name for name, scale in applied.items() if not math.isclose(scale, cached[name], rel_tol=1e-3)]
    if changed:  # 1e-3: a scale stored in FP16 (--high-precision fp16) rounds by up to 2^-11
        return f"{len(changed)} of its scales were not applied, e.g. {changed[0]!r}"
    return None


def _run_modelopt(
    source: Path,
    *,
    data: np.ndarray,
    shapes: str,
    input_name: str,
    method: CalibrationMethod,
    high_precision: HighPrecision,
    cache_file: Path | None,
) -> onnx.ModelProto:
    quantization = require("modelopt.onnx.quantization", purpose="INT8 quantization (ModelOpt ONNX PTQ)")
    # ModelOpt writes intermediate files beside its input, and (0.47, measured) writes the shape-inferred model back
    # over the input itself: it gets a private copy in a scratch folder, so the user's export is never rewritten.
    with tempfile.TemporaryDirectory(prefix="deploy-int8-") as scratch:
        private = private_copy(source, Path(scratch))
        output = Path(scratch) / "quantized.onnx"
        try:
            with quiet("ModelOpt ONNX PTQ"):
                quantization.quantize(
                    onnx_path=str(private),
                    quantize_mode="int8",
                    calibration_data={input_name: data},
                    calibration_method=method,
                    calibration_shapes=shapes,
                    calibration_cache_path=None if cache_file is None else str(cache_file),
                    calibration_eps=["cpu"],
                    high_precision_dtype=high_precision,
                    output_path=str(output),
                    log_level="ERROR",
                )
        except Exception as exc:  # ModelOpt surfaces ONNX Runtime and graph errors untyped
            raise ExportFailed(
                f"ModelOpt INT8 quantization failed on {source}: {first_line(exc)}", hint="rerun with --debug"
            ) from exc
        return onnx.load(output)
