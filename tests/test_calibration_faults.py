"""Faults around INT8/FP16 calibration: the user's export is never written, a calibration cache that does not fit is
replaced with a warning (never trusted, never an error), and a calibration folder that cannot work is refused
before anything is exported or written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

import deploy.precision.cpu_int8 as cpu_int8
import deploy.precision.int8 as int8
from deploy.builder import BuildConfig, BuildResult, BuiltArtifact, build
from deploy.cli import app
from deploy.errors import BadInput
from deploy.exporter import ExportResult
from deploy.precision.cache import CacheKey, CorruptCache, read_scales, tensor_names, write_scales
from deploy.precision.calibration import CalibrationConfig
from deploy.samples import digits_split


def _fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_ino


@dataclasses.dataclass(frozen=True)
class Built:
    config: BuildConfig
    result: BuildResult
    source: Path
    before: tuple[str, int, int]

    def artifact(self, name: str) -> BuiltArtifact:
        return next(a for a in self.result.artifacts if a.name == name)

    def cache(self, name: str) -> Path:
        return Path(self.artifact(name).sidecar.precision.calibration.cache)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def built(lenet5_export: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """FP16, TensorRT INT8 and CPU INT8 of lenet5, unverified (the precision tests judge them), in one build."""
    root = tmp_path_factory.mktemp("faults")
    source = lenet5_export.onnx_path
    config = BuildConfig(
        sources=(str(source),),
        precisions=("fp16", "int8"),
        targets=("tensorrt", "onnxruntime"),
        engines_dir=root / "engines",
        calibration=CalibrationConfig(directory=root / "calibration"),
        verify=None,
    )
    before = _fingerprint(source)
    return Built(config, build(config), source, before)


def test_building_every_precision_leaves_the_source_onnx_untouched(built: Built) -> None:
    assert {a.name for a in built.result.artifacts} == {"fp16", "int8", "int8-cpu"}
    # The same bytes, the same mtime, and the same inode: not rewritten in place, not replaced by a rename.
    assert _fingerprint(built.source) == built.before
    assert not list(built.source.parent.glob(".deploy-tmp*"))


def _rebuild(built: Built, tmp_path: Path, name: str, damage: Callable[[Path], None] | None = None) -> BuildResult:
    """Build artifact `name` again on a private copy of the calibration folder (which holds the caches), after
    `damage` did what it does to that copy of the artifact's cache."""
    calibration = tmp_path / "calibration"
    shutil.copytree(built.config.calibration.directory, calibration)
    if damage is not None:
        damage(calibration / built.cache(name).name)
    config = dataclasses.replace(
        built.config,
        precisions=("int8",),
        targets=("onnxruntime",) if name == "int8-cpu" else ("tensorrt",),
        engines_dir=tmp_path / "engines",
        calibration=CalibrationConfig(directory=calibration),
    )
    return build(config)


def _foreign_scales(cache: Path) -> None:
    """The same header (so the same key) and scales, under tensor names this graph does not have."""
    lines = cache.read_text(encoding="ascii").splitlines()
    body = [f"/backbone/layer{i}/Relu_output_0: {line.rsplit(': ', 1)[1]}" for i, line in enumerate(lines[1:])]
    cache.write_text("\n".join([lines[0], *body]) + "\n", encoding="ascii")


def _foreign_ranges(cache: Path) -> None:
    """The same key and graph hash, under tensor names this graph does not have."""
    data = json.loads(cache.read_text(encoding="utf-8"))
    data["ranges"] = {f"/other/{name}": pair for name, pair in data["ranges"].items()}
    cache.write_text(json.dumps(data), encoding="utf-8")


def test_tensorrt_cache_with_foreign_tensor_names_is_recalibrated_with_a_warning(built: Built, tmp_path: Path) -> None:
    """A well-formed cache from another graph used to end in "ModelOpt inserted no activation Q/DQ", exit 1."""
    result = _rebuild(built, tmp_path, "int8", _foreign_scales)
    artifact, cache = result.artifacts[0], tmp_path / "calibration" / built.cache("int8").name
    assert artifact.reused_calibration is False
    assert [w for w in result.warnings if str(cache) in w and "does not fit" in w and "recalibrating" in w]
    assert set(read_scales(cache)) <= tensor_names(onnx.load(artifact.path))  # replaced by this graph's scales
    assert artifact.sidecar.sha256 == built.artifact("int8").sidecar.sha256  # the very same model as at first


def test_cpu_cache_with_foreign_tensor_names_is_recalibrated_with_a_warning(built: Built, tmp_path: Path) -> None:
    result = _rebuild(built, tmp_path, "int8-cpu", _foreign_ranges)
    artifact, cache = result.artifacts[0], tmp_path / "calibration" / built.cache("int8-cpu").name
    assert artifact.reused_calibration is False
    assert [w for w in result.warnings if str(cache) in w and "do not match" in w and "recalibrating" in w]
    assert not any(name.startswith("/other/") for name in json.loads(cache.read_text(encoding="utf-8"))["ranges"])
    assert artifact.sidecar.sha256 == built.artifact("int8-cpu").sidecar.sha256


def test_tensorrt_cache_key_covers_the_modelopt_version(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8, "modelopt_version", lambda: "0.0.0-other")
    record = _rebuild(built, tmp_path, "int8").artifacts[0].sidecar.precision.calibration  # type: ignore[union-attr]
    assert record is not None and record.reused_cache is False
    assert Path(record.cache).is_file() and Path(record.cache).name != built.cache("int8").name


def test_cpu_cache_key_covers_the_onnxruntime_version(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_int8, "onnxruntime_version", lambda: "0.0.0-other")
    record = _rebuild(built, tmp_path, "int8-cpu").artifacts[0].sidecar.precision.calibration  # type: ignore[union-attr]
    assert record is not None and record.reused_cache is False
    assert Path(record.cache).name != built.cache("int8-cpu").name
    assert json.loads(Path(record.cache).read_text(encoding="utf-8"))["quantizer"] == "onnxruntime 0.0.0-other"


KEY = CacheKey("a" * 64, "b" * 64, "entropy", "modelopt 1, onnxruntime 1")
SCALE = struct.pack("!f", 0.05).hex()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (f"TRT-8601-EntropyCalibration2\ninput: {SCALE}\n", "no deploy calibration-cache header"),
        (f"TRT-deploy-EntropyCalibration key={'0' * 16}\ninput: {SCALE}\n", "another model"),
        ("TRT-deploy-EntropyCalibration key={key}\ninput: 7fc00000\n", "scale nan"),
        ("TRT-deploy-EntropyCalibration key={key}\ninput: 7f800000\n", "scale inf"),
        ("TRT-deploy-EntropyCalibration key={key}\ninput: bd4ccccd\n", "scale -0.05"),
        ("TRT-deploy-EntropyCalibration key={key}\ninput: 0.05\n", "line 2"),
        ("TRT-deploy-EntropyCalibration key={key}\ninput: 3d4ccccd00\n", "line 2"),
        (f"TRT-deploy-EntropyCalibration key={{key}}\ninput: {SCALE}\ninput: {SCALE}\n", "appears twice"),
        ("TRT-deploy-EntropyCalibration key={key}\n", "no scales"),
        ("", "header"),
    ],
)
def test_tensorrt_cache_contents_are_checked_strictly(tmp_path: Path, content: str, reason: str) -> None:
    path = write_scales(tmp_path / "model.cache", {"input": 0.05}, KEY)
    assert read_scales(path, KEY) == {"input": pytest.approx(0.05)}
    path.write_text(content.replace("{key}", KEY.digest), encoding="ascii")
    with pytest.raises(CorruptCache, match=reason) as caught:
        read_scales(path, KEY)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"key": "0" * 16}, "another model"),
        ({"schema": "deploy.cpu-int8-ranges/2"}, "schema"),
        ({"graph_sha256": 5}, "graph_sha256"),
        ({"ranges": {}}, "no ranges"),
        ({"ranges": []}, "no ranges"),
        ({"ranges": {"input": [0.0]}}, "input"),
        ({"ranges": {"input": ["0", "1"]}}, "finite numbers"),
        ({"ranges": {"input": [True, 1.0]}}, "finite numbers"),
        ({"ranges": {"input": [0.0, float("inf")]}}, "finite numbers"),
        ({"ranges": {"input": [1.0, -1.0]}}, "above high"),
    ],
)
def test_cpu_range_cache_contents_are_checked_strictly(tmp_path: Path, change: dict[str, object], reason: str) -> None:
    key = dataclasses.replace(KEY, method="cpu-entropy", quantizer="onnxruntime 1")
    path = tmp_path / "model.json"
    cpu_int8._write_cache(path, cpu_int8.RangeCache({"input": (-1.0, 2.0)}, "c" * 64), key, "d" * 64)
    assert cpu_int8._read_cache(path, key).ranges == {"input": (-1.0, 2.0)}
    path.write_text(json.dumps(json.loads(path.read_text(encoding="utf-8")) | change), encoding="utf-8")
    with pytest.raises(ValueError, match=reason):
        cpu_int8._read_cache(path, key)


def test_cache_files_in_a_user_calibration_folder_are_not_counted_as_stray_files(built: Built, tmp_path: Path) -> None:
    folder = tmp_path / "calib"
    folder.mkdir()
    for index, sample in enumerate(digits_split().train[:16]):
        sample.image.save(folder / f"d{index}.png")
    (folder / "notes.txt").write_text("not an image")
    config = dataclasses.replace(
        built.config,
        precisions=("int8",),
        targets=("tensorrt",),
        engines_dir=tmp_path / "engines",
        calibration=CalibrationConfig(directory=folder, explicit=True),
    )
    first, second = build(config), build(config)
    assert second.artifacts[0].reused_calibration is True
    for result in (first, second):
        assert result.artifacts[0].sidecar.precision.calibration.skipped == 1  # type: ignore[union-attr]
        assert any("skipped 1 files" in w for w in result.warnings)


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the default folders (export/, engines/, calibration/) land here
    return tmp_path


def _calibration_paths(root: Path) -> dict[str, list[str]]:
    (root / "images.txt").write_text("a file, not a folder")
    (root / "no-images").mkdir()
    (root / "no-images" / "readme.txt").write_text("no images here")
    (root / "no-images" / "broken.png").write_bytes(b"\x89PNG garbage")
    return {
        "missing": ["--int8", "--calib-dir", "absent"],
        "a file": ["--int8", "--calib-dir", "images.txt"],
        "no readable images": ["--fp16", "--calib-dir", "no-images"],
    }


@pytest.mark.parametrize(
    ("case", "named", "message"),
    [
        ("missing", "absent", "does not exist"),
        ("a file", "images.txt", "is a file, not a folder"),
        ("no readable images", "no-images", "holds no readable images"),
    ],
)
def test_unusable_calibration_folder_is_refused_before_anything_is_written(
    cli: CliRunner, workdir: Path, case: str, named: str, message: str
) -> None:
    args = _calibration_paths(workdir)[case]
    result = cli.invoke(app, ["build", "lenet5", *args])
    assert result.exit_code == BadInput.exit_code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and message in result.stderr, result.stderr
    assert "--calib-dir" in result.stderr  # the fix names the option
    assert "Traceback" not in result.output
    assert not (workdir / "export").exists() and not (workdir / "engines").exists()  # not even exported first


def test_default_calibration_path_that_is_a_file_is_refused_not_an_internal_error(
    cli: CliRunner, workdir: Path
) -> None:
    (workdir / "calibration").write_text("not the calibration folder")
    result = cli.invoke(app, ["build", "lenet5", "--int8"])
    assert result.exit_code == BadInput.exit_code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "calibration" in errors[0] and "Traceback" not in result.output
    assert not (workdir / "export").exists() and not (workdir / "engines").exists()
    assert (workdir / "calibration").read_text() == "not the calibration folder"
