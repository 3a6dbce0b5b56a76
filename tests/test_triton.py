"""Triton model repositories, validated against Triton's own ModelConfig protobuf (from tritonclient)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import ArtifactError, BadInput
from deploy.exporter import ExportConfig, ExportResult, export_model
from deploy.files import sha256_file
from deploy.serving.triton import TritonConfig, preferred_batch_sizes, write_repository
from deploy.sidecar import Sidecar, load_sidecar, sidecar_path


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    """Strict parse: an unknown field or a wrong enum value raises, as it would in Triton."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def static_export(tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    folder = tmp_path_factory.mktemp("static")
    return export_model(ExportConfig(model="lenet5", out_dir=folder, static=True, static_batch=4, verify=False))


def _plan_standing_in(source: ExportResult, folder: Path) -> Path:
    """Test double, for config generation only: a .plan file with a sidecar describing it.

    `deploy triton` reads nothing from a plan but its sidecar (names, types, shapes, profile), so the bytes here
    need not be a real TensorRT engine — none can be built on this CPU-only machine.
    """
    plan = folder / "lenet5.int8.plan"
    plan.write_bytes(b"stand-in bytes: config generation never deserialises the engine")
    sidecar: Sidecar = dataclasses.replace(load_sidecar(source.onnx_path), artifact=plan.name, sha256=sha256_file(plan))
    sidecar_path(plan).write_text(sidecar.to_json())
    return plan


def test_dynamic_onnx_model_config_is_valid_and_batches(lenet5_export: ExportResult, tmp_path: Path) -> None:
    result = write_repository(TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=tmp_path / "repo"))
    (model,) = result.models
    config = parse_config(model.config_path)
    assert config.name == "lenet5" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 32
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("input", model_config_pb2.TYPE_FP32, [1, 32, 32])
    ]
    assert [(o.name, list(o.dims), o.label_filename) for o in config.output] == [("logits", [10], "labels.txt")]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8, 16, 32]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(g.count, g.kind) for g in config.instance_group] == [(1, model_config_pb2.ModelInstanceGroup.KIND_GPU)]
    assert (tmp_path / "repo" / "lenet5" / "1" / "model.onnx").read_bytes() == lenet5_export.onnx_path.read_bytes()
    assert (tmp_path / "repo" / "lenet5" / "labels.txt").read_text().split() == list("0123456789")


def test_static_onnx_model_has_no_batch_dimension_for_triton(static_export: ExportResult, tmp_path: Path) -> None:
    result = write_repository(TritonConfig(artifacts=(static_export.onnx_path,), repo=tmp_path, device="cpu"))
    config = parse_config(result.models[0].config_path)
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [4, 1, 32, 32]
    assert not config.HasField("dynamic_batching")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU


def test_plan_config_uses_the_tensorrt_platform(lenet5_export: ExportResult, tmp_path: Path) -> None:
    plan = _plan_standing_in(lenet5_export, tmp_path)
    result = write_repository(TritonConfig(artifacts=(plan,), repo=tmp_path / "repo", instances=2))
    config = parse_config(result.models[0].config_path)
    assert config.name == "lenet5_int8" and config.platform == "tensorrt_plan"
    assert config.instance_group[0].count == 2
    assert (tmp_path / "repo" / "lenet5_int8" / "1" / "model.plan").is_file()
    with pytest.raises(BadInput, match="GPU only"):
        write_repository(TritonConfig(artifacts=(plan,), repo=tmp_path / "repo2", device="cpu"))


def test_static_plan_config_is_valid(static_export: ExportResult, tmp_path: Path) -> None:
    plan = _plan_standing_in(static_export, tmp_path)
    config = parse_config(write_repository(TritonConfig(artifacts=(plan,), repo=tmp_path / "r")).models[0].config_path)
    assert config.max_batch_size == 0 and list(config.output[0].dims) == [4, 10]


def test_feature_extractor_gets_no_labels_file(tmp_path: Path) -> None:
    exported = export_model(ExportConfig(model="inception_block", out_dir=tmp_path / "e", max_batch=2, verify=False))
    result = write_repository(TritonConfig(artifacts=(exported.onnx_path,), repo=tmp_path / "repo"))
    config = parse_config(result.models[0].config_path)
    assert config.output[0].label_filename == "" and list(config.output[0].dims) == [256, 256, 256]
    assert list(config.dynamic_batching.preferred_batch_size) == [2]
    assert result.models[0].labels_path is None


def test_adding_a_build_makes_the_next_version_without_touching_earlier_ones(
    lenet5_export: ExportResult, static_export: ExportResult, tmp_path: Path
) -> None:
    first = write_repository(TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=tmp_path)).models[0]
    before = first.model_path.stat()
    second = write_repository(TritonConfig(artifacts=(static_export.onnx_path,), repo=tmp_path)).models[0]
    assert (first.version, second.version) == (1, 2) and second.status == "added"
    assert second.model_path.read_bytes() == static_export.onnx_path.read_bytes()
    after = first.model_path.stat()
    assert (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size)
    assert sorted(p.name for p in (tmp_path / "lenet5").iterdir()) == ["1", "2", "config.pbtxt", "labels.txt"]


def test_artifact_without_sidecar_is_refused(lenet5_export: ExportResult, tmp_path: Path) -> None:
    lonely = tmp_path / "lenet5.onnx"
    shutil.copy(lenet5_export.onnx_path, lonely)
    with pytest.raises(ArtifactError, match="no sidecar"):
        write_repository(TritonConfig(artifacts=(lonely,), repo=tmp_path / "repo"))
    assert not (tmp_path / "repo" / "lenet5").exists()


def test_name_collisions_are_refused(lenet5_export: ExportResult, tmp_path: Path) -> None:
    twin = tmp_path / "other" / "lenet5.onnx"
    twin.parent.mkdir()
    shutil.copy(lenet5_export.onnx_path, twin)
    shutil.copy(lenet5_export.sidecar_path, sidecar_path(twin))
    with pytest.raises(BadInput, match="share the Triton model name 'lenet5'"):
        write_repository(TritonConfig(artifacts=(lenet5_export.onnx_path, twin), repo=tmp_path / "repo"))
    plan = _plan_standing_in(lenet5_export, tmp_path)
    write_repository(TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=tmp_path / "repo2"))
    with pytest.raises(BadInput, match="another platform"):
        write_repository(TritonConfig(artifacts=(plan,), repo=tmp_path / "repo2", name="lenet5"))


def test_a_folder_with_unrelated_content_is_refused_unless_forced(lenet5_export: ExportResult, tmp_path: Path) -> None:
    (tmp_path / "holiday-photos").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    config = TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=tmp_path)
    with pytest.raises(BadInput, match="not a Triton model"):
        write_repository(config)
    assert not (tmp_path / "lenet5").exists()
    assert write_repository(dataclasses.replace(config, force=True)).models[0].version == 1


def test_preferred_batch_sizes_stay_within_the_profile() -> None:
    assert preferred_batch_sizes(1, 64) == (4, 8, 16, 32, 64)
    assert preferred_batch_sizes(1, 24) == (4, 8, 16, 24)
    assert preferred_batch_sizes(1, 1) == (1,)


def test_cli_writes_a_repository(cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path) -> None:
    repo = tmp_path / "model_repository"
    result = cli.invoke(app, ["triton", str(lenet5_export.onnx_path), "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"][0]["platform"] == "onnxruntime_onnx"
    parse_config(repo / "lenet5" / "config.pbtxt")
    bad = cli.invoke(app, ["triton", str(lenet5_export.onnx_path), "--repo", str(repo), "--instances", "0"])
    assert bad.exit_code == BadInput.exit_code and "at least 1" in bad.output
