from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from deploy.errors import BadInput, ParityError
from deploy.exporter import ExportConfig, ExportResult, export_model
from deploy.files import sha256_file
from deploy.harness.compare import Tolerance
from deploy.sidecar import load_sidecar
from deploy.targets.onnxruntime.runner import OrtRunner
from deploy.zoo import get_spec

DEFAULT_RUN = [
    "lenet5",
    "inception_block",
    "resnet18",
]
SLOW_RUN = [
    "googlenet",  # 15 s; its export is also checked by the trained-weights step
    "inception_v3",  # 30 s of the default suite's ten minutes; its every-precision check is slow too
    "alexnet2012", "densenet121",  # 36 s together; the fault and fuzz suites took that room in the default run
    "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet34", "resnet50", "resnet101", "resnet152", "densenet161", "densenet169", "densenet201",
]  # fmt: skip


def _export_and_check(name: str, out_dir: Path) -> ExportResult:
    spec = get_spec(name)
    result = export_model(ExportConfig(model=name, weights="random", out_dir=out_dir, parity_samples=4))
    assert result.parity is not None and result.parity.passed
    assert result.onnx_path.is_file() and result.sidecar_path.is_file()
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".")] == []  # no staging debris

    model = onnx.load(result.onnx_path)
    onnx.checker.check_model(model)
    assert {o.domain: o.version for o in model.opset_import}.get("", 0) == 20
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == spec.input_name and dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == list(spec.input_shape)

    sidecar = load_sidecar(result.onnx_path)
    assert sidecar.sha256 == sha256_file(result.onnx_path)
    assert sidecar.num_params == spec.num_params
    assert sidecar.parity is not None and sidecar.parity["passed"]
    assert sidecar.batch.dynamic and sidecar.batch.max == 32
    assert sidecar.versions["torch"] and sidecar.versions["onnx"]
    return result


@pytest.mark.parametrize("name", DEFAULT_RUN)
def test_export_matches_eager_pytorch_in_onnx_runtime(name: str, tmp_path: Path) -> None:
    _export_and_check(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_RUN)
def test_export_matches_eager_pytorch_in_onnx_runtime_large_models(name: str, tmp_path: Path) -> None:
    _export_and_check(name, tmp_path)


def test_dynamic_batch_runs_any_size_up_to_the_maximum(resnet18_export: ExportResult) -> None:
    with OrtRunner(resnet18_export.onnx_path) as runner:
        for batch in (1, 3, 32):
            x = np.random.default_rng(batch).normal(size=(batch, 3, 224, 224)).astype(np.float32)
            assert runner.infer({"input": x})["logits"].shape == (batch, 1000)


def test_sidecar_records_what_produced_the_artifact(lenet5_export: ExportResult) -> None:
    data = json.loads(lenet5_export.sidecar_path.read_text())
    assert data["model"] == "lenet5" and data["weights"]["kind"] == "digits"
    assert data["weights"]["test_accuracy"] > 0.95
    assert data["inputs"] == [{"name": "input", "shape": ["batch", 1, 32, 32], "dtype": "float32"}]
    assert data["outputs"][0]["shape"] == ["batch", 10]
    assert data["preprocessing"]["color"] == "L" and data["labels"] == list("0123456789")
    assert data["opset"] == 20 and data["artifact"] == "lenet5.onnx"
    assert data["simplifier"]["tool"] == "onnxsim" and data["simplifier"]["max_abs_change"] == 0.0
    assert set(data["parity"]["outputs"][0]) >= {"max_abs", "max_rel", "cosine_min", "top1_agreement"}
    assert data["parity"]["outputs"][0]["top1_agreement"] == 1.0


def test_static_export_has_fixed_shapes(tmp_path: Path) -> None:
    result = export_model(ExportConfig(model="lenet5", out_dir=tmp_path, static=True, static_batch=4))
    dims = onnx.load(result.onnx_path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [4, 1, 32, 32]
    assert not result.sidecar.batch.dynamic and result.sidecar.inputs[0].shape == (4, 1, 32, 32)


@pytest.mark.parametrize("simplifier", ["onnxslim", "none"])
def test_alternative_simplifiers_export_with_parity(simplifier: str, tmp_path: Path) -> None:
    result = export_model(ExportConfig(model="lenet5", out_dir=tmp_path, simplifier=simplifier))  # type: ignore[arg-type]
    assert result.parity and result.sidecar.simplifier["tool"] == simplifier


def test_opset_is_honoured(tmp_path: Path) -> None:
    result = export_model(ExportConfig(model="lenet5", out_dir=tmp_path, opset=18))
    assert {o.domain: o.version for o in onnx.load(result.onnx_path).opset_import}[""] == 18


def test_failed_parity_writes_nothing(tmp_path: Path) -> None:
    impossible = Tolerance(atol=0.0, rtol=0.0, min_cosine=None)
    with pytest.raises(ParityError, match="differs from eager"):
        export_model(ExportConfig(model="resnet18", weights="random", out_dir=tmp_path, tolerance=impossible))
    assert list(tmp_path.iterdir()) == []


def test_no_verify_keeps_the_artifact_and_records_no_parity(tmp_path: Path) -> None:
    result = export_model(ExportConfig(model="lenet5", out_dir=tmp_path, verify=False))
    assert result.parity is None and load_sidecar(result.onnx_path).parity is None


def test_out_of_range_options_are_refused_before_work(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="opset"):
        export_model(ExportConfig(model="lenet5", out_dir=tmp_path, opset=9))
    with pytest.raises(BadInput, match="--max-batch 0 is outside 1-4096"):
        export_model(ExportConfig(model="lenet5", out_dir=tmp_path, max_batch=0))
    assert list(tmp_path.iterdir()) == []


def test_re_export_replaces_the_pair_atomically(tmp_path: Path) -> None:
    first = export_model(ExportConfig(model="lenet5", out_dir=tmp_path, opset=18))
    second = export_model(ExportConfig(model="lenet5", out_dir=tmp_path, opset=20))
    assert first.onnx_path == second.onnx_path
    assert load_sidecar(second.onnx_path).opset == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5.json", "lenet5.onnx"]


def test_lenet5_digits_accuracy_is_the_same_in_onnx_runtime_as_eager(lenet5_export: ExportResult) -> None:
    """Ground truth on real labelled data: the held-out digits split, eager vs the exported ONNX."""
    import torch

    from deploy.samples import digits_split
    from deploy.zoo import load_model
    from deploy.zoo.digits import digits_arrays

    loaded = load_model(get_spec("lenet5"))  # default weights: trained on the digits' training split
    images, labels = digits_arrays(digits_split().test, loaded.source.preprocessing)
    with torch.inference_mode():
        eager = loaded.module(torch.from_numpy(images)).numpy().argmax(axis=1)
    with OrtRunner(lenet5_export.onnx_path) as runner:
        deployed = np.concatenate(
            [runner.infer({"input": images[i : i + 32]})["logits"] for i in range(0, len(images), 32)]
        ).argmax(axis=1)
    eager_accuracy, deployed_accuracy = (eager == labels).mean(), (deployed == labels).mean()
    assert eager_accuracy > 0.95
    assert deployed_accuracy == eager_accuracy and (deployed == eager).all()
