"""Deployment targets: the registry, OpenVINO as a real compiled target (IR built, judged, run, served), and
sidecars that are unique per artifact file and tell what the artifact is without reading its name."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deploy.backends.base import Runner, TensorMeta
from deploy.builder import BuildConfig, BuildResult, build
from deploy.cli.app import app
from deploy.errors import ArtifactError, BadInput
from deploy.exporter import ExportResult
from deploy.files import sha256_file
from deploy.precision.calibration import CalibrationConfig
from deploy.sidecar import ArtifactLabel, Sidecar, TargetInfo, load_sidecar, sidecar_path
from deploy.targets import TARGETS, get_target, register, runner_for, target_for
from deploy.targets.base import Check, Compiled, CompileRequest, Progress, Target, TritonModelFiles
from tests.test_triton import parse_config

pytest.importorskip("openvino", reason="the OpenVINO target needs the openvino extra (part of .[dev])")


@pytest.fixture(scope="module")
def openvino_build(lenet5_export: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """lenet5 (trained in-test on real digits) for ONNX Runtime and OpenVINO at once, FP32 and CPU INT8."""
    root = tmp_path_factory.mktemp("openvino")
    config = BuildConfig(
        sources=(str(lenet5_export.onnx_path),),
        precisions=("fp32", "int8"),
        targets=("onnxruntime", "openvino"),
        engines_dir=root / "engines",
        calibration=CalibrationConfig(directory=root / "calibration"),
    )
    return build(config)


def test_every_target_is_registered_once_with_its_own_suffix() -> None:
    assert set(TARGETS) == {"onnxruntime", "tensorrt", "openvino"}
    assert len({t.suffix for t in TARGETS.values()}) == len(TARGETS)
    assert get_target("cpu").name == "onnxruntime" and get_target("trt").name == "tensorrt"
    with pytest.raises(BadInput, match="--target 'tpu' is unknown") as caught:
        get_target("tpu")
    assert "openvino" in str(caught.value.hint)
    with pytest.raises(BadInput, match=r"\.xml \(openvino\)"):
        target_for(Path("model.tflite"))


def test_openvino_build_compiles_the_typed_onnx_of_its_recipe_into_judged_ir(openvino_build: BuildResult) -> None:
    by_name = {a.name: a for a in openvino_build.artifacts}
    assert set(by_name) == {"fp32", "fp32 openvino", "int8-cpu", "int8-cpu openvino"}, openvino_build.rejected
    for name in ("fp32 openvino", "int8-cpu openvino"):
        ir = by_name[name]
        assert ir.path.suffix == ".xml" and ir.path.with_suffix(".bin").is_file()
        assert ir.verdict is not None and ir.verdict.passed  # judged against eager before it was published
        assert ir.verdict.backend == "openvino"
        described = load_sidecar(ir.path)  # checks the .xml and the .bin against their hashes
        assert described.label == ArtifactLabel(ir.label.precision, ir.label.method, ir.label.recipe, "openvino")
        assert described.target is not None and described.target.source_onnx.endswith(".onnx")
        assert [c.name for c in described.target.companions] == [ir.path.with_suffix(".bin").name]
    # INT8 for OpenVINO comes from the same U8S8 ONNX as ONNX Runtime's, with its 7-bit weights.
    int8_ir = load_sidecar(by_name["int8-cpu openvino"].path)
    assert int8_ir.target is not None and int8_ir.target.source_sha256 == by_name["int8-cpu"].sidecar.sha256
    assert int8_ir.precision is not None and int8_ir.precision.weight_bits == 7
    assert "OpenVINO" in " ".join(openvino_build.statuses)
    assert not list(by_name["fp32"].path.parent.glob(".deploy-tmp.*"))  # work folders are gone


def test_onnx_and_ir_of_one_typed_model_each_keep_their_own_sidecar_and_run(
    cli: CliRunner, openvino_build: BuildResult, digit_files: list[tuple[Path, int]]
) -> None:
    by_name = {a.name: a for a in openvino_build.artifacts}
    onnx, ir = by_name["int8-cpu"].path, by_name["int8-cpu openvino"].path
    assert sidecar_path(onnx) != sidecar_path(ir) == ir.with_name(ir.name + ".json")
    images = [str(path) for path, _ in digit_files[:6]]
    answers = []
    for artifact in (onnx, ir):
        result = cli.invoke(app, ["infer", str(artifact), *images, "--json"])
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()][:-1]  # JSON lines, then the summary
        answers.append([row["predictions"][0]["index"] for row in rows])
    assert answers[0] == answers[1] == [label for _, label in digit_files[:6]]


def test_an_ir_whose_weights_changed_or_went_missing_is_refused(openvino_build: BuildResult, tmp_path: Path) -> None:
    ir = next(a.path for a in openvino_build.artifacts if a.name == "fp32 openvino")
    copy = tmp_path / ir.name
    for suffix in (".xml", ".bin", ".xml.json"):
        (tmp_path / (ir.stem + suffix)).write_bytes((ir.parent / (ir.stem + suffix)).read_bytes())
    assert load_sidecar(copy).label.target == "openvino"
    weights = copy.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\1")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_sidecar(copy)
    weights.unlink()
    with pytest.raises(ArtifactError, match=r"lenet5\.fp32\.bin is missing"):
        runner_for(copy, sidecar=load_sidecar(copy))


def test_triton_serves_the_ir_with_the_openvino_backend_on_cpu(
    cli: CliRunner, openvino_build: BuildResult, tmp_path: Path
) -> None:
    ir = next(a.path for a in openvino_build.artifacts if a.name == "int8-cpu openvino")
    repo = tmp_path / "repo"
    result = cli.invoke(app, ["triton", str(ir), "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["payload"]["models"][0]
    config = parse_config(Path(model["config_path"]))
    assert config.backend == "openvino" and not config.platform
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    version = Path(model["model_path"]).parent
    assert sorted(p.name for p in version.iterdir()) == ["model.bin", "model.xml"]
    refused = cli.invoke(app, ["triton", str(ir), "--repo", str(tmp_path / "other"), "--device", "gpu"])
    assert refused.exit_code == 2 and "runs on CPU only" in refused.output


def test_a_schema_1_sidecar_is_read_with_its_label_from_the_precision_record(openvino_build: BuildResult) -> None:
    typed = next(a for a in openvino_build.artifacts if a.name == "int8-cpu")
    data = json.loads(typed.sidecar_path.read_text())
    old = {k: v for k, v in data.items() if k not in ("label", "target")} | {"schema": "deploy.onnx/1"}
    typed.sidecar_path.write_text(json.dumps(old))
    try:
        assert load_sidecar(typed.path).label == typed.label == ArtifactLabel("int8", "entropy", "cpu", "onnxruntime")
    finally:
        typed.sidecar_path.write_text(typed.sidecar.to_json())


class _OrtFormat(Target):
    """A fourth target written the way a new package under deploy/targets/ would be: ONNX Runtime's own ORT format
    (a real format ONNX Runtime loads, compiled here by ONNX Runtime itself; nothing is faked)."""

    name = "ort-format"
    suffix = ".ort"
    int8_recipe = "cpu"
    triton = TritonModelFiles(platform="onnxruntime_onnx", backend=None, filenames=("model.ort",))

    def runner(self, artifact: Path, *, threads: int | None = None, sidecar: Sidecar | None = None) -> Runner:
        return _OrtFormatRunner(artifact)

    def availability(self) -> tuple[bool, str]:
        return True, "ONNX Runtime writes the ORT format"

    def compile(self, request: CompileRequest, *, progress: Progress | None = None) -> Compiled:
        import onnxruntime

        out = request.work_dir / (request.onnx.stem + self.suffix)
        options = onnxruntime.SessionOptions()
        options.optimized_model_filepath = str(out)
        options.add_session_config_entry("session.save_model_format", "ORT")
        onnxruntime.InferenceSession(str(request.onnx), options, providers=["CPUExecutionProvider"])
        described = dataclasses.replace(
            request.sidecar,
            artifact=out.name,
            sha256=sha256_file(out),
            size_bytes=out.stat().st_size,
            label=dataclasses.replace(request.sidecar.label, target=self.name),
            target=TargetInfo(self.name, onnxruntime.__version__, str(request.onnx), request.sidecar.sha256, 0.0),
        )
        return Compiled(out, described, 0.0)

    def probe(self) -> tuple[Check, ...]:
        return (Check("ORT format", True, None, "ONNX Runtime", ""),)


class _OrtFormatRunner(Runner):
    name = "onnxruntime-ort-format"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def activate(self) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])

    def deactivate(self) -> None:
        del self.session

    @property
    def inputs(self) -> tuple[TensorMeta, ...]:
        return tuple(TensorMeta(i.name, tuple(i.shape), "float32") for i in self.session.get_inputs())

    @property
    def outputs(self) -> tuple[TensorMeta, ...]:
        return tuple(TensorMeta(o.name, tuple(o.shape), "float32") for o in self.session.get_outputs())

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, dict(feed)), strict=True))


def test_a_fourth_target_needs_only_its_own_class_and_its_registration(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path, digit_files: list[tuple[Path, int]]
) -> None:
    """Registering a Target is all build, judge, publish, infer, doctor and Triton need: no other file changes."""
    registered = dict(TARGETS)
    try:
        register(_OrtFormat())
        with pytest.raises(ValueError, match="registered twice"):
            register(_OrtFormat())
        config = BuildConfig(
            sources=(str(lenet5_export.onnx_path),),
            precisions=("fp32",),
            targets=("ort-format",),
            engines_dir=tmp_path / "engines",
        )
        result = build(config)
        compiled = next(a for a in result.artifacts if a.label.target == "ort-format")
        assert (
            compiled.path == tmp_path / "engines" / "lenet5.fp32.ort" and compiled.verdict and compiled.verdict.passed
        )
        path, label = digit_files[0]
        answer = cli.invoke(app, ["infer", str(compiled.path), str(path), "--json"])
        assert answer.exit_code == 0, answer.output
        assert json.loads(answer.stdout.splitlines()[0])["predictions"][0]["index"] == label
        assert "ORT format" in cli.invoke(app, ["doctor"]).output
        served = cli.invoke(app, ["triton", str(compiled.path), "--repo", str(tmp_path / "repo"), "--json"])
        assert served.exit_code == 0, served.output
        assert Path(json.loads(served.stdout)["payload"]["models"][0]["model_path"]).name == "model.ort"
    finally:
        TARGETS.clear()
        TARGETS.update(registered)


def test_a_rejected_rebuild_withdraws_the_older_ir_of_that_typed_onnx(
    lenet5_export: ExportResult, tmp_path: Path
) -> None:
    from deploy.harness.verify import ParityCheck

    config = BuildConfig(
        sources=(str(lenet5_export.onnx_path),),
        precisions=("fp32",),
        targets=("openvino",),
        engines_dir=tmp_path / "engines",
    )
    first = build(config)
    ir = next(a.path for a in first.artifacts if a.label.target == "openvino")
    assert ir.is_file() and ir.with_suffix(".bin").is_file()
    impossible = ParityCheck(overrides={"atol": 0.0, "rtol": 0.0})  # FP32 runtimes never match eager bit for bit
    again = build(dataclasses.replace(config, verify=impossible))
    assert [a.path.name for a in again.rejected] == ["lenet5.fp32.onnx"] and not again.artifacts
    assert not ir.exists() and not ir.with_suffix(".bin").exists() and not sidecar_path(ir).exists()
