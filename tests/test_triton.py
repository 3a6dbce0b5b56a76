"""Triton model repositories, validated against Triton's own ModelConfig protobuf (from tritonclient)."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image
from tritonclient.grpc import model_config_pb2
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import ArtifactError, BadInput
from deploy.exporter import ExportConfig, ExportResult, export_model
from deploy.files import sha256_file
from deploy.preprocessing import Preprocessing, load_image, preprocess
from deploy.serving.python_models import preprocess as served_preprocessing
from deploy.serving.python_models import topk as served_topk
from deploy.serving.triton import TritonConfig, preferred_batch_sizes, python_model, write_repository
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
    assert json.loads(result.stdout)["payload"]["models"][0]["platform"] == "onnxruntime_onnx"
    parse_config(repo / "lenet5" / "config.pbtxt")
    bad = cli.invoke(app, ["triton", str(lenet5_export.onnx_path), "--repo", str(repo), "--instances", "0"])
    assert bad.exit_code == BadInput.exit_code and "at least 1" in bad.output


def _served_images(tmp_path: Path) -> list[Path]:
    """Every kind of picture the ensemble's preprocessing must handle as deploy does."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (300, 220, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: EXIF orientation applied on decode
    files = {
        "photo.jpg": (rgb, {"quality": 90, "exif": exif}),
        "gray.png": (rgb.convert("L"), {}),
        "rgba.png": (rgb.convert("RGBA"), {}),
        "palette.png": (rgb.convert("P"), {}),
        "wide16.png": (Image.fromarray(rng.integers(0, 4096, (50, 170), dtype=np.uint16)), {}),
        "tiny.bmp": (rgb.resize((5, 7)), {}),
    }
    for name, (image, options) in files.items():
        image.save(tmp_path / name, **options)
    return [tmp_path / name for name in files]


@pytest.mark.parametrize(
    "prep",
    [
        Preprocessing(resize_size=256, crop_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        Preprocessing(32, 32, (0.3055,), (0.3235,), color="L"),
        Preprocessing(342, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), interpolation="bicubic"),
    ],
)
def test_the_served_preprocessing_is_deploys_bit_for_bit(prep: Preprocessing, tmp_path: Path) -> None:
    spec = served_preprocessing.Transform.from_json(json.dumps(prep.to_dict()))
    for path in _served_images(tmp_path):
        served = served_preprocessing.preprocess_bytes(path.read_bytes(), spec)
        np.testing.assert_array_equal(served, preprocess(load_image(path), prep), err_msg=path.name)


def test_served_preprocessing_refuses_what_deploy_refuses() -> None:
    spec = served_preprocessing.Transform(32, 32, (0.5,), (0.5,), "bilinear", "L")
    strip = io.BytesIO()
    Image.new("L", (3000, 10)).save(strip, format="PNG")
    for data, reason in ((b"", "not an image"), (b"GIF89a\x01", "image"), (strip.getvalue(), "aspect ratio")):
        with pytest.raises(served_preprocessing.ImageRefused, match=reason):
            served_preprocessing.preprocess_bytes(data, spec)


def test_served_top_k_ranks_as_deploy_infer() -> None:
    scores = np.array([0.1, 3.0, 3.0, -1.0, 2.5, 7.0], dtype=np.float32)
    indices, probabilities = served_topk.top_k(scores, 4)
    assert indices.tolist() == [5, 1, 2, 4]  # ties keep index order, as deploy infer's stable sort
    shifted = np.exp(scores.astype(np.float64) - scores.max())
    np.testing.assert_allclose(probabilities, (shifted / shifted.sum())[[5, 1, 2, 4]], rtol=1e-6)
    assert [served_topk.label_of(i, ("a", "b")) for i in (1, 4)] == ["b", "class 4"]


def test_python_backend_and_ensemble_configs_are_valid_and_chain(lenet5_export: ExportResult, tmp_path: Path) -> None:
    config = TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=tmp_path, backend="python", ensemble=True)
    models = {m.name: m for m in write_repository(config).models}
    assert list(models) == ["lenet5_python", "lenet5_python_preprocess", "lenet5_python_topk", "lenet5_python_ensemble"]
    model = parse_config(models["lenet5_python"].config_path)
    assert model.backend == "python" and model.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    version = tmp_path / "lenet5_python" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx", "model.py"]
    assert (version / "model.py").read_bytes() == python_model("onnxruntime_cpu")
    preprocess_config = parse_config(models["lenet5_python_preprocess"].config_path)
    assert preprocess_config.input[0].data_type == model_config_pb2.TYPE_STRING
    served = Preprocessing.from_dict(json.loads(preprocess_config.parameters["preprocessing"].string_value))
    assert served == load_sidecar(lenet5_export.onnx_path).preprocessing
    assert (tmp_path / "lenet5_python_topk" / "labels.txt").read_text().split() == list("0123456789")
    ensemble = parse_config(models["lenet5_python_ensemble"].config_path)
    steps = ensemble.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["lenet5_python_preprocess", "lenet5_python", "lenet5_python_topk"]
    assert [o.name for o in ensemble.output] == ["LABELS", "PROBABILITIES", "CLASS_INDICES"]
    assert ensemble.max_batch_size == 32 and list(ensemble.output[0].dims) == [5]
    assert (tmp_path / "lenet5_python_ensemble" / "1").is_dir()
    # the same call again: nothing byte-identical is added as a new version (issue #16)
    again = write_repository(config).models
    assert {(m.version, m.status) for m in again} == {(1, "unchanged")}
    assert sorted(p.name for p in (tmp_path / "lenet5_python").iterdir()) == ["1", "config.pbtxt", "labels.txt"]


def test_the_python_backend_and_ensemble_refuse_what_they_cannot_serve(
    lenet5_export: ExportResult, static_export: ExportResult, tmp_path: Path
) -> None:
    plan = _plan_standing_in(lenet5_export, tmp_path)
    with pytest.raises(BadInput, match="runs ONNX files through ONNX Runtime"):
        write_repository(TritonConfig(artifacts=(plan,), repo=tmp_path / "a", backend="python"))
    with pytest.raises(BadInput, match="fixed batch size"):
        write_repository(TritonConfig(artifacts=(static_export.onnx_path,), repo=tmp_path / "b", ensemble=True))
    with pytest.raises(BadInput, match="CPU only"):
        write_repository(
            TritonConfig(artifacts=(lenet5_export.onnx_path,), repo=tmp_path / "c", backend="python", device="gpu")
        )
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))
