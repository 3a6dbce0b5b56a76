"""What `deploy build` judges before it publishes: parity against eager, FP16 overflow, and the calibration inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import BadInput, ParityError
from deploy.exporter import ExportResult
from deploy.precision.calibration import stratified_sample
from deploy.precision.entropy import SIGNED_LEVELS, entropy_range
from deploy.precision.fp16_scan import FP16_MAX, scan_fp16_ranges


def test_build_refuses_to_publish_an_artifact_that_fails_parity(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default calibration/ folder (demo digits) and its cache land here
    engines = tmp_path / "engines"
    args = ["build", str(lenet5_export.onnx_path), "--int8", "--target", "cpu", "--calib-method", "max"]
    args += ["-o", str(engines)]
    failed = cli.invoke(app, [*args, "--min-cosine", "0.9999999"])  # INT8 cannot be that close
    assert failed.exit_code == ParityError.exit_code, failed.output
    assert "lenet5.int8-cpu-max.onnx failed parity" in failed.output and "--no-verify" in failed.output
    assert not engines.exists()  # nothing: no artifact, no temporary file, not even the folder it made

    passed = cli.invoke(app, [*args, "--json"])
    assert passed.exit_code == 0, passed.output
    sidecar = json.loads((engines / "lenet5.int8-cpu-max.json").read_text())
    record = sidecar["parity"]
    assert record["passed"] and record["samples"] > 100 and record["images"].startswith("sklearn digits")
    assert abs(record["artifact_accuracy"] - record["eager_accuracy"]) <= 0.003  # within 0.3 points
    assert record["cosine_min"] >= record["tolerance"]["min_cosine"]


def test_bounds_outside_zero_to_one_are_bad_options_not_parity_failures(
    cli: CliRunner, lenet5_export: ExportResult
) -> None:
    for command in (["verify", str(lenet5_export.onnx_path)], ["pipeline", "lenet5"], ["build", "lenet5"]):
        result = cli.invoke(app, [*command, "--min-cosine", "2"])
        assert result.exit_code == BadInput.exit_code and "--min-cosine 2.0 is outside 0-1" in result.output


def test_unsigned_entropy_keeps_the_bulk_and_clips_rare_outliers() -> None:
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.standard_normal(200_000), 0).astype(np.float32)
    bulk_max = float(relu.max())
    relu[:20] = 12.0  # a handful of outliers nearly three times past the bulk
    hist, edges = np.histogram(relu, bins=4096, range=(-12.0, 12.0))
    low, high = entropy_range(hist, edges, float(relu.min()), float(relu.max()))
    assert low == 0.0
    assert 0.9 * bulk_max < high < 6.0  # the half-normal's tail is kept, the outliers are not


def test_two_sided_entropy_searches_each_sign_on_its_own() -> None:
    """LeNet-5's input: background mass at -0.94, ink up to 2.15; a folded |x| search clipped the ink at 0.94."""
    rng = np.random.default_rng(1)
    background = np.full(150_000, -0.944, np.float32)
    ink = rng.uniform(0.0, 2.15, 30_000).astype(np.float32)
    values = np.concatenate([background, ink])
    hist, edges = np.histogram(values, bins=4096, range=(-2.15, 2.15))
    low, high = entropy_range(hist, edges, float(values.min()), float(values.max()))
    assert low == pytest.approx(-0.944, abs=0.01)
    assert high > 2.0


def test_u8_error_of_our_entropy_threshold_is_far_below_onnxruntimes() -> None:
    """ORT's search spreads 128 levels over both signs of a ReLU output (64 real ones) and clips far too much."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    rng = np.random.default_rng(2)
    relu = (np.maximum(rng.standard_normal(100_000), 0) * rng.exponential(1.0, 100_000)).astype(np.float32)

    def histogram(bins: int) -> tuple[np.ndarray, ...]:
        collector = HistogramCollector("entropy", False, bins, SIGNED_LEVELS, 99.99, "same")
        collector.collect({"relu": relu})
        return tuple(collector.histogram_dict["relu"])

    def u8_error(high: float) -> float:
        step = high / 255
        return float(np.mean((np.clip(np.round(relu / step), 0, 255) * step - relu) ** 2))

    hist, edges, low, high, _ = histogram(4096)
    ours = entropy_range(hist, edges, float(low), float(high))[1]
    # 1024 bins keep ORT's pure-Python search (one loop per candidate and level) to a few seconds.
    theirs = float(HistogramCollector.get_entropy_threshold(None, histogram(1024), SIGNED_LEVELS)[1])  # type: ignore[arg-type]
    assert theirs < ours < high
    assert u8_error(ours) < u8_error(theirs) / 10


def test_calibration_sample_spreads_over_class_folders(tmp_path: Path) -> None:
    files = []
    for label in ("ant", "bee", "cat", "dog"):
        for index in range(50):
            path = tmp_path / label / f"{index:03d}.jpg"
            files.append(path)
    chosen = stratified_sample(tmp_path, files, 20)
    assert len(chosen) == 20 and len(set(chosen)) == 20
    assert {p.parent.name for p in chosen} == {"ant", "bee", "cat", "dog"}
    assert all(sum(p.parent.name == label for p in chosen) == 5 for label in ("ant", "bee", "cat", "dog"))
    assert chosen == stratified_sample(tmp_path, list(reversed(files)), 20)  # seeded: the same set every time
    assert [p.name for p in chosen if p.parent.name == "ant"] != ["000.jpg", "001.jpg", "002.jpg", "003.jpg", "004.jpg"]
    many = [tmp_path / f"class{c:04d}" / "a.jpg" for c in range(1000)]  # ImageNet-like: more classes than images
    drawn = {p.parent.name for p in stratified_sample(tmp_path, many, 500)}
    assert len(drawn) == 500 and sum(name >= "class0500" for name in drawn) > 200  # not the first 500 by name


def _scaling_models(tmp_path: Path, factor: float) -> tuple[Path, onnx.ModelProto]:
    """An FP32 model y = relu(x·factor) and its FP16 twin storing the product in FP16 (as AutoCast would)."""
    scale = numpy_helper.from_array(np.array(factor, np.float32), "factor")
    nodes = [
        helper.make_node("Mul", ["x", "factor"], ["scaled"], name="scale"),
        helper.make_node("Relu", ["scaled"], ["y"]),
    ]
    io = (
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    source = helper.make_model(
        helper.make_graph(nodes, "fp32", *io, [scale]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path / "scale.onnx"
    onnx.save(source, path)
    half = numpy_helper.from_array(np.array(factor, np.float16), "factor16")
    fp16_nodes = [
        helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
        helper.make_node("Mul", ["x16", "factor16"], ["scaled"], name="scale"),
        helper.make_node("Relu", ["scaled"], ["y16"]),
        helper.make_node("Cast", ["y16"], ["y"], to=TensorProto.FLOAT),
    ]
    fp16 = helper.make_model(
        helper.make_graph(fp16_nodes, "fp16", *io, [half]), opset_imports=[helper.make_opsetid("", 17)]
    )
    return path, fp16


def test_fp16_scan_finds_activations_past_the_fp16_limit(tmp_path: Path) -> None:
    images = np.linspace(0.5, 2.0, 16, dtype=np.float32).reshape(4, 4)
    source, fp16 = _scaling_models(tmp_path, 60_000.0)
    scan = scan_fp16_ranges(source, fp16, input_name="x", images=images)
    assert not scan.passed and [p.node for p in scan.overflow] == ["scale"]
    assert scan.overflow[0].max_abs == pytest.approx(120_000.0) and scan.overflow[0].max_abs > FP16_MAX
    safe = scan_fp16_ranges(*_scaling_models(tmp_path, 3_000.0), input_name="x", images=images)
    assert safe.passed and [p.node for p in safe.near_limit] == ["scale"]  # 6000 > 65504/16
    all_fp32 = scan_fp16_ranges(source, onnx.load(source), input_name="x", images=images)  # AutoCast kept it all
    assert all_fp32.passed and all_fp32.fp16_tensors == 0
