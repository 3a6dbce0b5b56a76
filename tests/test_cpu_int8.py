"""`deploy build --int8 --target cpu`: ONNX Runtime's U8S8 QDQ, real entropy/percentile calibration, range cache."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

import deploy.precision.calibration as calibration_module
from deploy.builder import BuildConfig, BuiltArtifact, build
from deploy.cli import app
from deploy.errors import BadInput
from deploy.exporter import ExportConfig, ExportResult, export_model
from deploy.harness.verify import VerifyConfig, verify
from deploy.precision.calibration import CalibrationConfig


def _config(export: ExportResult, root: Path, method: str = "entropy") -> BuildConfig:
    return BuildConfig(
        sources=(str(export.onnx_path),),
        precisions=("int8",),
        engines_dir=root / "engines",
        calibration=CalibrationConfig(directory=root / "calibration"),
        method=method,  # type: ignore[arg-type]
        targets=("onnxruntime",),
    )


@pytest.fixture(scope="module")
def cpu_builds(lenet5_export: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltArtifact]:
    root = tmp_path_factory.mktemp("cpu-int8")
    return {m: build(_config(lenet5_export, root, m)).artifacts[0] for m in ("entropy", "max", "percentile")}


def _ranges(artifact: BuiltArtifact) -> dict[str, tuple[float, float]]:
    cache = Path(artifact.sidecar.precision.calibration.cache)  # type: ignore[union-attr]
    return {k: (lo, hi) for k, (lo, hi) in json.loads(cache.read_text())["ranges"].items()}


def test_cpu_target_is_u8_activations_and_s8_per_channel_weights(cpu_builds: dict[str, BuiltArtifact]) -> None:
    artifact = cpu_builds["entropy"]
    assert artifact.name == "int8-cpu" and artifact.path.name == "lenet5.int8-cpu.onnx"
    model = onnx.load(artifact.path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    activations = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    assert activations and all(inits[q.input[2]].dtype == np.uint8 for q in activations)
    weights = [
        n for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim >= 2
    ]  # fmt: skip
    assert weights
    for dq in weights:
        values, scales = inits[dq.input[0]], inits[dq.input[1]]
        assert values.dtype == np.int8 and scales.shape == (values.shape[0],)  # symmetric, one scale per channel
        assert not inits[dq.input[2]].any()
    record = artifact.sidecar.precision
    assert record is not None and record.details["target"] == "cpu" and record.details["histogram_bins"] == 2048
    assert (
        record.details["quantized_nodes"] >= 4
    )  # lenet5: 2 conv + 3 gemm, ORT quantizes what ModelOpt's heuristics skip


def test_every_cpu_method_keeps_lenet5_accuracy(cpu_builds: dict[str, BuiltArtifact]) -> None:
    outcome = verify(VerifyConfig(artifacts=tuple(a.path for a in cpu_builds.values())))
    assert outcome.labelled and [v.precision for v in outcome.verdicts] == [
        "int8-cpu",
        "int8-cpu-max",
        "int8-cpu-percentile",
    ]
    for verdict in outcome.verdicts:
        assert verdict.passed, verdict.parity.summary()
        assert verdict.eager_accuracy is not None and verdict.artifact_accuracy is not None
        assert abs(verdict.artifact_accuracy - verdict.eager_accuracy) <= 0.01, verdict.artifact


def test_entropy_and_percentile_clip_where_max_keeps_the_extremes(cpu_builds: dict[str, BuiltArtifact]) -> None:
    """ORT's quantize_static would run entropy with 128 bins and 128 levels, which returns min-max; ours must not."""
    full = _ranges(cpu_builds["max"])
    for method in ("entropy", "percentile"):
        clipped = _ranges(cpu_builds[method])
        assert clipped.keys() == full.keys()
        tolerance = 1e-6
        assert all(full[k][0] - tolerance <= clipped[k][0] <= clipped[k][1] <= full[k][1] + tolerance for k in full)
        span = {k: (clipped[k][1] - clipped[k][0]) / (full[k][1] - full[k][0]) for k in full}
        assert min(span.values()) < 0.98, f"{method} calibration returned the min-max ranges"


def test_range_cache_is_reused_without_decoding_images(
    cpu_builds: dict[str, BuiltArtifact],
    lenet5_export: ExportResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = cpu_builds["max"]
    cache = Path(first.sidecar.precision.calibration.cache)  # type: ignore[union-attr]
    config = dataclasses.replace(
        _config(lenet5_export, tmp_path, "max"), calibration=CalibrationConfig(directory=cache.parent)
    )
    decoded: list[int] = []
    real = calibration_module.preprocess_batch
    monkeypatch.setattr(calibration_module, "preprocess_batch", lambda *a, **k: decoded.append(1) or real(*a, **k))
    again = build(config).artifacts[0]
    assert again.reused_calibration is True and decoded == []
    assert again.sidecar.sha256 == first.sidecar.sha256  # the same scales and zero points, bit for bit


def test_corrupt_range_cache_is_recalibrated_with_a_warning(lenet5_export: ExportResult, tmp_path: Path) -> None:
    config = _config(lenet5_export, tmp_path, "max")
    cache = Path(build(config).artifacts[0].sidecar.precision.calibration.cache)  # type: ignore[union-attr]
    cache.write_text("{not json")
    result = build(config)
    assert result.artifacts[0].reused_calibration is False
    assert any("not a readable range cache" in w for w in result.warnings)
    assert json.loads(cache.read_text())["ranges"]


def test_cache_from_another_ort_graph_is_recalibrated_with_a_warning(
    lenet5_export: ExportResult, tmp_path: Path
) -> None:
    config = _config(lenet5_export, tmp_path, "max")
    first = build(config).artifacts[0]
    cache = Path(first.sidecar.precision.calibration.cache)  # type: ignore[union-attr]
    stale = json.loads(cache.read_text()) | {"graph_sha256": "0" * 64}  # as if written by another onnxruntime
    cache.write_text(json.dumps(stale))
    result = build(config)
    assert result.artifacts[0].reused_calibration is False
    assert any("another ONNX Runtime graph" in w for w in result.warnings)
    assert json.loads(cache.read_text())["graph_sha256"] != "0" * 64
    assert result.artifacts[0].sidecar.sha256 == first.sidecar.sha256


def test_static_batch_export_gets_a_working_cpu_int8(tmp_path: Path) -> None:
    export = export_model(ExportConfig(model="lenet5", out_dir=tmp_path / "export", static=True, static_batch=4))
    artifact = build(_config(export, tmp_path, "max")).artifacts[0]
    record = artifact.sidecar.precision.calibration  # type: ignore[union-attr]
    assert record.images_used == record.count - record.count % 4
    verdict = verify(VerifyConfig(artifacts=(artifact.path,), count=40)).verdicts[0]
    assert verdict.passed, verdict.parity.summary()


def test_same_ranges_in_a_process_where_modelopt_already_quantized(
    cpu_builds: dict[str, BuiltArtifact], lenet5_export: ExportResult, tmp_path: Path
) -> None:
    """ModelOpt patches onnxruntime.quantization for the rest of its process; our recipe runs isolated from that."""
    build(dataclasses.replace(_config(lenet5_export, tmp_path / "trt"), targets=("tensorrt",)))  # ModelOpt here
    here = build(_config(lenet5_export, tmp_path / "here", "max")).artifacts[0]
    assert _ranges(here) == _ranges(cpu_builds["max"])
    fresh = subprocess.run(
        [sys.executable, "-m", "deploy", "-q", "build", str(lenet5_export.onnx_path), "--int8", "--target", "cpu",
         "--calib-method", "max", "-o", str(tmp_path / "fresh"), "--json"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(fresh.stdout)["payload"]["artifacts"][0]["sidecar"]["sha256"] == here.sidecar.sha256


def test_bad_target_and_method_combinations_are_refused(cli: CliRunner, lenet5_export: ExportResult) -> None:
    onnx_path = str(lenet5_export.onnx_path)
    result = cli.invoke(app, ["build", onnx_path, "--int8", "--calib-method", "percentile"])
    assert result.exit_code == BadInput.exit_code and "--target onnxruntime" in result.output
    result = cli.invoke(app, ["build", onnx_path, "--int8", "--target", "gpu"])
    assert result.exit_code == BadInput.exit_code and "--target 'gpu' is unknown" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "vgg16"])
def test_cpu_int8_of_large_models_meets_parity(name: str, tmp_path: Path) -> None:
    """Percentile: with random weights, entropy's KL clipping on 16 demo photos measured cosine 0.85 on resnet50."""
    export = export_model(ExportConfig(model=name, weights="random", out_dir=tmp_path / "export", parity_samples=2))
    result = build(_config(export, tmp_path, "percentile"))  # judged against eager by the build itself
    assert not result.rejected, [a.verdict.parity.summary() for a in result.rejected if a.verdict]
    artifact = result.artifacts[0]
    assert artifact.verdict is not None and artifact.verdict.passed
    assert artifact.sidecar.size_bytes < export.sidecar.size_bytes / 3  # INT8 weights, not FP32 behind Q/DQ
