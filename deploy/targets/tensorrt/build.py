"""Compile a typed ONNX (from `deploy build`) into a TensorRT plan: one strongly typed path for 10.x and 11.x.

Precision comes from the ONNX (FP16 initializers, INT8 Q/DQ); the builder is never asked for FP16/INT8 flags or
calibrators, which TensorRT 11 removed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from deploy.errors import BadInput, DeployError, ExportFailed, first_line
from deploy.files import Staging, sha256_file
from deploy.sidecar import Sidecar, TargetInfo
from deploy.targets.base import TargetOptions
from deploy.targets.tensorrt.api import TensorRTInfo, dims, info, logger, trt
from deploy.targets.tensorrt.gpu import gpu_info
from deploy.targets.tensorrt.inspect import LayerPrecision, layer_precision

log = logging.getLogger(__name__)

HardwareCompatibility = Literal["none", "ampere_plus", "same_compute_capability"]
GIB = 1 << 30


@dataclass(frozen=True)
class Profile:
    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class PlanOptions(TargetOptions):
    """trtexec's build options as `deploy build --target tensorrt` takes them."""

    target: ClassVar[str] = "tensorrt"

    profile: Profile | None = None  # None: the ONNX's own batch range, optimised for min(8, max)
    workspace_gib: float = 4.0
    builder_optimization_level: int = 3
    timing_cache: Path | None = None  # None: <engines>/timing.cache
    version_compatible: bool = False
    hardware_compatibility: HardwareCompatibility = "none"
    verbose: bool = False


@dataclass(frozen=True)
class PlanResult:
    """A plan written to `path` (a work folder until deploy.builder publishes it) with its sidecar."""

    path: Path
    sidecar: Sidecar
    layers: LayerPrecision | None  # None: the engine inspector failed (the plan itself is fine)
    seconds: float
    warnings: tuple[str, ...]


class ParserError(ExportFailed):
    """TensorRT's ONNX parser rejected a node."""


def parse_shape_spec(text: str) -> dict[str, tuple[int, ...]]:
    """trtexec's spelling, `input:1x3x224x224[,other:...]`, into {name: shape}."""
    shapes = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, dims = item.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError(item)
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise BadInput(f"shape {item!r} is not NAME:DxDxD", hint="write e.g. input:8x3x224x224") from None
    return shapes


def resolve_profile(sidecar: Sidecar, requested: Profile | None) -> Profile:
    if not sidecar.batch.dynamic:
        fixed = sidecar.batch.max
        if requested is not None and requested != Profile(fixed, fixed, fixed):
            raise BadInput(
                f"{sidecar.artifact} has a static batch of {fixed}; a batch profile does not apply",
                hint="drop the batch options, or export with a dynamic batch",
            )
        return Profile(fixed, fixed, fixed)
    profile = requested or Profile(sidecar.batch.min, min(8, sidecar.batch.max), sidecar.batch.max)
    if not 1 <= profile.min <= profile.opt <= profile.max:
        raise BadInput(f"batch profile {profile} must satisfy 1 <= min <= opt <= max", hint="fix --min/--opt/--max")
    if profile.max > sidecar.batch.max:
        raise BadInput(
            f"--max-batch {profile.max} exceeds the {sidecar.batch.max} the ONNX was exported for",
            hint=f"re-export with --max-batch {profile.max} or lower the profile",
        )
    return profile


def build_plan(onnx: Path, sidecar: Sidecar, config: PlanOptions, *, out: Path) -> PlanResult:
    """Build the plan of the typed ONNX `onnx` (described by `sidecar`) into `out`; the timing cache is updated."""
    started = time.perf_counter()
    profile = resolve_profile(sidecar, config.profile)
    if config.timing_cache is not None and not config.timing_cache.parent.is_dir():
        raise BadInput(
            f"--timing-cache {config.timing_cache}: folder {config.timing_cache.parent} does not exist",
            hint="create it, or leave --timing-cache out (default: timing.cache in the --out-dir folder)",
        )
    if config.workspace_gib <= 0:
        raise BadInput(f"--workspace {config.workspace_gib} GiB must be positive", hint="pass --workspace 4")
    if not 0 <= config.builder_optimization_level <= 5:
        raise BadInput("--builder-opt-level takes 0 to 5", hint="3 is TensorRT's default")
    about = info()
    gpu = gpu_info()
    if gpu is None:
        raise DeployError("no NVIDIA GPU is usable here, so no TensorRT plan can be built", hint="run on a GPU host")

    trt_logger = logger(verbose=config.verbose)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(_network_flags(about))
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        details = "; ".join(f"node {e.node_name() or e.node()}: {e.desc()}" for e in errors[:3])
        raise ParserError(f"TensorRT's ONNX parser rejected {onnx}: {details}", hint="rerun with --debug")

    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * GIB))
    builder_config.builder_optimization_level = config.builder_optimization_level
    builder_config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if config.version_compatible:
        builder_config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if config.hardware_compatibility != "none":
        builder_config.hardware_compatibility_level = _hardware_level(config.hardware_compatibility)
    name, chw = sidecar.inputs[0].name, tuple(int(d) for d in sidecar.inputs[0].shape[1:])
    optimization = builder.create_optimization_profile()
    optimization.set_shape(name, dims((profile.min, *chw)), dims((profile.opt, *chw)), dims((profile.max, *chw)))
    builder_config.add_optimization_profile(optimization)
    _attach_timing_cache(builder_config, config.timing_cache)

    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise ExportFailed(
            f"TensorRT could not build {onnx} (workspace {config.workspace_gib} GiB)",
            hint="raise --workspace if the log mentions memory; rerun with --debug for TensorRT's log",
        )
    plan_bytes = bytes(serialized)
    out.write_bytes(plan_bytes)  # first: nothing after the build (inspector, timing cache) may lose the plan
    warnings: list[str] = []
    try:
        shapes = {name: (profile.opt, *chw)}
        layers: LayerPrecision | None = _inspect(
            trt_logger, plan_bytes, shapes, version_compatible=config.version_compatible
        )
    except Exception as exc:  # the plan is good; only the layer-precision report is lost
        layers = None
        warnings.append(f"{out.name}: the engine inspector failed ({first_line(exc)}); layer precisions unknown")
    if layers is not None:
        warnings.extend(_precision_warnings(sidecar, layers))
    if config.timing_cache is not None:
        warning = _save_timing_cache(builder_config, config.timing_cache)
        if warning:
            warnings.append(warning)
    seconds = time.perf_counter() - started
    plan_sidecar = dataclasses.replace(
        sidecar,
        artifact=out.name,
        sha256=sha256_file(out),
        size_bytes=out.stat().st_size,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        parity=None,
        label=dataclasses.replace(sidecar.label, target="tensorrt"),
        target=TargetInfo(
            name="tensorrt",
            version=about.version,
            source_onnx=str(onnx),
            source_sha256=sidecar.sha256,
            seconds=round(seconds, 3),
            settings={
                "api_path": about.api_path,
                "gpu": gpu.name,
                "compute_capability": gpu.compute_capability,
                "driver": gpu.driver,
                "cuda_driver": gpu.cuda_driver,
                "profile": dataclasses.asdict(profile),
                "workspace_gib": config.workspace_gib,
                "builder_optimization_level": config.builder_optimization_level,
                "version_compatible": config.version_compatible,
                "hardware_compatibility": config.hardware_compatibility,
                "layer_precision": None if layers is None else dataclasses.asdict(layers),
            },
        ),
    )
    for warning in warnings:
        log.warning(warning)
    return PlanResult(out, plan_sidecar, layers, seconds, tuple(warnings))


def _network_flags(about: TensorRTInfo) -> int:
    if about.major == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0  # 11.x: every network is strongly typed; the flag is deprecated and ignored


def _hardware_level(level: HardwareCompatibility) -> trt.HardwareCompatibilityLevel:
    return {
        "ampere_plus": trt.HardwareCompatibilityLevel.AMPERE_PLUS,
        "same_compute_capability": trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY,
    }[level]


def _attach_timing_cache(builder_config: trt.IBuilderConfig, path: Path | None) -> None:
    """Attach the timing cache at `path` (empty when absent). One that cannot be read (damaged, another TensorRT
    version) or that the builder refuses (set_timing_cache returns False: another GPU) is replaced by an empty one:
    a cache only saves build time, so it never fails a build."""
    if path is not None and path.is_file():
        cache = _read_timing_cache(builder_config, path)
        if cache is not None and builder_config.set_timing_cache(cache, False):
            return
        if cache is not None:
            log.warning("TensorRT refused the timing cache %s (another GPU or version); starting a new one", path)
    fresh = builder_config.create_timing_cache(b"")
    if fresh is None or not builder_config.set_timing_cache(fresh, False):
        log.warning("TensorRT would not take an empty timing cache; building without one")


def _read_timing_cache(builder_config: trt.IBuilderConfig, path: Path) -> trt.ITimingCache | None:
    try:
        cache = builder_config.create_timing_cache(path.read_bytes())
    except Exception as exc:  # pybind raises on a corrupt buffer (some versions return None instead)
        log.warning("TensorRT could not read the timing cache %s (%s); starting a new one", path, first_line(exc))
        return None
    if cache is None:
        log.warning("TensorRT could not read the timing cache %s; starting a new one", path)
    return cache


def _save_timing_cache(builder_config: trt.IBuilderConfig, path: Path) -> str | None:
    """Write the updated timing cache (shared by every build: replaced whole, never torn). A failure costs the
    next build time, never this plan: it comes back as a warning."""
    try:
        cache = builder_config.get_timing_cache()
        if cache is None:
            return f"no timing cache to save to {path} (TensorRT returned none); the next build starts without one"
        data = bytes(cache.serialize())
        with Staging() as staging:
            staging.path_for(path).write_bytes(data)
            staging.commit()
    except Exception as exc:
        return f"the timing cache could not be saved to {path} ({first_line(exc)}); the plan is unaffected"
    return None


def _inspect(
    trt_logger: trt.ILogger, plan: bytes, shapes: dict[str, tuple[int, ...]], *, version_compatible: bool
) -> LayerPrecision:
    """Layer precisions as built. The inspector reports tensor formats only for concrete shapes, so an execution
    context with every input at its optimisation shape is attached first (else "N/A due to dynamic shapes")."""
    runtime = trt.Runtime(trt_logger)
    if version_compatible:
        runtime.engine_host_code_allowed = True
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ExportFailed("TensorRT could not deserialize the plan it just built", hint="rerun with --debug")
    context = engine.create_execution_context()
    for name, shape in shapes.items():
        context.set_input_shape(name, dims(shape))
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    return layer_precision(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def _precision_warnings(sidecar: Sidecar, layers: LayerPrecision) -> tuple[str, ...]:
    precision = sidecar.precision_name
    if precision in ("fp16", "int8") and layers.mostly_fp32():
        return (
            f"{sidecar.artifact}: a {precision.upper()} build came out mostly FP32 "
            f"({layers.fp32} of {layers.counted} layers): TensorRT found no faster {precision.upper()} kernels "
            "or the Q/DQ placement blocks fusion; check the sidecar's layer_precision",
        )
    return ()
