"""Every `--json` answer is one envelope: the same top-level keys whatever the command, its result under payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from deploy.cli import app
from deploy.codec import ENVELOPE_SCHEMA, VERSIONED
from deploy.errors import ParityError
from deploy.exporter import ExportResult

KEYS = ["schema", "command", "passed", "versions", "payload"]


def _answer(cli: CliRunner, *args: str, exit_code: int = 0) -> dict[str, Any]:
    result = cli.invoke(app, ["-q", *args])
    assert result.exit_code == exit_code, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    assert list(answer) == KEYS and answer["schema"] == ENVELOPE_SCHEMA
    assert set(answer["versions"]) == {"python", *VERSIONED} and answer["versions"]["deploy"]
    return answer


def test_every_command_answers_in_the_same_envelope(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    onnx = str(lenet5_export.onnx_path)
    listed = _answer(cli, "list", "lenet5", "--json")
    samples = _answer(cli, "samples", str(tmp_path / "samples"), "--photos", "1", "--digits", "1", "--json")
    verified = _answer(cli, "verify", onnx, "--count", "16", "--json")
    timed = _answer(cli, "bench", onnx, "--batch", "1", "--duration", "0.1", "--threads", "1", "--json")
    commands = [a["command"] for a in (listed, samples, verified, timed)]
    assert commands == ["list", "samples", "verify", "bench"]
    assert isinstance(listed["payload"]["models"], list) and len(samples["payload"]["files"]) == 2
    assert listed["passed"] is None and timed["passed"] is None  # they judge nothing
    assert verified["passed"] is True and verified["payload"]["passed"] is True


def test_bench_json_rows_have_stable_keys_images_per_second_and_the_full_path(
    cli: CliRunner, lenet5_export: ExportResult
) -> None:
    onnx = str(lenet5_export.onnx_path)
    timed = _answer(cli, "bench", onnx, "--batch", "1,2", "--duration", "0.1", "--threads", "1", "--json")
    rows = timed["payload"]["rows"]
    assert [(row["batch"], row["runner"]) for row in rows] == [
        (1, "eager"), (1, "lenet5.onnx"), (2, "eager"), (2, "lenet5.onnx")
    ]  # fmt: skip
    assert len({tuple(row) for row in rows}) == 1  # every row has the same keys, in the same order
    for row in rows:
        assert row["images_per_s"] > 0 and row["p50_ms"] <= row["max_ms"]
        assert row["artifact"] == (None if row["runner"] == "eager" else onnx)
        assert len(f"{row['p50_ms']:.10g}".replace(".", "").lstrip("0")) <= 4  # 4 significant digits, no noise


def test_a_failed_verify_says_passed_false_at_the_top_and_points_at_the_json(
    cli: CliRunner, lenet5_export: ExportResult
) -> None:
    args = ["verify", str(lenet5_export.onnx_path), "--count", "16", "--atol", "0", "--rtol", "0", "--json"]
    result = cli.invoke(app, args)
    assert result.exit_code == ParityError.exit_code
    answer = json.loads(result.stdout)
    assert answer["passed"] is False and answer["payload"]["verdicts"][0]["passed"] is False
    assert "table above" not in result.stderr and "payload.verdicts" in result.stderr
