"""INT8 by explicit quantization: ModelOpt ONNX PTQ inserts Q/DQ pairs, calibrated on CPU through ONNX Runtime.

Symmetric (zero points 0), per-channel weight scales, per-tensor activation scales; the layers left unquantized run
in `high_precision` (FP16 for TensorRT by default). Activation scales are cached (deploy.precision.cache) so a
rebuild with the same model, data and method skips the calibration pass over the data set.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from deploy.errors import ExportFailed, first_line
from deploy.lazy import require
from deploy.precision.cache import CacheKey, CorruptCache, activation_scales, cache_path, read_scales, write_scales
from deploy.precision.calibration import Int8Source
from deploy.precision.modelopt_run import quiet
from deploy.precision.typing_info import quantized_nodes, unquantized_compute_nodes

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
    key = CacheKey(job.onnx_sha256, job.calibration.digest, method)
    path = cache_path(job.cache_dir, job.model_name, key)
    warnings: list[str] = []
    cached = None
    if path.is_file() and not job.recalibrate:
        try:
            cached = read_scales(path)
        except CorruptCache as exc:
            warnings.append(f"{exc}; recalibrating and replacing it")

    # The same calibration shapes on both paths: ModelOpt's layer exclusions (e.g. GEMV at batch 1) depend on them.
    batch = job.static_batch or CALIBRATION_BATCH
    if cached is None:
        data = job.calibration.arrays()
        if len(data) < batch:
            data = np.concatenate([data] * -(-batch // len(data)))
    else:
        # ONNX Runtime's quantizer needs one pass to lay out the graph; the scales then come from the cache.
        data = np.random.default_rng(0).standard_normal((batch, *job.input_chw)).astype(np.float32)
    usable = len(data) - len(data) % batch
    model = _run_modelopt(
        job.onnx,
        data=data[:usable],
        shapes=f"{job.input_name}:{'x'.join(map(str, (batch, *job.input_chw)))}",
        input_name=job.input_name,
        method=method,
        high_precision=high_precision,
        cache_file=path if cached is not None else None,
    )
    scales = activation_scales(model)
    if not scales:
        raise ExportFailed(
            f"ModelOpt inserted no activation Q/DQ into {job.onnx}",
            hint="the model may have no quantizable Conv/Gemm/MatMul layers; build --fp16 instead",
        )
    if cached is None:
        write_scales(path, scales, method)

    qdq = sum(1 for node in model.graph.node if node.op_type == "QuantizeLinear")
    return Int8Result(
        model=model,
        cache_path=path,
        cache_key=key.digest,
        reused_cache=cached is not None,
        qdq_pairs=qdq,
        quantized_nodes=quantized_nodes(model),
        high_precision_nodes=unquantized_compute_nodes(model),
        warnings=tuple(warnings),
    )


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
    # ModelOpt writes intermediate files beside its input; a private scratch folder keeps export/ clean.
    with tempfile.TemporaryDirectory(prefix="deploy-int8-") as scratch:
        linked = Path(scratch) / source.name
        os.symlink(source.resolve(), linked)
        output = Path(scratch) / "quantized.onnx"
        try:
            with quiet("ModelOpt ONNX PTQ"):
                quantization.quantize(
                    onnx_path=str(linked),
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
