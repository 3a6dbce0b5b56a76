"""`deploy pipeline MODEL`: export → typed FP32/FP16/INT8 → compile per target → verify → interleaved timing vs
eager → one report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np

from deploy.backends.base import Runner
from deploy.backends.timing import Overhead
from deploy.builder import BuildConfig, BuildResult, build
from deploy.customization import Customization
from deploy.environment import environment
from deploy.errors import BadInput, ParityError, first_line
from deploy.exporter import DEFAULT_MAX_BATCH, ExportConfig, ExportResult, export_model
from deploy.files import ensure_writable_dir
from deploy.harness.heldout import demo_set, held_out_set
from deploy.harness.interleaved import (
    InterleavedConfig,
    InterleavedResult,
    bench,
    onnxruntime_overhead,
)
from deploy.harness.peers import Peer
from deploy.harness.verify import (
    ArtifactVerdict,
    VerifyConfig,
    VerifyResult,
    check_judging,
    check_runner,
    eager_outputs,
    settle_verdict,
    tolerance_for,
    verify,
)
from deploy.precision.calibration import CalibrationConfig, calibration_set, check_calibration
from deploy.precision.int8 import CalibrationMethod, HighPrecision
from deploy.report.files import ReportFiles, write_report
from deploy.report.model import BenchSettings, Report, ReportRow
from deploy.sidecar import Method, Sidecar, package_versions
from deploy.targets import TARGETS, get_target

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class PipelineConfig:
    model: str
    weights: str | None = None
    custom: Customization = field(default_factory=Customization)  # a fine-tune's classes, labels, preprocessing
    export_dir: Path = Path("export")
    engines_dir: Path = Path("engines")
    reports_dir: Path = Path("reports")
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    methods: tuple[CalibrationMethod, ...] = ("entropy", "max")
    cpu_int8: bool = True  # also build the U8S8 INT8 of the CPU targets (ONNX Runtime, OpenVINO)
    # Deployment targets to build for; one that cannot compile here (TensorRT without a GPU, OpenVINO not
    # installed) contributes its typed ONNX only.
    targets: tuple[str, ...] = tuple(TARGETS)
    cpu_method: Method = "entropy"
    high_precision: HighPrecision = "fp32"
    images: Path | None = None
    count: int | None = None
    # Artifacts are filled in by the pipeline; batches, threads and durations are the user's.
    bench: InterleavedConfig = field(default_factory=lambda: InterleavedConfig(artifacts=(), duration_s=3.0))
    overhead: bool = True  # the ONNX Runtime runner vs a bare session.run at batch 1, reported
    peers: tuple[Peer, ...] = ()  # OpenVINO / torch.compile, timed and checked beside our artifacts
    overrides: dict[str, float | None] = field(default_factory=dict)  # atol / rtol / min_cosine / min_top1

    def __post_init__(self) -> None:
        """Every setting refused before the export starts (the bench settings check themselves)."""
        check_judging(self.count, self.overrides)
        if self.cpu_method not in get_args(Method):
            raise BadInput(
                f"--cpu-calib-method {self.cpu_method!r} is unknown", hint="choose entropy, max or percentile"
            )
        for method in self.methods:
            if method not in get_args(CalibrationMethod):
                raise BadInput(f"calibration method {method!r} is not one ModelOpt offers", hint="entropy or max")
        for name in self.targets:
            get_target(name)

    @property
    def max_batch(self) -> int:
        """The export's largest batch: the default range, widened to the largest batch timed so every one runs."""
        return max((DEFAULT_MAX_BATCH, *(self.bench.batches or ())))


@dataclass(frozen=True)
class PipelineResult:
    export: ExportResult
    builds: tuple[BuildResult, ...]
    verification: VerifyResult
    timing: InterleavedResult
    report: Report
    files: ReportFiles


def run_pipeline(config: PipelineConfig, *, progress: Progress | None = None) -> PipelineResult:
    say = progress or (lambda _message: None)
    check_calibration(config.calibration)  # a bad --calib-dir is refused before the export is written
    # Every folder the pipeline writes, before its work: an unwritable one is not found after minutes of it.
    ensure_writable_dir(config.reports_dir, option="--reports-dir")
    for folder in (config.export_dir, config.engines_dir):
        ensure_writable_dir(folder)
    export = ExportConfig(
        model=config.model,
        weights=config.weights,
        out_dir=config.export_dir,
        max_batch=config.max_batch,
        custom=config.custom,
    )
    exported = export_model(export, progress=say)
    builds = [build(recipe, progress=say) for recipe in _recipes(config, exported.onnx_path)]
    artifacts = tuple(a.path for result in builds for a in result.artifacts)
    verification = verify(
        VerifyConfig(artifacts, images=config.images, count=config.count, overrides=config.overrides),
        progress=say,
    )
    peer_runners, peer_verdicts, peer_warnings = _peers(config, exported.sidecar, exported.onnx_path, say)
    timing = bench(
        dataclasses.replace(config.bench, artifacts=artifacts, images=config.images),
        progress=say,
        extra=peer_runners,
    )
    overhead: tuple[Overhead, ...] = ()
    if config.overhead:
        say("measuring the runner's overhead against a bare session.run (batch 1)")
        overhead = (onnxruntime_overhead(artifacts[0], threads=config.bench.threads),)
    report = _report(exported.sidecar, builds, verification, timing, overhead, config)
    report = report.with_peers(tuple(_peer_row(peer, verdict, timing) for peer, verdict in peer_verdicts))
    report = dataclasses.replace(report, warnings=report.warnings + peer_warnings)
    withdrawn = [
        v.artifact for v in verification.verdicts if not settle_verdict(Path(v.artifact), v, verification.images)
    ]
    if withdrawn:
        warnings = tuple(f"{name} failed parity and was removed (the report keeps its numbers)" for name in withdrawn)
        report = dataclasses.replace(report, warnings=report.warnings + warnings)
    files = write_report(report, config.reports_dir / exported.sidecar.model)
    say(f"wrote {files.markdown}, {files.json} and {files.png}")
    result = PipelineResult(exported, tuple(builds), verification, timing, report, files)
    if not report.passed:
        failed = [v for v in verification.verdicts if not v]
        raise ParityError(
            f"{config.model}: {', '.join(v.precision for v in failed)} failed parity against eager PyTorch "
            f"({failed[0].parity.summary()}) and {'was' if len(failed) == 1 else 'were'} removed",
            hint=f"see {files.markdown}; calibrate on your own images with --calib-dir DIR, try "
            f"--cpu-calib-method, or if that loss is acceptable loosen the bounds, e.g. "
            f"`deploy pipeline {config.model} --min-cosine 0.98 --min-top1 0.8`",
        )
    return result


def _recipes(config: PipelineConfig, source: Path) -> list[BuildConfig]:
    """FP32 and FP16 once for every target; INT8 per recipe: the TensorRT S8 Q/DQ per calibration method, the CPU
    targets' U8S8 with the CPU method. Each typed ONNX is built once and compiled for each target that takes it."""
    base = BuildConfig(
        sources=(str(source),),
        export_dir=config.export_dir,
        engines_dir=config.engines_dir,
        calibration=config.calibration,
        high_precision=config.high_precision,
        verify=None,  # judged below, all together, so the report shows failures beside passes
    )
    recipes = [dataclasses.replace(base, precisions=("fp32", "fp16"), targets=config.targets)]
    symmetric = tuple(name for name in config.targets if TARGETS[name].int8_recipe == "tensorrt")
    if symmetric:
        recipes += [
            dataclasses.replace(base, precisions=("int8",), targets=symmetric, method=method)
            for method in config.methods or ("entropy",)
        ]
    cpu_targets = tuple(name for name in config.targets if TARGETS[name].int8_recipe == "cpu")
    if config.cpu_int8 and cpu_targets:
        recipes.append(dataclasses.replace(base, precisions=("int8",), targets=cpu_targets, method=config.cpu_method))
    return recipes


def _report(
    source: Sidecar,
    builds: list[BuildResult],
    verification: VerifyResult,
    timing: InterleavedResult,
    overhead: tuple[Overhead, ...],
    config: PipelineConfig,
) -> Report:
    verdicts: dict[str, ArtifactVerdict] = {Path(v.artifact).name: v for v in verification.verdicts}
    eager_accuracy = next((v.eager_accuracy for v in verification.verdicts), None)
    rows = [
        ReportRow(name, None, "fp32", "torch", accuracy=eager_accuracy, **_timing(timing, name))
        for name in ("eager", "eager-cuda")
        if any(name in b.latency for b in timing.batches)
    ]
    for built in (a for result in builds for a in result.artifacts):
        verdict = verdicts[built.path.name]
        rows.append(
            ReportRow(
                name=built.name,
                label=built.label,
                artifact=str(built.path),
                precision=verdict.precision,
                backend=verdict.backend,
                size_bytes=built.sidecar.size_bytes,
                build_seconds=round(built.seconds, 3),
                **_parity(verdict),
                **_timing(timing, built.path.name),
            )
        )
    warnings = tuple(dict.fromkeys(w for result in builds for w in result.warnings))
    versions = package_versions(
        "torch", "onnx", "onnxruntime-gpu", "onnxruntime", "nvidia-modelopt", "tensorrt", "openvino"
    )
    bench = config.bench
    return Report(
        model=source.model,
        weights=source.weights.json_data(),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        images=verification.images,
        labelled=verification.labelled,
        environment=environment(timing.threads, versions, gpu=_gpu_name()),
        rows=tuple(rows),
        bench=BenchSettings(timing.threads, bench.duration_s, bench.per_round, bench.settle, bench.warmup_s),
        overhead=overhead,
        warnings=warnings,
    )


def _peers(
    config: PipelineConfig, sidecar: Sidecar, exported: Path, say: Progress
) -> tuple[dict[str, Runner], list[tuple[Peer, ArtifactVerdict]], tuple[str, ...]]:
    """Runners for the peers that can run here, each checked against eager on the held-out set first."""
    if not config.peers:
        return {}, [], ()
    held = held_out_set(sidecar, images=config.images, count=config.count)
    reference = eager_outputs(sidecar, held)
    images: np.ndarray | None = None  # the calibration images, loaded once and only for the NNCF peer
    runners: dict[str, Runner] = {}
    verdicts: list[tuple[Peer, ArtifactVerdict]] = []
    warnings: list[str] = []
    for peer in config.peers:
        say(f"checking peer {peer.name} against eager PyTorch")
        tolerance = tolerance_for(peer.precision, sidecar.weights.kind, config.overrides)
        try:
            if peer.kind == "nncf" and images is None:
                images = calibration_set(sidecar.preprocessing, demo_set(sidecar), config.calibration).arrays()
            runner = peer.runner(sidecar, exported, config.bench.threads, images)
            with runner:
                source = str(exported) if peer.source == "fp32" else sidecar.model
                verdicts.append((peer, check_runner(runner, source, peer.name, tolerance, sidecar, held, reference)))
        except Exception as exc:  # a peer is someone else's runtime: report its failure, never fail the pipeline
            log.debug("peer %s failed", peer.name, exc_info=True)
            warnings.append(f"peer {peer.name} skipped: {first_line(exc)}")
            continue
        runners[peer.name] = runner
    return runners, verdicts, tuple(warnings)


def _peer_row(peer: Peer, verdict: ArtifactVerdict, timing: InterleavedResult) -> ReportRow:
    return ReportRow(
        name=peer.name,
        artifact=verdict.artifact,
        precision=peer.precision,
        backend=peer.backend,
        peer=True,
        **_parity(verdict),
        **_timing(timing, peer.name),
    )


def _parity(verdict: ArtifactVerdict) -> dict[str, Any]:
    """A verdict against eager as ReportRow fields (the first output: these models have one)."""
    out = verdict.parity.outputs[0]
    return {
        "passed": verdict.passed,
        "cosine_min": out.cosine_min,
        "top1_agreement": out.top1_agreement,
        "top5_agreement": out.top5_agreement,
        "max_abs": out.max_abs,
        "accuracy": verdict.artifact_accuracy,
    }


def _timing(timing: InterleavedResult, name: str) -> dict[str, Any]:
    """One runner's latency, speed-up and GPU stages per batch, as ReportRow fields."""
    return {
        "latency": {b.batch: b.latency[name] for b in timing.batches if name in b.latency},
        "speedup": {b.batch: b.speedup[name] for b in timing.batches if name in b.speedup},
        "gpu": {b.batch: b.gpu[name] for b in timing.batches if name in b.gpu},
    }


def _gpu_name() -> str | None:
    from deploy.targets.tensorrt.gpu import gpu_info

    info = gpu_info()
    return None if info is None else info.name


__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline"]
