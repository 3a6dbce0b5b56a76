"""Every option either takes effect or is refused: bad numbers and combinations end in exit 2 (a missing runtime in
exit 5) naming the option and its value, before any work or write, and never as a parity failure or exit 70."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import BadInput, MissingDependency
from deploy.exporter import ExportConfig, ExportResult
from deploy.files import sha256_file
from deploy.harness.compare import Tolerance
from deploy.harness.interleaved import InterleavedConfig
from deploy.pipeline import PipelineConfig
from deploy.targets.tensorrt.target import TensorRT


def _refused(result, code: int, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "1e9"])
def test_timing_durations_must_be_finite_positive_and_bounded(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)  # the pipeline's default folders would land here
    bench = cli.invoke(app, ["bench", str(lenet5_export.onnx_path), "--duration", value])
    _refused(bench, BadInput.exit_code, "--duration", "fix:")
    pipeline = cli.invoke(app, ["pipeline", "lenet5", "--duration", value])
    _refused(pipeline, BadInput.exit_code, "--duration")
    assert not list(tmp_path.iterdir())  # nothing exported, built or reported


def test_thread_counts_beyond_the_cores_here_are_refused(cli: CliRunner, lenet5_export: ExportResult) -> None:
    _refused(cli.invoke(app, ["bench", str(lenet5_export.onnx_path), "--threads", "100000"]), 2, "--threads 100000")


def test_export_static_with_a_batch_range_is_refused_before_writing(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "export"
    static = cli.invoke(app, ["export", "lenet5", "-o", str(out), "--static", "--max-batch", "8"])
    _refused(static, BadInput.exit_code, "--max-batch 8", "--static --batch 8")
    dynamic = cli.invoke(app, ["export", "lenet5", "-o", str(out), "--batch", "8"])
    _refused(dynamic, BadInput.exit_code, "--batch 8", "--static")
    for args in (
        ["--max-batch", "0"],
        ["--max-batch", "100000"],
        ["--samples", "5000"],
        ["--no-verify", "--atol", "1"],
    ):
        _refused(cli.invoke(app, ["export", "lenet5", "-o", str(out), *args]), BadInput.exit_code, args[-2])
    assert not out.exists()


def test_build_targets_take_effect_or_are_refused(cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path) -> None:
    onnx = str(lenet5_export.onnx_path)
    out = tmp_path / "engines"
    # ONNX Runtime (alias cpu) has no compile step: --compile/--no-compile would be ignored, so they are refused.
    _refused(cli.invoke(app, ["build", onnx, "--fp16", "-t", "cpu", "--compile", "-o", str(out)]), 2, "--compile")
    # Options of a stage that does not run are refused too, not ignored.
    for args in (["--fp16", "--calib-method", "max"], ["--fp32", "--high-precision", "fp16"],
                 ["--fp16", "--no-verify", "--min-cosine", "0.5"], ["--fp16", "--workspace", "inf"]):  # fmt: skip
        _refused(cli.invoke(app, ["build", onnx, *args, "-o", str(out)]), BadInput.exit_code, args[-2])
    assert not out.exists()
    # The alias takes effect: the FP16 typed ONNX is published as the onnxruntime artifact, and the CLI says so.
    built = cli.invoke(app, ["-q", "build", onnx, "--fp16", "-t", "cpu", "--no-verify", "-o", str(out), "--json"])
    assert built.exit_code == 0, built.output
    (artifact,) = json.loads(built.stdout)["payload"]["artifacts"]
    assert artifact["label"]["target"] == "onnxruntime" and artifact["path"].endswith("lenet5.fp16.onnx")


def test_bench_batch_beyond_the_export_range_is_refused(cli: CliRunner, lenet5_export: ExportResult) -> None:
    result = cli.invoke(app, ["bench", str(lenet5_export.onnx_path), "--batch", "1,64", "--duration", "0.1"])
    _refused(result, BadInput.exit_code, "--batch 64", str(lenet5_export.onnx_path), "dynamic batch 1-32")
    assert "--max-batch 64" in result.output  # the fix: re-export with the range wanted
    assert "timing" not in result.output  # refused before any runner started


def test_samples_counts_are_checked_against_what_exists(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    cases = [
        (["--photos", "-1"], "--photos -1"),  # once wrote 15 photos (a slice from the end)
        (["--photos", "17"], "--photos 17"),  # there are 16
        (["--digits", "-1"], "--digits -1"),
        (["--photos", "0", "--digits", "0"], "nothing"),
    ]
    for args, named in cases:
        _refused(cli.invoke(app, ["samples", str(out), *args]), BadInput.exit_code, named)
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--min-cosine", "2", "--min-cosine 2.0 is outside 0-1"),
        ("--min-cosine", "nan", "--min-cosine nan"),
        ("--min-top1", "99", "--min-top1 99.0 is outside 0-1"),
        ("--atol", "-1", "--atol -1.0"),
        ("--rtol", "inf", "--rtol inf"),
        ("--count", "0", "--count 0"),
    ],
)
def test_verify_tolerances_out_of_range_are_bad_options_not_parity_failures(
    cli: CliRunner, lenet5_export: ExportResult, option: str, value: str, named: str
) -> None:
    result = cli.invoke(app, ["verify", str(lenet5_export.onnx_path), option, value])
    _refused(result, BadInput.exit_code, named)
    assert "parity" not in result.output and "held-out" not in result.output  # refused before the judge ran


def test_the_python_api_refuses_what_the_cli_refuses() -> None:
    for make in (
        lambda: InterleavedConfig(artifacts=(), duration_s=math.inf),
        lambda: InterleavedConfig(artifacts=(), batches=(0,)),
        lambda: ExportConfig(model="lenet5", static=True, max_batch=8),
        lambda: Tolerance(atol=-1.0),
        lambda: Tolerance(min_cosine=math.nan),
    ):
        with pytest.raises(BadInput):
            make()
    # The pipeline's --batch takes effect: its export covers the largest batch it times.
    assert PipelineConfig(model="lenet5").max_batch == 32
    assert PipelineConfig(model="lenet5", bench=InterleavedConfig(artifacts=(), batches=(1, 64))).max_batch == 64


@pytest.fixture()
def plan_here(lenet5_export: ExportResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A .plan with a valid sidecar, on a machine where the TensorRT target reports itself unusable (forced, so the
    test means the same on a GPU machine)."""
    plan = tmp_path / "lenet5.fp16.plan"
    plan.write_bytes(b"a serialized engine")
    sidecar = json.loads(lenet5_export.sidecar_path.read_text())
    sidecar |= {"artifact": plan.name, "sha256": sha256_file(plan), "size_bytes": plan.stat().st_size}
    (tmp_path / "lenet5.fp16.plan.json").write_text(json.dumps(sidecar))
    monkeypatch.setattr(
        TensorRT,
        "availability",
        lambda self: (False, 'TensorRT is not installed (pip install -e ".[tensorrt]" on a GPU machine)'),
    )
    return plan


@pytest.mark.parametrize("command", ["bench", "infer", "verify"])
def test_a_plan_without_tensorrt_is_a_missing_dependency_before_any_work(
    cli: CliRunner, plan_here: Path, digit_files: list[tuple[Path, int]], command: str
) -> None:
    args = [command, str(plan_here)] + ([str(digit_files[0][0])] if command == "infer" else [])
    result = cli.invoke(app, args)
    _refused(result, MissingDependency.exit_code, str(plan_here), '.[tensorrt]"', "NVIDIA GPU", "lenet5.fp16.onnx")
    assert "eager" not in result.output  # refused before eager PyTorch ran (or set up CUDA)


def test_build_weights_that_differ_from_the_existing_export_are_refused(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    engines = tmp_path / "engines"
    export_dir = lenet5_export.onnx_path.parent
    args = ["build", "lenet5", "--fp32", "--export-dir", str(export_dir), "--out-dir", str(engines)]
    result = cli.invoke(app, [*args, "--weights", "random"])
    _refused(result, BadInput.exit_code, "--weights random", "deploy export lenet5 --weights random")
    assert not engines.exists()
    same = lenet5_export.sidecar.weights.name
    assert cli.invoke(app, [*args, "--weights", same, "--no-verify"]).exit_code == 0


def test_pipeline_refuses_a_missing_calibration_folder_before_exporting(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["pipeline", "lenet5", "--calib-dir", str(tmp_path / "nowhere")])
    _refused(result, BadInput.exit_code, "nowhere", "--calib-dir")
    assert not list(tmp_path.iterdir())


def test_weights_are_compared_by_the_name_an_export_records_not_by_spelling(tmp_path: Path) -> None:
    from deploy.zoo import get_spec
    from deploy.zoo.weights import recorded_name

    resnet50 = get_spec("resnet50")
    assert recorded_name(resnet50, "DEFAULT") == "ResNet50_Weights.IMAGENET1K_V2"
    assert recorded_name(resnet50, "IMAGENET1K_V1") == recorded_name(resnet50, "ResNet50_Weights.IMAGENET1K_V1")
    assert recorded_name(resnet50, "Random") == "random"
    checkpoint = tmp_path / "fine_tuned.pt"
    assert recorded_name(resnet50, str(checkpoint)) == str(checkpoint.resolve())


def test_build_weights_with_onnx_files_only_are_refused(cli: CliRunner, lenet5_export: ExportResult) -> None:
    result = cli.invoke(app, ["build", str(lenet5_export.onnx_path), "--weights", "random"])
    _refused(result, BadInput.exit_code, "--weights random", "no model was named")
