"""TensorRT path: what runs without a GPU here (profiles, compatibility checks, inspector parsing, the clear
errors), and the GPU self-test (`pytest -m gpu`) that builds, runs and verifies real plans where TensorRT exists."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.doctor import diagnose
from deploy.environment import cpu_isa
from deploy.errors import ArtifactError, BadInput, MissingDependency
from deploy.exporter import ExportResult
from deploy.files import sha256_file
from deploy.sidecar import Sidecar, load_sidecar, sidecar_path
from deploy.targets.tensorrt.build import Profile, parse_shape_spec, resolve_profile
from deploy.targets.tensorrt.gpu import gpu_info
from deploy.targets.tensorrt.inspect import layer_precision
from deploy.targets.tensorrt.runtime import check_plan_compatible


def _plan_sidecar(base: Sidecar, **tensorrt: object) -> Sidecar:
    built = {"version": "10.13.0", "compute_capability": "9.0", "gpu": "NVIDIA H100", "hardware_compatibility": "none"}
    return dataclasses.replace(base, extra={"tensorrt": built | tensorrt})


def test_trtexec_shape_spelling_parses(lenet5_export: ExportResult) -> None:
    assert parse_shape_spec("input:8x3x224x224") == {"input": (8, 3, 224, 224)}
    assert parse_shape_spec("a:1x2, b:3x4") == {"a": (1, 2), "b": (3, 4)}
    with pytest.raises(BadInput, match="NAME:DxDxD"):
        parse_shape_spec("input=8x3")


def test_profile_defaults_to_the_export_range_and_refuses_what_it_cannot_serve(lenet5_export: ExportResult) -> None:
    sidecar = lenet5_export.sidecar  # dynamic batch 1..32
    assert resolve_profile(sidecar, None) == Profile(1, 8, 32)
    assert resolve_profile(sidecar, Profile(2, 4, 16)) == Profile(2, 4, 16)
    with pytest.raises(BadInput, match="exceeds the 32"):
        resolve_profile(sidecar, Profile(1, 8, 64))
    with pytest.raises(BadInput, match="min <= opt <= max"):
        resolve_profile(sidecar, Profile(8, 4, 16))
    static = dataclasses.replace(sidecar, batch=dataclasses.replace(sidecar.batch, dynamic=False, min=4, max=4))
    assert resolve_profile(static, None) == Profile(4, 4, 4)
    with pytest.raises(BadInput, match="static batch"):
        resolve_profile(static, Profile(1, 2, 4))


def test_plan_from_another_tensorrt_version_is_refused_with_a_rebuild_hint(lenet5_export: ExportResult) -> None:
    sidecar = _plan_sidecar(lenet5_export.sidecar)
    check_plan_compatible(sidecar, trt_version="10.13.0", compute_capability="9.0")  # same: fine
    with pytest.raises(ArtifactError, match=r"built by TensorRT 10\.13\.0; this machine has 11\.4\.0") as info:
        check_plan_compatible(sidecar, trt_version="11.4.0", compute_capability="9.0")
    assert "deploy build lenet5" in (info.value.hint or "")
    compatible = _plan_sidecar(lenet5_export.sidecar, version_compatible=True)
    check_plan_compatible(compatible, trt_version="10.14.1", compute_capability="9.0")


def test_plan_from_another_gpu_is_refused_unless_built_hardware_compatible(lenet5_export: ExportResult) -> None:
    with pytest.raises(ArtifactError, match=r"compute capability 9\.0"):
        check_plan_compatible(_plan_sidecar(lenet5_export.sidecar), trt_version="10.13.0", compute_capability="8.6")
    portable = _plan_sidecar(lenet5_export.sidecar, hardware_compatibility="ampere_plus")
    check_plan_compatible(portable, trt_version="10.13.0", compute_capability="8.6")


def test_layer_precision_counts_follow_the_inspector_json() -> None:
    # Test double: IEngineInspector's DETAILED JSON as TensorRT 10 documents it (a real one needs a GPU). 11.x's one
    # documented change, "Bindings" → "I/O Tensors", is in tests/test_tensorrt_faults.py.
    info = {
        "Layers": [
            {"Name": "conv1", "Inputs": [{"Name": "x", "Format/Datatype": "Int8 NC/32HW32"}]},
            {"Name": "conv2", "Inputs": [{"Name": "a", "Format/Datatype": "Channel major FP16 format"}]},
            {"Name": "fc", "Inputs": [{"Name": "b", "Format/Datatype": "Row major linear FP32"}]},
            {"Name": "const", "Inputs": []},
            "bare-layer-name",
            {"Name": "pool", "Inputs": [{"Name": "c", "Format/Datatype": "N/A due to dynamic shapes"}]},
            {"Name": "conv3", "Inputs": [{"Name": "d", "Format/Datatype": "Channel major BF16 format"}]},
        ],
        "Bindings": ["input", "logits"],
    }
    counts = layer_precision(json.dumps(info))
    assert (counts.int8, counts.fp16, counts.fp32, counts.other) == (1, 2, 1, 3)
    assert not counts.mostly_fp32()
    mostly = layer_precision(json.dumps({"Layers": [info["Layers"][2]] * 3 + [info["Layers"][0]]}))
    assert mostly.mostly_fp32()


def test_doctor_reports_each_piece_and_what_its_absence_disables() -> None:
    report = diagnose()
    checks = {check.name: check for check in report.checks}
    assert set(checks) == {
        "CPU", "ONNX Runtime", "ModelOpt", "PyTorch", "GPU", "TensorRT", "pycuda", "cuda-python", "OpenVINO"
    }  # fmt: skip
    assert "U8S8" in checks["CPU"].detail and cpu_isa().source in checks["CPU"].detail  # the level and its origin
    assert checks["ONNX Runtime"].ok and "CPUExecutionProvider" in checks["ONNX Runtime"].detail
    assert checks["ModelOpt"].ok
    if importlib.util.find_spec("tensorrt") is None:
        assert not checks["TensorRT"].ok and ".plan" in checks["TensorRT"].disables
        assert "pip install --extra-index-url https://pypi.nvidia.com tensorrt-cu13" in checks["TensorRT"].detail
        assert not report.tensorrt_ready
    for binding in ("pycuda", "cuda-python"):  # each names its install line when missing
        check = checks[binding]
        assert check.ok or "pip install" in check.detail
    if not checks["pycuda"].ok:
        assert "CUDA toolkit headers" in checks["pycuda"].detail and "g++" in checks["pycuda"].detail
    if checks["cuda-python"].ok and not checks["pycuda"].ok:
        assert report.cuda_binding == "cuda-python" and "runner uses this one" in checks["cuda-python"].detail


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_without_tensorrt_plans_fail_with_the_extra_named(cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult,
                                                            digit_files: list[tuple[Path, int]]) -> None:  # fmt: skip
    plan = tmp_path / "lenet5.fp32.plan"
    plan.write_bytes(b"not an engine")
    sidecar = dataclasses.replace(load_sidecar(lenet5_export.onnx_path), artifact=plan.name, sha256=sha256_file(plan))
    sidecar_path(plan).write_text(sidecar.to_json())
    result = cli.invoke(app, ["infer", str(plan), str(digit_files[0][0])])
    assert result.exit_code == MissingDependency.exit_code
    assert ".[tensorrt]" in result.output and "Traceback" not in result.output

    result = cli.invoke(app, ["verify", str(plan), "--count", "4"])  # accepted as a plan, then TensorRT is missing
    assert result.exit_code == MissingDependency.exit_code and ".[tensorrt]" in result.output

    result = cli.invoke(app, ["build", str(lenet5_export.onnx_path), "--fp32", "--plan", "-o", str(tmp_path / "e")])
    assert result.exit_code == MissingDependency.exit_code and "TensorRT is not installed" in result.output


# --- the GPU self-test: `deploy doctor` then `pytest -m gpu` on a machine with TensorRT and a GPU ------------------

needs_gpu = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None
    or (importlib.util.find_spec("pycuda") is None and importlib.util.find_spec("cuda") is None)
    or gpu_info() is None,
    reason="needs TensorRT, a CUDA binding (pycuda or cuda-python) and an NVIDIA GPU (see `deploy doctor`)",
)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("model", ["lenet5", "resnet18"])
def test_plans_build_run_and_match_eager(model: str, tmp_path: Path) -> None:
    from deploy.backends.timing import BenchConfig
    from deploy.builder import BuildConfig, build
    from deploy.exporter import ExportConfig, export_model
    from deploy.harness.verify import VerifyConfig, verify
    from deploy.precision.calibration import CalibrationConfig
    from deploy.targets.tensorrt.build import PlanOptions
    from deploy.targets.tensorrt.latency import measure_trt
    from deploy.targets.tensorrt.runtime import TrtRunner

    weights = None if model == "lenet5" else "random"
    export_model(ExportConfig(model=model, weights=weights, out_dir=tmp_path / "export"))
    result = build(
        BuildConfig(
            sources=(model,),
            export_dir=tmp_path / "export",
            engines_dir=tmp_path / "engines",
            calibration=CalibrationConfig(directory=tmp_path / "calibration"),
            compile=True,
            options=(PlanOptions(workspace_gib=2.0),),
        )
    )
    plans = [a for a in result.artifacts if a.label.target == "tensorrt"]
    assert {p.sidecar.precision_name for p in plans} == {"fp32", "fp16", "int8"}
    for plan in plans:
        assert plan.sidecar.target is not None and plan.path.suffix == ".plan"
        assert plan.sidecar.target.settings["layer_precision"][plan.label.precision] >= 0
        assert plan.verdict is not None and plan.verdict.passed  # judged on the GPU before it was published
    outcome = verify(VerifyConfig(artifacts=tuple(p.path for p in plans)))
    assert outcome.passed, [v.parity.summary() for v in outcome.verdicts]
    with TrtRunner(plans[0].path) as runner:
        name = runner.inputs[0].name
        import numpy as np

        shape = (1, *load_sidecar(plans[0].path).inputs[0].shape[1:])
        feeds = [{name: np.random.default_rng(i).standard_normal(shape).astype(np.float32)} for i in range(4)]
        latency = measure_trt(runner, feeds, BenchConfig(iterations=20, warmup_s=0.2, min_duration_s=0.2))
    assert latency.compute.p50_ms > 0 and latency.end_to_end.p50_ms >= latency.compute.p50_ms
    # Eager PyTorch on the same GPU, timed the same way, in the same run.
    from deploy.backends.cuda_timing import measure_eager_cuda
    from deploy.zoo import get_spec, load_model

    module = load_model(get_spec(model), weights).module
    eager = measure_eager_cuda(module, name, feeds, BenchConfig(iterations=20, warmup_s=0.2, min_duration_s=0.2))
    assert eager.compute.p50_ms > 0


@pytest.mark.gpu
@needs_gpu
def test_pipeline_times_plans_against_eager_cuda_with_gpu_stages(tmp_path: Path) -> None:
    from deploy.harness.interleaved import InterleavedConfig
    from deploy.pipeline import PipelineConfig, run_pipeline
    from deploy.precision.calibration import CalibrationConfig

    result = run_pipeline(
        PipelineConfig(
            model="lenet5",
            export_dir=tmp_path / "export",
            engines_dir=tmp_path / "engines",
            reports_dir=tmp_path / "reports",
            calibration=CalibrationConfig(directory=tmp_path / "calibration"),
            methods=("entropy",),
            bench=InterleavedConfig(artifacts=(), batches=(1, 8), duration_s=0.5, warmup_s=0.1),
        )
    )
    rows = {row.name: row for row in result.report.rows}
    assert {"eager", "eager-cuda", "fp32 tensorrt", "fp16 tensorrt", "int8 tensorrt"} <= set(rows)
    for name in ("fp32 tensorrt", "fp16 tensorrt", "int8 tensorrt"):
        plan = rows[name]
        assert plan.passed and plan.backend == "tensorrt" and set(plan.speedup) == {1, 8}
        stages = plan.gpu[1]
        assert stages["compute"].p50_ms > 0 and stages["end_to_end"].p50_ms >= stages["compute"].p50_ms
    assert rows["eager-cuda"].gpu[1]["compute"].p50_ms > 0
    assert "## GPU stages (CUDA events)" in result.files.markdown.read_text()


def test_a_plan_never_overwrites_the_sidecar_of_the_onnx_it_came_from(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path, digit_files: list[tuple[Path, int]]
) -> None:
    """The build's publishing step, given stand-in plan bytes (no TensorRT here; a test double for the compiler's
    output only): the plan gets its own sidecar and the typed ONNX's stays valid."""
    from deploy.builder import BuildConfig, build, publish
    from deploy.files import sha256_file

    config = BuildConfig(
        sources=(str(lenet5_export.onnx_path),), precisions=("fp32",), engines_dir=tmp_path, verify=None
    )
    typed = build(config).artifacts[0]
    work = tmp_path / "work"
    work.mkdir()
    compiled = work / "lenet5.fp32.plan"
    compiled.write_bytes(b"stand-in plan bytes")
    stand_in = dataclasses.replace(typed.sidecar, artifact=compiled.name, sha256=sha256_file(compiled))
    plan = tmp_path / compiled.name
    publish(compiled, stand_in, plan)
    assert sidecar_path(plan) == tmp_path / "lenet5.fp32.plan.json" != typed.sidecar_path
    assert load_sidecar(plan) == stand_in and load_sidecar(typed.path) == typed.sidecar  # hashes match both files
    result = cli.invoke(app, ["infer", str(typed.path), str(digit_files[0][0]), "--json"])
    assert result.exit_code == 0, result.output
