"""`deploy build`, `deploy verify` and `deploy pipeline` through the CLI, on lenet5 (real trained weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import BadInput, ParityError


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the default folders (export/, engines/, calibration/, reports/) land here
    return tmp_path


def test_pipeline_runs_end_to_end_and_writes_the_report(cli: CliRunner, workdir: Path) -> None:
    result = cli.invoke(app, ["-q", "pipeline", "lenet5", "--duration", "0.3", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    report = answer["payload"]
    assert answer["command"] == "pipeline" and answer["passed"] and report["schema"] == "deploy.report/1"
    assert report["passed"] and report["labelled"]
    names = [row["name"] for row in report["rows"]]
    ours = ["fp32", "fp32 openvino", "fp16", "fp16 openvino", "int8", "int8-max", "int8-cpu", "int8-cpu openvino"]
    assert names == ["eager", *ours]  # OpenVINO (a dev dependency) compiles here; TensorRT has no GPU
    eager = report["rows"][0]
    for row in report["rows"][1:]:
        assert abs(row["accuracy"] - eager["accuracy"]) <= 0.01
        assert set(row["latency"]) == {"1", "8"} and row["speedup"]["1"]["median"] > 0
        assert row["latency"]["1"]["threads"] == eager["latency"]["1"]["threads"] == 1
    folder = workdir / "reports" / "lenet5"
    assert "| int8-cpu | onnxruntime |" in (folder / "report.md").read_text()
    assert (folder / "report.png").read_bytes().startswith(b"\x89PNG")
    assert (workdir / "engines" / "lenet5.int8-cpu.onnx").is_file()


def test_build_then_verify_through_the_cli(cli: CliRunner, workdir: Path) -> None:
    result = cli.invoke(app, ["-q", "build", "lenet5", "--int8", "--json"])
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)["payload"]
    assert [a["label"]["precision"] for a in built["artifacts"]] == ["int8"]
    assert "TensorRT" in built["statuses"][0]
    assert "demo set" in result.stderr  # no calibration/ folder here: the demo set, said out loud

    again = json.loads(cli.invoke(app, ["-q", "build", "lenet5", "--int8", "--json"]).stdout)["payload"]
    assert again["artifacts"][0]["reused_calibration"] is True

    result = cli.invoke(app, ["verify", "engines/lenet5.int8.onnx", "--count", "100", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["passed"] is answer["payload"]["passed"] is True
    verdict = answer["payload"]["verdicts"][0]
    assert verdict["samples"] == 100 and verdict["parity"]["outputs"][0]["cosine_min"] > 0.99


def test_verify_failure_has_the_parity_exit_code(cli: CliRunner, workdir: Path) -> None:
    assert cli.invoke(app, ["-q", "build", "lenet5", "--int8"]).exit_code == 0
    result = cli.invoke(app, ["verify", "engines/lenet5.int8.onnx", "--count", "20", "--atol", "0", "--rtol", "0"])
    assert result.exit_code == ParityError.exit_code and "parity failed" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "lenet5", "--all", "--int8"], "--all conflicts"),
        (["build", "lenet5", "--fp32", "--recalibrate"], "calibration options need"),
        (["build", "lenet5", "--calib-method", "percentile"], "entropy or max"),
        (["build", "lenet5", "--high-precision", "bf16"], "fp32 or fp16"),
        (["build", "lenet5", "--int8", "--calib-dir", "no-such-folder"], "does not exist"),
        (["build", "lenet5", "--int8", "--calib-count", "0"], "at least 1"),
        (["verify", "engines/missing.int8.onnx"], "does not exist"),
    ],
)
def test_bad_build_and_verify_input(cli: CliRunner, workdir: Path, args: list[str], message: str) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == BadInput.exit_code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(workdir.glob("engines/*.onnx"))  # nothing half-built


def test_pipeline_refuses_bad_timing_settings_before_any_work(cli: CliRunner, workdir: Path) -> None:
    for args, named in ((["--duration", "0"], "--duration 0"), (["--threads", "0"], "--threads 0")):
        result = cli.invoke(app, ["pipeline", "lenet5", *args])
        assert result.exit_code == BadInput.exit_code and named in result.output
    assert not (workdir / "export").exists() and not (workdir / "engines").exists()
