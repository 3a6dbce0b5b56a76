"""`deploy build`: typed ONNX per precision (fp32 copy, FP16 AutoCast, INT8 Q/DQ) with sidecars, in engines/."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.util
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx

from deploy.backends.tensorrt.api import info
from deploy.backends.tensorrt.build import HardwareCompatibility, PlanConfig, PlanResult, Profile, build_plan
from deploy.backends.tensorrt.gpu import gpu_info
from deploy.environment import cpu_isa
from deploy.errors import BadInput, MissingDependency, ParityError
from deploy.files import Staging, ensure_writable_dir, sha256_file
from deploy.harness.verify import ArtifactVerdict, Judge, ParityCheck, verdict_record
from deploy.precision.calibration import CalibrationConfig, CalibrationSet, Int8Source, calibration_set
from deploy.precision.fp16_scan import NEAR_LIMIT_FACTOR, Fp16Scan, scan_fp16_ranges
from deploy.precision.int8 import HighPrecision
from deploy.precision.modelopt_run import modelopt_version
from deploy.precision.typing_info import initializer_types
from deploy.sidecar import Sidecar, load_sidecar, sidecar_path, withdraw

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "int8"]
Method = Literal["entropy", "max", "percentile"]
# tensorrt: symmetric S8 Q/DQ by ModelOpt (what TensorRT builds); cpu: U8S8 QDQ for ONNX Runtime's integer kernels.
Int8Target = Literal["tensorrt", "cpu"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")
Progress = Callable[[str], None]
AUTOCAST_REFERENCE_IMAGES = 8
# An INT8 build where fewer than this share of Conv/Gemm layers got Q/DQ is mostly FP32 in disguise.
MIN_QUANTIZED_SHARE = 0.5


@dataclass(frozen=True)
class BuildConfig:
    targets: tuple[str, ...] = ()
    precisions: tuple[Precision, ...] = PRECISIONS
    export_dir: Path = Path("export")
    engines_dir: Path = Path("engines")
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    method: Method = "entropy"
    target: Int8Target = "tensorrt"
    high_precision: HighPrecision = "fp32"
    recalibrate: bool = False
    weights: str | None = None  # for models exported on demand (None: the model's default weights)
    plans: PlanOptions = field(default_factory=lambda: PlanOptions())
    # Each artifact is judged against eager PyTorch before it is published; None (--no-verify) skips that.
    verify: ParityCheck | None = field(default_factory=ParityCheck)


@dataclass(frozen=True)
class PlanOptions:
    """How typed ONNX become TensorRT plans when TensorRT and a GPU are present (see backends/tensorrt/build)."""

    compile: bool | None = None  # None: whenever TensorRT and a GPU are usable; False: never
    profile: Profile | None = None
    workspace_gib: float = 4.0
    builder_optimization_level: int = 3
    timing_cache: Path | None = None  # None: <engines>/timing.cache
    version_compatible: bool = False
    hardware_compatibility: HardwareCompatibility = "none"


@dataclass(frozen=True)
class BuiltArtifact:
    model: str
    precision: str
    path: Path
    sidecar_path: Path
    sidecar: Sidecar
    seconds: float
    reused_calibration: bool | None = None
    verdict: ArtifactVerdict | None = None  # None: built with --no-verify

    @property
    def published(self) -> bool:
        return self.verdict is None or self.verdict.passed


@dataclass(frozen=True)
class BuildResult:
    artifacts: tuple[BuiltArtifact, ...]
    exported: tuple[Path, ...]
    warnings: tuple[str, ...]
    tensorrt: str
    plans: tuple[PlanResult, ...] = ()
    rejected: tuple[BuiltArtifact, ...] = ()  # failed parity against eager: built, judged, never published

    def raise_for_parity(self) -> None:
        """ParityError naming every rejected artifact; the published ones stay as they are."""
        if not self.rejected:
            return
        first = self.rejected[0]
        assert first.verdict is not None
        names = ", ".join(a.path.name for a in self.rejected)
        raise ParityError(
            f"{names} failed parity against eager PyTorch and {'was' if len(self.rejected) == 1 else 'were'} not "
            f"written ({first.verdict.parity.summary()})",
            hint="calibrate on your own images with --calib-dir DIR or try --calib-method; loosen with "
            "--min-cosine/--min-top1 if that is acceptable; --no-verify writes it unjudged",
        )


def artifact_label(precision: Precision, method: Method, target: Int8Target = "tensorrt") -> str:
    if precision != "int8":
        return precision
    parts = ["int8"] + (["cpu"] if target == "cpu" else []) + ([method] if method != "entropy" else [])
    return "-".join(parts)


def build(config: BuildConfig, *, progress: Progress | None = None) -> BuildResult:
    say = progress or (lambda _message: None)
    if not config.precisions:
        raise BadInput("no precision selected", hint="pass --fp32, --fp16, --int8 or --all")
    if config.method == "percentile" and config.target != "cpu" and "int8" in config.precisions:
        raise BadInput(
            "percentile calibration is available for the CPU INT8 target only (ModelOpt offers entropy and max)",
            hint="add --target cpu, or choose --calib-method entropy or max",
        )
    created = not config.engines_dir.exists()
    engines = ensure_writable_dir(config.engines_dir)
    sources, exported = _resolve_sources(config, say)
    warnings: list[str] = []
    artifacts: list[BuiltArtifact] = []
    rejected: list[BuiltArtifact] = []
    for source in sources:
        sidecar = load_sidecar(source)
        judge = None if config.verify is None else Judge(sidecar, config.verify, progress=say)
        calib: CalibrationSet | None = None
        if {"fp16", "int8"} & set(config.precisions):
            from deploy.zoo import get_spec

            spec = get_spec(sidecar.model)
            calib = calibration_set(sidecar.preprocessing, spec.sample_set, config.calibration)
            warnings.extend(w for w in calib.warnings if w not in warnings)
        for precision in config.precisions:
            say(f"building {sidecar.model} {artifact_label(precision, config.method, config.target)}")
            built = _build_one(source, sidecar, precision, calib, engines, config, judge)
            (artifacts if built.published else rejected).append(built)
            warnings.extend(built.sidecar.precision.get("warnings", []) if built.sidecar.precision else [])
    usable, status = tensorrt_status()
    plans: list[PlanResult] = []
    if config.plans.compile is not False and usable:
        # TensorRT takes symmetric INT8 only: the CPU target's U8 activations (zero points != 0) are not for it.
        for artifact in (a for a in artifacts if not a.precision.startswith("int8-cpu")):
            say(f"compiling {artifact.path.name} with TensorRT")
            plans.append(build_plan(_plan_config(artifact.path, engines, config.plans)))
            warnings.extend(plans[-1].warnings)
    elif config.plans.compile:
        raise MissingDependency(status, hint='install TensorRT on a GPU machine: pip install -e ".[tensorrt]"')
    if created and not artifacts:
        with contextlib.suppress(OSError):  # a folder this build made and left empty (all rejected) goes again
            engines.rmdir()
    return BuildResult(tuple(artifacts), tuple(exported), tuple(warnings), status, tuple(plans), tuple(rejected))


def _plan_config(onnx_path: Path, engines: Path, options: PlanOptions) -> PlanConfig:
    return PlanConfig(
        onnx=onnx_path,
        profile=options.profile,
        workspace_gib=options.workspace_gib,
        builder_optimization_level=options.builder_optimization_level,
        timing_cache=options.timing_cache or engines / "timing.cache",
        version_compatible=options.version_compatible,
        hardware_compatibility=options.hardware_compatibility,
    )


def _resolve_sources(config: BuildConfig, say: Progress) -> tuple[list[Path], list[Path]]:
    exported: list[Path] = []
    if not config.targets:
        sources = sorted(p for p in config.export_dir.glob("*.onnx")) if config.export_dir.is_dir() else []
        if not sources:
            raise BadInput(
                f"no exported ONNX models in {config.export_dir}",
                hint="name a model (`deploy build resnet18`) or export one first with `deploy export MODEL`",
            )
        return sources, exported
    sources = []
    for target in config.targets:
        path = Path(target)
        if target.endswith(".onnx") or path.is_file():
            if not path.is_file():
                raise BadInput(f"ONNX file {path} does not exist", hint="export it with `deploy export MODEL`")
            sources.append(path)
            continue
        from deploy.zoo import get_spec

        name = get_spec(target).name
        candidate = config.export_dir / f"{name}.onnx"
        if not candidate.is_file():
            from deploy.export import ExportConfig, export_model

            say(f"no {candidate}: exporting {name} first")
            export_config = ExportConfig(model=name, weights=config.weights, out_dir=config.export_dir)
            candidate = export_model(export_config, progress=say).onnx_path
            exported.append(candidate)
        sources.append(candidate)
    return sources, exported


def _build_one(
    source: Path,
    sidecar: Sidecar,
    precision: Precision,
    calib: CalibrationSet | None,
    engines: Path,
    config: BuildConfig,
    judge: Judge | None,
) -> BuiltArtifact:
    started = time.perf_counter()
    label = artifact_label(precision, config.method, config.target)
    target = engines / f"{source.stem}.{label}.onnx"
    details: dict[str, Any] = {
        "precision": precision,
        "label": label,
        "source_onnx": str(source),
        "source_sha256": sidecar.sha256,
    }
    reused = None
    with Staging() as staging:
        tmp = staging.path_for(target)
        if precision == "fp32":
            shutil.copyfile(source, tmp)
        elif precision == "fp16":
            assert calib is not None
            from deploy.precision.fp16 import convert_fp16

            images = calib.arrays()
            reference = images[:AUTOCAST_REFERENCE_IMAGES]
            result = convert_fp16(source, input_name=sidecar.inputs[0].name, reference_inputs=reference)
            onnx.save_model(result.model, tmp)
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
        else:
            assert calib is not None
            int8 = _cpu_int8 if config.target == "cpu" else _int8
            details |= int8(source, sidecar, calib, config, tmp)
            reused = details["calibration"]["reused_cache"]
        new_sidecar = dataclasses.replace(
            sidecar,
            artifact=target.name,
            sha256=sha256_file(tmp),
            size_bytes=tmp.stat().st_size,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            parity=None,
            precision=details | {"build_seconds": round(time.perf_counter() - started, 3)},
        )
        verdict = None
        if judge is not None:
            verdict = judge(tmp, new_sidecar, name=str(target))
            new_sidecar = dataclasses.replace(new_sidecar, parity=verdict_record(verdict, judge.images))
        if verdict is None or verdict.passed:
            staging.path_for(sidecar_path(target)).write_text(new_sidecar.to_json(), encoding="utf-8")
            staging.commit()
        else:  # an earlier build at this path is not what was asked for now: it must not stay looking valid
            withdraw(target)
    seconds = time.perf_counter() - started
    return BuiltArtifact(sidecar.model, label, target, sidecar_path(target), new_sidecar, seconds, reused, verdict)


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


def _int8_source(source: Path, sidecar: Sidecar, calib: CalibrationSet, config: BuildConfig) -> Int8Source:
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


def _cpu_int8(source: Path, sidecar: Sidecar, calib: CalibrationSet, config: BuildConfig, tmp: Path) -> dict[str, Any]:
    from deploy.precision.cpu_int8 import HISTOGRAM_BINS, quantize_cpu_int8

    result = quantize_cpu_int8(_int8_source(source, sidecar, calib, config), method=config.method)
    onnx.save_model(result.model, tmp)
    warnings = list(result.warnings)
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "target": "cpu",
        "format": "QDQ U8S8 (activations uint8 asymmetric, weights int8 symmetric per channel, 7-bit)",
        "method": config.method,
        "histogram_bins": HISTOGRAM_BINS if config.method != "max" else None,
        "activation_ranges": result.ranges,
        "quantized_nodes": len(result.quantized_nodes),
        "weight_bits": result.weight_bits,
        "built_on_isa": cpu_isa().level,
        "calibration": _calibration_details(calib, result.cache_path, result.cache_key, result.reused_cache)
        | {"images_used": result.images_used},
        "warnings": warnings,
    }


def _int8(source: Path, sidecar: Sidecar, calib: CalibrationSet, config: BuildConfig, tmp: Path) -> dict[str, Any]:
    from deploy.precision.int8 import quantize_int8

    assert config.method != "percentile"  # refused in build()
    result = quantize_int8(
        _int8_source(source, sidecar, calib, config), method=config.method, high_precision=config.high_precision
    )
    onnx.save_model(result.model, tmp)
    warnings = list(result.warnings)
    compute = len(result.quantized_nodes) + len(result.high_precision_nodes)
    if compute and len(result.quantized_nodes) / compute < MIN_QUANTIZED_SHARE:
        warnings.append(
            f"only {len(result.quantized_nodes)} of {compute} Conv/Gemm layers of {sidecar.model} got Q/DQ: "
            "this INT8 build is mostly high precision"
        )
    for warning in warnings:
        log.warning(warning)
    return {
        "tool": "modelopt.onnx.quantization",
        "modelopt": modelopt_version(),
        "method": config.method,
        "high_precision": config.high_precision,
        "qdq_pairs": result.qdq_pairs,
        "quantized_nodes": len(result.quantized_nodes),
        "high_precision_nodes": list(result.high_precision_nodes),
        "calibration": _calibration_details(calib, result.cache_path, result.cache_key, result.reused_cache),
        "target": "tensorrt",
        "warnings": warnings,
    }


def tensorrt_status() -> tuple[bool, str]:
    """Whether plans can be compiled here, and the one line that says so."""
    if importlib.util.find_spec("tensorrt") is None:
        return False, (
            "TensorRT is not installed: built typed ONNX only (ONNX Runtime runs it anywhere); "
            'compile .plan engines on a GPU machine with pip install -e ".[tensorrt]"'
        )
    try:
        about = info()
    except MissingDependency as exc:
        return False, f"{exc.message}: built typed ONNX only"
    if gpu_info() is None:
        return False, f"TensorRT {about.version} is installed but no NVIDIA GPU is usable: built typed ONNX only"
    return True, f"TensorRT {about.version} ({about.api_path}) compiled the typed ONNX into .plan engines"
