"""`deploy pipeline MODEL`: export → build FP32/FP16/INT8 → verify → latency vs eager → one report."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.backends.onnxruntime_runner import OrtRunner
from deploy.errors import ParityError
from deploy.export import ExportConfig, ExportResult, export_model
from deploy.harness.bench import BenchConfig, LatencyStats, measure, rotating_feeds
from deploy.harness.eager import eager_runner
from deploy.harness.heldout import held_out_set
from deploy.harness.report import Report, ReportRow, environment
from deploy.harness.verify import ArtifactVerdict, VerifyConfig, VerifyResult, verify
from deploy.precision.build import BuildConfig, BuildResult, build
from deploy.precision.calibration import CalibrationConfig
from deploy.precision.int8 import CalibrationMethod, HighPrecision
from deploy.sidecar import Sidecar, package_versions

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class PipelineConfig:
    model: str
    weights: str | None = None
    export_dir: Path = Path("export")
    engines_dir: Path = Path("engines")
    reports_dir: Path = Path("reports")
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    methods: tuple[CalibrationMethod, ...] = ("entropy", "max")
    high_precision: HighPrecision = "fp32"
    images: Path | None = None
    count: int | None = None
    batches: tuple[int, ...] = (1, 8)
    bench: BenchConfig = field(default_factory=BenchConfig)


@dataclass(frozen=True)
class PipelineResult:
    export: ExportResult
    builds: tuple[BuildResult, ...]
    verification: VerifyResult
    report: Report
    report_markdown: Path
    report_json: Path


def run_pipeline(config: PipelineConfig, *, progress: Progress | None = None) -> PipelineResult:
    say = progress or (lambda _message: None)
    exported = export_model(
        ExportConfig(model=config.model, weights=config.weights, out_dir=config.export_dir), progress=say
    )
    builds = []
    for index, method in enumerate(config.methods or ("entropy",)):
        precisions = ("fp32", "fp16", "int8") if index == 0 else ("int8",)
        builds.append(
            build(
                BuildConfig(
                    targets=(str(exported.onnx_path),),
                    precisions=precisions,  # type: ignore[arg-type]
                    export_dir=config.export_dir,
                    engines_dir=config.engines_dir,
                    calibration=config.calibration,
                    method=method,
                    high_precision=config.high_precision,
                ),
                progress=say,
            )
        )
    artifacts = tuple(a for result in builds for a in result.artifacts)
    verification = verify(
        VerifyConfig(artifacts=tuple(a.path for a in artifacts), images=config.images, count=config.count),
        progress=say,
    )
    latency = _latency(exported, [a.path for a in artifacts], config, say)
    report = _report(exported.sidecar, builds, verification, latency, config)
    markdown, json_path = report.write(config.reports_dir / exported.sidecar.model)
    say(f"wrote {markdown} and {json_path}")
    result = PipelineResult(exported, tuple(builds), verification, report, markdown, json_path)
    if not report.passed:
        failed = [v for v in verification.verdicts if not v]
        raise ParityError(
            f"{config.model}: {', '.join(v.precision for v in failed)} failed parity against eager PyTorch "
            f"({failed[0].parity.summary()})",
            hint=f"see {markdown}; loosen with `deploy verify --min-cosine/--min-top1` if that is acceptable",
        )
    return result


def _latency(
    exported: ExportResult, artifacts: list[Path], config: PipelineConfig, say: Progress
) -> dict[str, dict[int, LatencyStats]]:
    import torch

    sidecar = exported.sidecar
    held = held_out_set(sidecar, images=config.images, count=None)
    batches = [b for b in config.batches if b <= sidecar.batch.max] or [1]
    feeds = {b: rotating_feeds(held.arrays, b, sidecar.inputs[0].name) for b in batches}
    threads = config.bench.threads
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    results: dict[str, dict[int, LatencyStats]] = {}
    try:
        with eager_runner(sidecar) as runner:
            say(f"timing eager PyTorch ({threads} threads)")
            results["eager"] = {b: measure(runner, feeds[b], config.bench) for b in batches}
        for path in artifacts:
            say(f"timing {path.name} with ONNX Runtime ({threads} threads)")
            with OrtRunner(path, intra_op_threads=threads) as runner:
                results[path.name] = {b: measure(runner, feeds[b], config.bench) for b in batches}
    finally:
        torch.set_num_threads(previous_threads)
    return results


def _report(
    source: Sidecar,
    builds: list[BuildResult],
    verification: VerifyResult,
    latency: dict[str, dict[int, LatencyStats]],
    config: PipelineConfig,
) -> Report:
    eager_latency = latency["eager"]
    verdicts: dict[str, ArtifactVerdict] = {Path(v.artifact).name: v for v in verification.verdicts}
    eager_accuracy = next((v.eager_accuracy for v in verification.verdicts), None)
    rows = [
        ReportRow(
            "eager",
            None,
            "fp32",
            "torch",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            eager_accuracy,
            eager_latency,
            {b: 1.0 for b in eager_latency},
        )
    ]
    for artifact in (a for result in builds for a in result.artifacts):
        verdict = verdicts[artifact.path.name]
        out = verdict.parity.outputs[0]
        stats = latency[artifact.path.name]
        rows.append(
            ReportRow(
                name=artifact.precision,
                artifact=str(artifact.path),
                precision=artifact.precision,
                backend=verdict.backend,
                size_bytes=artifact.sidecar.size_bytes,
                build_seconds=round(artifact.seconds, 3),
                passed=verdict.passed,
                cosine_min=out.cosine_min,
                top1_agreement=out.top1_agreement,
                top5_agreement=out.top5_agreement,
                max_abs=out.max_abs,
                accuracy=verdict.artifact_accuracy,
                latency=stats,
                speedup={b: eager_latency[b].p50_ms / stats[b].p50_ms for b in stats if b in eager_latency},
            )
        )
    warnings = tuple(dict.fromkeys(w for result in builds for w in result.warnings))
    versions = package_versions("torch", "onnx", "onnxruntime-gpu", "onnxruntime", "nvidia-modelopt")
    return Report(
        model=source.model,
        weights=dict(source.weights),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        images=verification.images,
        labelled=verification.labelled,
        environment=environment(config.bench.threads, config.bench.iterations, versions),
        rows=tuple(rows),
        warnings=warnings,
    )


__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline"]
