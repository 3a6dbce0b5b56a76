"""`deploy import`: an ONNX classifier made by another tool (here: onnx.helper, no deploy exporter, no PyTorch
module) goes through import → build → verify → triton → infer → bench, judged against its own FP32 ONNX on ONNX
Runtime; and every file that is not an image classifier deploy can feed is refused before anything is written."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2
from typer.testing import CliRunner

from deploy.backends.torch_runner import TorchRunner
from deploy.cli import app
from deploy.errors import ArtifactError
from deploy.harness.reference import reference_runner
from deploy.imported import EAGER_REFERENCE, MODULE_REFERENCE, ONNX_REFERENCE, ONNX_ROW, reference_description
from deploy.preprocessing import Preprocessing, preprocess_batch
from deploy.samples import digits_split
from deploy.sidecar import WeightsInfo, load_sidecar
from deploy.targets.onnxruntime.runner import OrtRunner

SIDE = 16
MEAN, STD = 0.3, 0.3
FILTERS = 8


def _save(path: Path, nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
          outputs: list[onnx.ValueInfoProto], initializers: list[onnx.TensorProto]) -> Path:  # fmt: skip
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(
        graph, producer_name="another-tool", producer_version="1.0", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def _features(images: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """What the graph's Conv(pad 1) → Relu → MaxPool(2) → Flatten computes, in NumPy."""
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    conv = np.maximum(np.einsum("nchwij,kcij->nkhw", windows, filters), 0)
    n, k, h, w = conv.shape
    return conv.reshape(n, k, h // 2, 2, w // 2, 2).max(axis=(3, 5)).reshape(n, -1)


def _digits_classifier(path: Path, *, fitted: bool = True) -> Path:
    """A digits classifier another tool could have written: fixed random 3×3 filters and a softmax-regression head
    fitted on scikit-learn's digits training split (a few hundred NumPy steps: no training framework); unfitted,
    a head of random weights (for checks that never run it)."""
    rng = np.random.default_rng(0)
    filters = rng.standard_normal((FILTERS, 1, 3, 3)).astype(np.float32)
    coef = rng.standard_normal((FILTERS * (SIDE // 2) ** 2 + 1, 10)).astype(np.float32)
    if fitted:
        prep = Preprocessing(SIDE, SIDE, (MEAN,), (STD,), "bilinear", "L")
        train = digits_split().train
        targets = np.eye(10, dtype=np.float32)[[s.label for s in train]]
        features = _features(preprocess_batch([s.image for s in train], prep), filters)
        features = np.hstack([features, np.ones((len(features), 1), np.float32)])
        coef = np.zeros_like(coef)
        step = 0.5 / np.abs(features).max()
        for _ in range(150):
            logits = features @ coef
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            coef -= step * features.T @ (p / p.sum(axis=1, keepdims=True) - targets) / len(features)
    head_w, head_b = coef[:-1].T.copy(), coef[-1].copy()
    nodes = [
        helper.make_node("Conv", ["pixels", "w", "b"], ["conv"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "head_w", "head_b"], ["class_scores"], transB=1),
    ]
    initializers = [
        numpy_helper.from_array(filters, "w"),
        numpy_helper.from_array(np.zeros(FILTERS, np.float32), "b"),
        numpy_helper.from_array(head_w, "head_w"),
        numpy_helper.from_array(head_b, "head_b"),
    ]
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, SIDE, SIDE])
    scores = helper.make_tensor_value_info("class_scores", TensorProto.FLOAT, ["N", 10])
    return _save(path, nodes, [pixels], [scores], initializers)


def _rgb_classifier(path: Path, *, side: int | str = 24, classes: int = 4) -> Path:
    """Global average pooling and a linear head over 3 channels: the smallest RGB classifier."""
    weights = np.random.default_rng(1).standard_normal((classes, 3)).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "head"], ["logits"], transB=1),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, side, side])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])
    return _save(path, nodes, [image], [logits], [numpy_helper.from_array(weights, "head")])


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["--quiet", *args])


def _ok(*args: str) -> Any:
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder of its own for export/, engines/ and calibration/ (absent: the demo set)."""
    folder = tmp_path_factory.mktemp("imported")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield folder


@pytest.fixture(scope="module")
def classifier(workdir: Path) -> Path:
    source = workdir / "made-elsewhere"
    source.mkdir()
    (source / "digits.txt").write_text("".join(f"digit {d}\n" for d in range(10)))
    return _digits_classifier(source / "digits.onnx")


@pytest.fixture(scope="module")
def built(classifier: Path) -> dict[str, Any]:
    labels = classifier.with_name("digits.txt")
    result = _ok("import", str(classifier), "--mean", str(MEAN), "--std", str(STD), "--labels", str(labels))
    assert result.stdout.split() == ["export/digits.onnx", "export/digits.json"]
    assert "assumed: --resize-size 16" in result.output  # the one default taken, said out loud
    # A gray model of unknown origin is not scored against the digits' labels unless the user's own held-out
    # folder says what each image is: class subfolders named by its labels.
    held = Path("held-out")
    for index, sample in enumerate(digits_split().test):
        (held / f"digit {sample.label}").mkdir(parents=True, exist_ok=True)
        sample.image.save(held / f"digit {sample.label}" / f"{index}.png")
    build = _cli(
        "build",
        "digits",
        "--fp32",
        "--fp16",
        "--int8",
        "-t",
        "onnxruntime",
        "-t",
        "tensorrt",
        "--images",
        str(held),
        "--json",
    )
    assert build.exit_code == 0, build.output
    data: dict[str, Any] = json.loads(build.stdout)["payload"]
    return data


def test_import_writes_a_byte_copy_and_a_sidecar_naming_its_source(classifier: Path, built: dict[str, Any]) -> None:
    copy = Path("export/digits.onnx")
    assert copy.read_bytes() == classifier.read_bytes()
    sidecar = load_sidecar(copy)
    assert (sidecar.model, sidecar.family, sidecar.weights.kind) == ("digits", "imported", "onnx")
    assert sidecar.weights.name == str(classifier.resolve())
    assert sidecar.weights.detail["path"] == str(copy.resolve())
    assert sidecar.weights.detail["sha256"] == sidecar.sha256
    assert (sidecar.weights.detail["producer"], sidecar.opset) == ("another-tool", 17)
    assert sidecar.inputs[0].name == "pixels" and sidecar.inputs[0].shape == ("N", 1, SIDE, SIDE)
    assert sidecar.outputs[0].shape == ("N", 10)
    assert (sidecar.batch.dynamic, sidecar.batch.min, sidecar.batch.max) == (True, 1, 32)
    assert sidecar.preprocessing == Preprocessing(SIDE, SIDE, (MEAN,), (STD,), "bilinear", "L")
    assert sidecar.labels == tuple(f"digit {d}" for d in range(10)) and sidecar.parity is None
    assert sidecar.extra["import"]["checked_images"] >= 2


def test_build_judges_every_artifact_against_the_imported_onnx(built: dict[str, Any]) -> None:
    assert not built["rejected"]
    names = {artifact["name"]: artifact for artifact in built["artifacts"]}
    assert set(names) == {"fp32", "fp16", "int8", "int8-cpu"}
    for artifact in names.values():
        parity = artifact["sidecar"]["parity"]
        assert parity["passed"] and parity["reference"] == ONNX_REFERENCE
        assert parity["images"] == "held-out" and parity["artifact_accuracy"] > 0.9


def test_verify_says_the_reference_is_the_fp32_onnx(built: dict[str, Any]) -> None:
    engines = sorted(str(p) for p in Path("engines").glob("digits.*.onnx"))
    result = _cli("verify", *engines, "export/digits.onnx", "--json")
    assert result.exit_code == 0, result.output
    verdicts = json.loads(result.stdout)["payload"]["verdicts"]
    assert len(verdicts) == 5 and all(v["reference"] == ONNX_REFERENCE for v in verdicts)
    assert all(v["parity"]["reference"] == "onnxruntime-fp32" for v in verdicts)
    assert next(v for v in verdicts if v["precision"] == "fp16")["eager_fp16"] is None  # no module to run in FP16
    table = _cli("verify", "engines/digits.fp16.onnx")
    assert table.exit_code == 0 and ONNX_REFERENCE in table.output


def test_triton_serves_the_imported_model_by_name(built: dict[str, Any]) -> None:
    _ok("triton", "digits", "engines/digits.int8-cpu.onnx", "--repo", "repo", "--device", "cpu")
    for name, artifact in (("digits", "export/digits.onnx"), ("digits_int8-cpu", "engines/digits.int8-cpu.onnx")):
        folder = Path("repo") / name
        config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 32
        assert [(i.name, list(i.dims)) for i in config.input] == [("pixels", [1, SIDE, SIDE])]
        assert [(o.name, list(o.dims)) for o in config.output] == [("class_scores", [10])]
        assert (folder / "1" / "model.onnx").read_bytes() == Path(artifact).read_bytes()
        assert (folder / "labels.txt").read_text().splitlines()[3] == "digit 3"


def test_infer_classifies_with_the_imported_labels(built: dict[str, Any], digit_files: list[tuple[Path, int]]) -> None:
    images = [str(path) for path, _ in digit_files[:8]]
    result = _ok("infer", "engines/digits.int8-cpu.onnx", *images, "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    top = [row["predictions"][0]["label"] for row in rows if "predictions" in row]
    assert len(top) == 8 and sum(t == f"digit {d}" for t, (_, d) in zip(top, digit_files, strict=False)) >= 6


def test_bench_times_the_imported_onnx_as_the_baseline(built: dict[str, Any]) -> None:
    args = ("--model", "digits", "--batch", "1", "--threads", "1", "--duration", "0.1", "--json")
    result = json.loads(_ok("bench", *args).stdout)["payload"]
    assert result["reference"] == ONNX_ROW
    rows = {row["runner"]: row for row in result["rows"]}
    assert ONNX_ROW in rows and "eager" not in rows and {row["batch"] for row in rows.values()} == {1}
    sped_up = {name for name, row in rows.items() if row["speedup"] is not None}
    assert sped_up == {"digits.onnx", *(Path(p).name for p in Path("engines").glob("digits.*.onnx"))}


def test_the_reference_is_refused_once_the_imported_onnx_changed(tmp_path: Path) -> None:
    source = _rgb_classifier(tmp_path / "tiny.onnx")
    export, engines = tmp_path / "export", tmp_path / "engines"
    result = _ok("import", str(source), "--out-dir", str(export), "--json")
    assumed = json.loads(result.stdout)["payload"]["assumptions"]
    assert any("ImageNet" in a and a.startswith("--mean") for a in assumed)  # RGB: ImageNet's, said out loud
    sidecar = load_sidecar(export / "tiny.onnx")
    assert sidecar.preprocessing.mean == (0.485, 0.456, 0.406) and sidecar.preprocessing.resize_size == 27
    assert sidecar.extra["import"]["assumptions"] == assumed
    _ok("build", "tiny", "--fp32", "-t", "onnxruntime", "--export-dir", str(export), "--out-dir", str(engines))
    (export / "tiny.onnx").write_bytes(_rgb_classifier(tmp_path / "other.onnx", classes=4).read_bytes() + b"\0")
    refused = _cli("verify", str(engines / "tiny.fp32.onnx"))
    assert refused.exit_code == ArtifactError.exit_code and "changed since it was imported" in refused.output
    assert "deploy import" in refused.output and "Traceback" not in refused.output


def test_the_reference_follows_the_weights_kind(built: dict[str, Any]) -> None:
    """Zoo models keep eager PyTorch; imported ONNX and modules exported from Python (no file rebuilds either) are
    judged against their recorded FP32 ONNX on ONNX Runtime."""
    imported = load_sidecar(Path("export/digits.onnx"))
    assert isinstance(reference_runner(imported), OrtRunner)
    assert reference_description(imported) == ONNX_REFERENCE
    module = dataclasses.replace(imported, weights=dataclasses.replace(imported.weights, kind="module"))
    assert isinstance(reference_runner(module), OrtRunner) and reference_description(module) == MODULE_REFERENCE
    zoo = dataclasses.replace(imported, model="lenet5", family="LeNet", weights=WeightsInfo("random", "random"))
    assert isinstance(reference_runner(zoo), TorchRunner) and reference_description(zoo) == EAGER_REFERENCE


@pytest.mark.parametrize("command", ["build", "verify", "bench", "triton"])
def test_an_onnx_without_a_sidecar_is_refused_with_the_import_command(
    command: str, classifier: Path, tmp_path: Path
) -> None:
    loose = shutil.copy(classifier, tmp_path / "loose.onnx")
    result = _cli(command, str(loose))
    assert result.exit_code == ArtifactError.exit_code and "Traceback" not in result.output
    expected = f"deploy import {loose} --input-size {SIDE} --mean MEAN --std STD --labels LABELS.txt"
    assert "has no sidecar" in result.output and expected in result.output, result.output


def _rank3(path: Path) -> Path:
    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2], keepdims=0)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10, 16])
    return _save(path, nodes, [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [])


def _two_outputs(path: Path) -> Path:
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("p", ["N", 3, 1, 1]), ("y", ["N", 3]))
    ]
    return _save(path, nodes, [x], outputs, [])


def _feature_map(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])
    return _save(path, [helper.make_node("Relu", ["x"], ["y"])], [x], [y], [])


def _not_onnx(path: Path) -> Path:
    path.write_text("this is a text file, not a model\n")
    return path


REFUSALS = [
    ("rank-3", _rank3, [], "not a float32 [N, C, H, W] image batch"),
    ("two-outputs", _two_outputs, [], "has 2 outputs"),
    ("feature-map", _feature_map, [], "not float32 class scores [N, classes]"),
    (
        "labels",
        lambda p: _digits_classifier(p, fitted=False),
        ["--mean", "0", "--std", "1", "--labels", "LABELS"],
        "names 3 classes",
    ),
    ("size", lambda p: _rgb_classifier(p), ["--input-size", "32"], "--input-size 32 does not match"),
    ("dynamic-size", lambda p: _rgb_classifier(p, side="H"), [], "dynamic H/W"),
    ("clash", lambda p: _rgb_classifier(p), ["--name", "LeNet5"], "a zoo architecture"),
    ("gray-normalisation", lambda p: _digits_classifier(p, fitted=False), [], "--mean and --std were not given"),
    ("missing", lambda p: p, [], "does not exist"),
    ("not-onnx", _not_onnx, [], "is not an ONNX model"),
]


@pytest.mark.parametrize(("name", "make", "options", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_import_refuses_what_it_cannot_feed_and_writes_nothing(
    name: str, make: Any, options: list[str], message: str, tmp_path: Path
) -> None:
    source = make(tmp_path / f"{name}.onnx")
    (tmp_path / "LABELS").write_text("a\nb\nc\n")
    options = [str(tmp_path / "LABELS") if o == "LABELS" else o for o in options]
    out = tmp_path / "out"
    result = _cli("import", str(source), "--out-dir", str(out), *options)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert str(source) in error and message in error, result.output
    assert not out.exists()
