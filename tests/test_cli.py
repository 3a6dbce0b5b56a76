"""The CLI through Typer's CliRunner: real exports, real images, and one clear line for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import ArtifactError, BadInput, OutputNotWritable, ParityError, UnknownModel, WeightsError
from deploy.exporter import ExportResult
from deploy.samples import sample_photos
from deploy.zoo import get_spec


def _fails_cleanly(result, code: int, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_help_and_import_do_not_load_torch_or_onnxruntime() -> None:
    code = (
        "import sys, deploy, deploy.cli; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(deploy.cli.app, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = {'torch', 'onnxruntime', 'onnx', 'tensorrt', 'pycuda'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_list_shows_every_architecture(cli: CliRunner) -> None:
    result = cli.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in ("lenet5", "alexnet2012", "inception_block", "vgg19_bn", "densenet201", "inception_v3"):
        assert name in result.output


def test_list_json_is_machine_readable(cli: CliRunner) -> None:
    result = cli.invoke(app, ["list", "resnet*", "--json"])
    answer = json.loads(result.stdout)
    assert answer["schema"] == "deploy.output/1" and answer["command"] == "list" and answer["passed"] is None
    rows = answer["payload"]["models"]
    assert all("slow" not in row for row in rows)  # a test-suite marker, not something a user chooses by
    assert [row["name"] for row in rows] == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    resnet50 = rows[-1]
    assert resnet50["num_params"] == 25_557_032 and resnet50["input_shape"] == [3, 224, 224]
    assert "IMAGENET1K_V2" in resnet50["weights"] and "random" in resnet50["weights"]


def test_list_unknown_name_suggests(cli: CliRunner) -> None:
    _fails_cleanly(cli.invoke(app, ["list", "densnet121"]), UnknownModel.exit_code, "densenet121")


def test_export_then_infer_through_the_cli(cli: CliRunner, tmp_path: Path, photo_dir: Path) -> None:
    out = tmp_path / "export"
    result = cli.invoke(app, ["--quiet", "export", "resnet18", "--weights", "random", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    sidecar = answer["payload"]["sidecar"]
    assert answer["passed"] and sidecar["model"] == "resnet18" and sidecar["parity"]["passed"]
    onnx_path = out / "resnet18.onnx"
    assert onnx_path.is_file()

    images = sorted(photo_dir.iterdir())
    result = cli.invoke(app, ["infer", str(onnx_path), *map(str, images), "--json"])
    assert result.exit_code == 0, result.output
    rows, summary = _json_lines(result.stdout)
    assert summary["preprocessing_from"] == "sidecar" and summary["images"] == len(rows) == len(images)
    assert [row["image"] for row in rows] == [str(path) for path in images]
    for item in rows:
        probabilities = [p["probability"] for p in item["predictions"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-6

    table = cli.invoke(app, ["infer", str(onnx_path), str(images[0])])
    assert table.exit_code == 0 and rows[0]["predictions"][0]["label"] in table.stdout
    assert len(table.stdout.splitlines()) == 2  # one compact table: a header and one row per image
    assert "img/s" in table.stderr and "img/s" not in table.stdout


def _json_lines(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`deploy infer --json`: one object per image, then the envelope with the summary as its payload."""
    *rows, last = [json.loads(line) for line in stdout.splitlines()]
    assert all("schema" not in row for row in rows) and last["schema"] == "deploy.output/1"
    assert last["command"] == "infer"
    return rows, last["payload"]


def test_infer_with_trained_lenet5_reads_real_digits(
    cli: CliRunner, tmp_path: Path, digit_files: list[tuple[Path, int]]
) -> None:
    """Real behaviour on real data: LeNet-5 trained on the digits' training split, exported, run by ONNX Runtime."""
    from deploy.zoo.digits import train_lenet5

    spec = get_spec("lenet5")
    torch.manual_seed(0)
    trained = train_lenet5(spec.build(), spec.preprocessing, epochs=8)
    checkpoint = tmp_path / "lenet5-digits.pt"
    torch.save(trained.state_dict, checkpoint)
    result = cli.invoke(app, ["-q", "export", "lenet5", "--weights", str(checkpoint), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output

    # digit_files come from the tail of sklearn's set; some of them were in the training split, most not.
    result = cli.invoke(app, ["infer", str(tmp_path / "lenet5.onnx"), *(str(p) for p, _ in digit_files), "--json"])
    assert result.exit_code == 0, result.output
    predicted = [int(item["predictions"][0]["label"]) for item in _json_lines(result.stdout)[0]]
    truth = [label for _, label in digit_files]
    assert np.mean(np.array(predicted) == np.array(truth)) >= 0.85


def test_infer_converts_unusual_image_modes(cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult) -> None:
    photo = sample_photos(1)[0].image
    files = [
        photo.convert("L").save(tmp_path / "gray.png") or tmp_path / "gray.png",
        photo.convert("RGBA").save(tmp_path / "rgba.png") or tmp_path / "rgba.png",
        photo.convert("CMYK").save(tmp_path / "cmyk.jpg") or tmp_path / "cmyk.jpg",
        photo.convert("P").save(tmp_path / "palette.gif") or tmp_path / "palette.gif",
    ]
    sixteen = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    sixteen.save(tmp_path / "sixteen.png")
    files.append(tmp_path / "sixteen.png")
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), *map(str, files), "--json"])
    assert result.exit_code == 0, result.output
    assert len(_json_lines(result.stdout)[0]) == len(files)


# --- bad input: one clear line, the right exit code, nothing half-written -------------------------------


def test_export_unknown_model_suggests_close_names(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["export", "resnet5", "-o", str(tmp_path)])
    _fails_cleanly(result, UnknownModel.exit_code, "unknown model 'resnet5'", "resnet50")
    assert list(tmp_path.iterdir()) == []


def test_export_to_an_unwritable_folder_fails_before_any_work(cli: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli.invoke(app, ["export", "lenet5", "-o", str(blocker / "sub")])
    _fails_cleanly(result, OutputNotWritable.exit_code, "cannot write to output folder", "--out-dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_export_to_a_read_only_folder_fails(cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    _fails_cleanly(cli.invoke(app, ["export", "lenet5", "-o", str(folder)]), OutputNotWritable.exit_code)


def test_export_checkpoint_that_is_not_a_state_dict(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(get_spec("lenet5").build(), path)
    result = cli.invoke(app, ["export", "lenet5", "--weights", str(path), "-o", str(tmp_path / "out")])
    _fails_cleanly(result, WeightsError.exit_code, "not a loadable state_dict", "state_dict()")
    assert not (tmp_path / "out" / "lenet5.onnx").exists()


def test_export_pretrained_weights_offline_names_the_alternatives(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    result = cli.invoke(app, ["export", "resnet18", "-o", str(tmp_path / "out")])
    _fails_cleanly(result, WeightsError.exit_code, "--weights random", "--weights PATH")


def test_export_parity_failure_has_its_own_exit_code(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["export", "resnet18", "-w", "random", "-o", str(tmp_path), "--atol", "0", "--rtol", "0"])
    _fails_cleanly(result, ParityError.exit_code, "differs from eager PyTorch", "--no-verify")
    assert list(tmp_path.iterdir()) == []


def test_export_unknown_simplifier(cli: CliRunner, tmp_path: Path) -> None:
    _fails_cleanly(cli.invoke(app, ["export", "lenet5", "--simplifier", "magic"]), BadInput.exit_code, "onnxslim")


def test_infer_missing_sidecar_says_so(
    cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult, digit_files: list[tuple[Path, int]]
) -> None:
    lonely = tmp_path / "lenet5.onnx"
    lonely.write_bytes(lenet5_export.onnx_path.read_bytes())
    result = cli.invoke(app, ["infer", str(lonely), str(digit_files[0][0])])
    _fails_cleanly(result, ArtifactError.exit_code, "no sidecar", "--model")
    # With --model the zoo's preprocessing is assumed, and the output says so.
    result = cli.invoke(app, ["infer", str(lonely), str(digit_files[0][0]), "--model", "lenet5"])
    assert result.exit_code == 0 and "assumed lenet5's default preprocessing" in result.output


def test_infer_stale_sidecar_is_detected(
    cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult, digit_files: list[tuple[Path, int]]
) -> None:
    onnx_path = tmp_path / "lenet5.onnx"
    onnx_path.write_bytes(lenet5_export.onnx_path.read_bytes() + b"\0")
    (tmp_path / "lenet5.json").write_text(lenet5_export.sidecar_path.read_text())
    _fails_cleanly(
        cli.invoke(app, ["infer", str(onnx_path), str(digit_files[0][0])]),
        ArtifactError.exit_code,
        "sha256 mismatch",
    )


@pytest.mark.parametrize("content", [b"", b"garbage that is not protobuf \xff\x00\x13", b"\x08\x07" * 50])
def test_infer_corrupt_onnx_file(
    cli: CliRunner, tmp_path: Path, content: bytes, digit_files: list[tuple[Path, int]]
) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    result = cli.invoke(app, ["infer", str(path), str(digit_files[0][0]), "--model", "lenet5"])
    _fails_cleanly(result, ArtifactError.exit_code, "cannot load", str(path))


def test_infer_truncated_onnx_with_its_sidecar(
    cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult, digit_files: list[tuple[Path, int]]
) -> None:
    onnx_path = tmp_path / "lenet5.onnx"
    onnx_path.write_bytes(lenet5_export.onnx_path.read_bytes()[:5000])
    (tmp_path / "lenet5.json").write_text(lenet5_export.sidecar_path.read_text())
    _fails_cleanly(cli.invoke(app, ["infer", str(onnx_path), str(digit_files[0][0])]), ArtifactError.exit_code)


def test_infer_non_onnx_file(cli: CliRunner, tmp_path: Path, digit_files: list[tuple[Path, int]]) -> None:
    path = tmp_path / "model.txt"
    path.write_text("hello")
    _fails_cleanly(
        cli.invoke(app, ["infer", str(path), str(digit_files[0][0])]), BadInput.exit_code, "is not a deploy artifact"
    )


def test_infer_missing_artifact(cli: CliRunner, tmp_path: Path, digit_files: list[tuple[Path, int]]) -> None:
    result = cli.invoke(app, ["infer", str(tmp_path / "nope.onnx"), str(digit_files[0][0])])
    _fails_cleanly(result, BadInput.exit_code, "does not exist", "deploy export")


def test_infer_file_that_is_not_an_image(cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult) -> None:
    path = tmp_path / "cat.jpg"
    path.write_text("meow")
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(path)])
    _fails_cleanly(result, BadInput.exit_code, "not an image", "cat.jpg")


def test_infer_truncated_image(cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult) -> None:
    path = tmp_path / "cut.png"
    sample_photos(1)[0].image.save(path)
    path.write_bytes(path.read_bytes()[:3000])
    _fails_cleanly(cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(path)]), BadInput.exit_code, "cut.png")


def test_infer_enormous_image_keeps_the_bomb_guard(
    cli: CliRunner, tmp_path: Path, lenet5_export: ExportResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    Image.new("L", (400, 400)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)  # 160,000 pixels: beyond twice the limit
    _fails_cleanly(cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(path)]), BadInput.exit_code, "too large")


def test_infer_on_a_feature_extractor_explains_why_no_labels(cli: CliRunner, tmp_path: Path, photo_dir: Path) -> None:
    result = cli.invoke(
        app, ["-q", "export", "inception_block", "-o", str(tmp_path), "--no-verify", "--max-batch", "2"]
    )
    assert result.exit_code == 0, result.output
    image = next(photo_dir.iterdir())
    _fails_cleanly(
        cli.invoke(app, ["infer", str(tmp_path / "inception_block.onnx"), str(image)]),
        BadInput.exit_code,
        "not class scores",
    )


def test_debug_shows_the_traceback(cli: CliRunner) -> None:
    result = cli.invoke(app, ["--debug", "export", "resnet5"])
    assert isinstance(result.exception, UnknownModel)


def test_json_output_stays_clean_of_progress(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["export", "lenet5", "-o", str(tmp_path), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["payload"]["sidecar"]["model"] == "lenet5"
    assert "loading lenet5" in result.stderr
