"""Typed ONNX per precision: an FP32 copy, FP16 by ModelOpt AutoCast, INT8 Q/DQ (ModelOpt S8 for TensorRT, ONNX
Runtime U8S8 with 7-bit weights for CPU runtimes). Writes one ONNX file and says how it was made; publishing,
judging and compiling for a target belong to deploy.builder."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from deploy.environment import cpu_isa
from deploy.errors import BadInput
from deploy.precision.calibration import CalibrationConfig, CalibrationSet, Int8Source
from deploy.precision.fp16_scan import NEAR_LIMIT_FACTOR, Fp16Scan, scan_fp16_ranges
from deploy.precision.int8 import HighPrecision
from deploy.precision.modelopt_run import modelopt_version
from deploy.precision.typing_info import initializer_types
from deploy.sidecar import ArtifactLabel, Method, PrecisionInfo, Sidecar

if TYPE_CHECKING:
    from deploy.precision.budget import BudgetResult

log = logging.getLogger(__name__)

AUTOCAST_REFERENCE_IMAGES = 8
# An INT8 build where fewer than this share of Conv/Gemm layers got Q/DQ is mostly FP32 in disguise.
MIN_QUANTIZED_SHARE = 0.5


@dataclass(frozen=True)
class RecipeConfig:
    """How INT8 is calibrated (the precision and Q/DQ flavour come with the label)."""

    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    high_precision: HighPrecision = "fp32"
    recalibrate: bool = False
    max_drop: float | None = (
        None  # points of held-out accuracy (or top-1 agreement) INT8 may lose: deploy.precision.budget
    )
    budget_images: Path | None = None  # the held-out images that judge the budget (None: the model's demo set)


@dataclass(frozen=True)
class TypedOnnx:
    """One typed ONNX written to `path`: how its precision was made (the sidecar's precision block)."""

    path: Path
    record: PrecisionInfo

    @property
    def reused_calibration(self) -> bool | None:
        """Whether an INT8 calibration cache was reused; None where nothing was calibrated."""
        return None if self.record.calibration is None else self.record.calibration.reused_cache


def make_typed_onnx(
    source: Path, sidecar: Sidecar, label: ArtifactLabel, calib: CalibrationSet | None, config: RecipeConfig, out: Path
) -> TypedOnnx:
    """Write the typed ONNX of `label` made from the FP32 `source` to `out` (a staging path)."""
    details: dict[str, Any] = {
        "precision": label.precision,
        "label": label.typed_name,
        "source_onnx": str(source),
        "source_sha256": sidecar.sha256,
    }
    if label.precision == "fp32":
        shutil.copyfile(source, out)
        return TypedOnnx(out, PrecisionInfo.from_dict(details))
    assert calib is not None, "FP16 and INT8 need the calibration images"
    if label.precision == "fp16":
        from deploy.precision.fp16 import convert_fp16

        images = calib.arrays()
        reference = images[:AUTOCAST_REFERENCE_IMAGES]
        result = convert_fp16(source, input_name=sidecar.inputs[0].name, reference_inputs=reference)
        onnx.save_model(result.model, out)
        scan = scan_fp16_ranges(source, result.model, input_name=sidecar.inputs[0].name, images=images)
        details |= {
            "tool": "modelopt.onnx.autocast",
            "modelopt": modelopt_version(),
            "reference_images": len(reference),
            "high_precision_nodes": list(result.high_precision_nodes),
            "initializer_types": dict(initializer_types(result.model)),
            "activation_scan": dataclasses.asdict(scan),
            "warnings": _scan_warnings(sidecar.model, scan),
        }
        return TypedOnnx(out, PrecisionInfo.from_dict(details))
    int8 = _cpu_int8 if label.recipe == "cpu" else _int8
    details |= int8(source, sidecar, calib, label, config, out)
    return TypedOnnx(out, PrecisionInfo.from_dict(details))


def _scan_warnings(model: str, scan: Fp16Scan) -> list[str]:
    warnings = [
        f"{model} FP16: {peak.node} ({peak.op}) reaches {peak.max_abs:.4g} on the calibration images, past the FP16 "
        "limit 65504, and is stored in FP16: a GPU would produce inf there"
        for peak in scan.overflow
    ]
    if scan.near_limit:
        names = ", ".join(f"{p.node} {p.max_abs:.4g}" for p in scan.near_limit[:5])
        warnings.append(
            f"{model} FP16: {len(scan.near_limit)} FP16 tensors come within {NEAR_LIMIT_FACTOR:g}× of the FP16 limit "
            f"({names}): inputs beyond the calibration set may overflow"
        )
    return warnings


def _calibration_details(calib: CalibrationSet, cache: Path, key: str, reused: bool) -> dict[str, Any]:
    return {
        "source": calib.source,
        "demo": calib.demo,
        "count": calib.count,
        "requested": calib.requested,
        "skipped": calib.skipped,
        "digest": calib.digest,
        "cache": str(cache),
        "cache_key": key,
        "reused_cache": reused,
    }


def _int8_source(source: Path, sidecar: Sidecar, calib: CalibrationSet, config: RecipeConfig) -> Int8Source:
    chw = tuple(int(d) for d in sidecar.inputs[0].shape[1:])
    return Int8Source(
        onnx=source,
        model_name=source.stem,
        onnx_sha256=sidecar.sha256,
        input_name=sidecar.inputs[0].name,
        input_chw=(chw[0], chw[1], chw[2]),
        static_batch=None if sidecar.batch.dynamic else sidecar.batch.max,
        calibration=calib,
        cache_dir=config.calibration.directory,
        recalibrate=config.recalibrate,
    )


def _cpu_int8(
    source: Path, sidecar: Sidecar, calib: CalibrationSet, label: ArtifactLabel, config: RecipeConfig, tmp: Path
) -> dict[str, Any]:
    from deploy.precision.cpu_int8 import HISTOGRAM_BINS, quantize_cpu_int8

    method = label.method or "entropy"
    if config.max_drop is not None:
        raise BadInput(
            f"{sidecar.model}: --max-drop searches the TensorRT-style INT8 only, not the CPU INT8 (U8S8)",
            hint="build the CPU INT8 without --max-drop, or use --target tensorrt with --max-drop",
        )
    result = quantize_cpu_int8(_int8_source(source, sidecar, calib, config), method=method)
    warnings = list(result.warnings)
    onnx.save_model(result.model, tmp)
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "target": "cpu",
        "format": "QDQ U8S8 (activations uint8 asymmetric, weights int8 symmetric per channel, 7-bit)",
        "method": method,
        "histogram_bins": HISTOGRAM_BINS if method != "max" else None,
        "activation_ranges": result.ranges,
        "quantized_nodes": len(result.quantized_nodes),
        "weight_bits": result.weight_bits,
        "built_on_isa": cpu_isa().level,
        "calibration": _calibration_details(calib, result.cache_path, result.cache_key, result.reused_cache)
        | {"images_used": result.images_used},
        "warnings": warnings,
    }


def _int8(
    source: Path, sidecar: Sidecar, calib: CalibrationSet, label: ArtifactLabel, config: RecipeConfig, tmp: Path
) -> dict[str, Any]:
    from deploy.precision.int8 import quantize_int8

    method = label.method or "entropy"
    assert method != "percentile", "ModelOpt offers entropy and max; deploy.builder refuses percentile for TensorRT"
    result = quantize_int8(
        _int8_source(source, sidecar, calib, config), method=method, high_precision=config.high_precision
    )
    budget: dict[str, Any] = {}
    if config.max_drop is not None:
        chosen, budget = _within_budget(source, sidecar, config, method, result.model)
        onnx.save_model(chosen, tmp)
    else:
        onnx.save_model(result.model, tmp)
    warnings = list(result.warnings)
    compute = len(result.quantized_nodes) + len(result.high_precision_nodes)
    if compute and len(result.quantized_nodes) / compute < MIN_QUANTIZED_SHARE:
        warnings.append(
            f"only {len(result.quantized_nodes)} of {compute} Conv/Gemm layers of {sidecar.model} got Q/DQ: "
            "this INT8 build is mostly high precision"
        )
    return budget | {
        "tool": "modelopt.onnx.quantization",
        "modelopt": modelopt_version(),
        "method": method,
        "high_precision": config.high_precision,
        "qdq_pairs": result.qdq_pairs,
        "quantized_nodes": len(result.quantized_nodes),
        "high_precision_nodes": list(result.high_precision_nodes),
        "calibration": _calibration_details(calib, result.cache_path, result.cache_key, result.reused_cache),
        "target": "tensorrt",
        "warnings": warnings,
    }


def _within_budget(
    source: Path,
    sidecar: Sidecar,
    config: RecipeConfig,
    method: Method,
    full: onnx.ModelProto,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The requested calibration method's graph searched (only that one: the artifact's label names its method; to
    compare, build again with the other --calib-method)."""
    from deploy.harness.heldout import held_out_set
    from deploy.precision.budget import BudgetNotMet, search_budget

    max_drop = config.max_drop
    assert max_drop is not None
    held = held_out_set(sidecar, images=config.budget_images, count=None)
    fp32 = onnx.load(source)

    result = search_budget(
        {method: full},
        fp32,
        images=held.arrays,
        labels=held.labels,
        input_name=sidecar.inputs[0].name,
        max_drop=max_drop,
    )
    if not result.within_budget:
        raise BudgetNotMet(sidecar.model, result)
    details: dict[str, Any] = {"budget": budget_record(result, held.source)}
    return result.model, details


def budget_record(result: BudgetResult, images: str) -> dict[str, Any]:
    """The decision table a sidecar and a report carry."""
    return {
        "metric": result.metric,
        "max_drop": result.max_drop,
        "images": images,
        "fp32_score": result.fp32_score,
        "fp32_latency_ms": round(result.fp32_latency_ms, 4),
        "method": result.method,
        "excluded": list(result.chosen.excluded),
        "quantized_layers": result.quantized_layers,
        "seconds": result.seconds,
        "steps": [
            {
                "step": s.step,
                "method": s.method,
                "excluded": list(s.excluded),
                "score": s.score,
                "drop": s.drop,
                "latency_ms": round(s.latency_ms, 4),
            }
            for s in result.steps
        ],
        "sensitivity": {
            m: [{"node": x.node, "output_error": x.output_error, "gain": x.gain} for x in ranked[:10]]
            for m, ranked in result.sensitivities.items()
        },
    }
