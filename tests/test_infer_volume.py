"""`deploy infer` on real volumes (folders, globs, batches, streamed CSV / JSON lines) and the Predictor under it."""

from __future__ import annotations

import csv
import functools
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deploy.cli import app
from deploy.errors import BadInput
from deploy.exporter import ExportConfig, ExportResult, export_model
from deploy.harness.classify import Classification, Predictor
from deploy.samples import sample_digits


@functools.cache
def _digit_images() -> tuple[Image.Image, ...]:
    return tuple(sample.image for sample in sample_digits())


def write_digits(folder: Path, count: int, *, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    images = _digit_images()
    paths = [folder / f"digit{start + i:05d}.png" for i in range(count)]
    for i, path in enumerate(paths):
        images[(start + i) % len(images)].save(path)
    return paths


@pytest.fixture()
def volume(tmp_path: Path) -> Path:
    """Seven digits, three of them in nested folders, beside a text file and a hidden file."""
    root = tmp_path / "volume"
    write_digits(root, 4)
    write_digits(root / "b" / "deeper", 2, start=4)
    write_digits(root / "a", 1, start=6)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes((root / "digit00000.png").read_bytes())
    return root


def csv_rows(stdout: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(stdout)))


def json_lines(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    *rows, last = [json.loads(line) for line in stdout.splitlines()]
    return rows, last["payload"]


def assert_same(first: list[Classification], second: list[Classification]) -> None:
    assert [c.predictions[0].index for c in first] == [c.predictions[0].index for c in second]
    for a, b in zip(first, second, strict=True):
        assert [p.index for p in a.predictions] == [p.index for p in b.predictions]
        np.testing.assert_allclose(
            [p.probability for p in a.predictions], [p.probability for p in b.predictions], atol=1e-5
        )


def test_a_folder_is_searched_recursively_in_sorted_order_skipping_non_images(
    cli: CliRunner, lenet5_export: ExportResult, volume: Path
) -> None:
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume), "--csv"])
    assert result.exit_code == 0, result.output
    expected = sorted(p for p in volume.rglob("*.png") if not p.name.startswith("."))
    assert [row["image"] for row in csv_rows(result.stdout)] == [str(p) for p in expected]
    assert "7 images" in result.stderr and "passed over 1 file that is not an image" in result.stderr


def test_a_quoted_glob_is_expanded_by_deploy(cli: CliRunner, lenet5_export: ExportResult, volume: Path) -> None:
    top = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume / "*.png"), "--csv"])
    assert top.exit_code == 0, top.output
    assert [Path(row["image"]).parent for row in csv_rows(top.stdout)] == [volume] * 4
    nested = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume / "**" / "*.png"), "--csv"])
    assert nested.exit_code == 0, nested.output
    assert len(csv_rows(nested.stdout)) == 7


def test_batches_give_the_results_of_one_image_at_a_time(lenet5_export: ExportResult, volume: Path) -> None:
    paths = sorted(volume.rglob("digit*.png"))
    with Predictor(lenet5_export.onnx_path) as predictor:
        one_by_one = predictor.predict(paths, batch=1)
        batched = predictor.predict(paths, batch=3)  # 3 + 3 + a last batch of 1
        streamed = list(predictor.iter_predict(paths))
    assert_same(one_by_one, batched)
    assert_same(one_by_one, streamed)
    assert [c.image for c in batched] == [str(p) for p in paths]


def test_json_lines_give_one_object_per_image_then_a_summary(
    cli: CliRunner, lenet5_export: ExportResult, volume: Path
) -> None:
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume), "--json", "--top", "3"])
    assert result.exit_code == 0, result.output
    rows, summary = json_lines(result.stdout)
    paths = sorted(p for p in volume.rglob("digit*.png"))
    with Predictor(lenet5_export.onnx_path) as predictor:
        expected = predictor.predict(paths, top_k=3)
    assert [row["image"] for row in rows] == [c.image for c in expected]
    for row, classification in zip(rows, expected, strict=True):
        assert [p["label"] for p in row["predictions"]] == [p.label for p in classification.predictions]
        np.testing.assert_allclose(
            [p["probability"] for p in row["predictions"]], [p.probability for p in classification.predictions]
        )
    assert summary["images"] == 7 and summary["not_images"] == 1 and summary["skipped"] == 0
    assert summary["batch"] == 8 and summary["model"] == "lenet5" and summary["images_per_second"] > 0


def test_csv_has_a_header_and_one_row_per_image(cli: CliRunner, lenet5_export: ExportResult, volume: Path) -> None:
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume), "--csv", "-k", "2", "-b", "2"])
    assert result.exit_code == 0, result.output
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert header == ["image", *(f"top{r}_{f}" for r in (1, 2) for f in ("label", "probability", "index"))]
    assert len(rows) == 7
    for row in rows:
        assert 1.0 >= float(row[2]) >= float(row[5]) >= 0.0 and row[1] == row[3]  # lenet5's labels are its indices


def test_a_static_batch_export_pads_its_last_batch(cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path) -> None:
    static = export_model(
        ExportConfig(model="lenet5", out_dir=tmp_path / "static", static=True, static_batch=4, verify=False)
    )
    images = write_digits(tmp_path / "six", 6)
    result = cli.invoke(app, ["infer", str(static.onnx_path), str(tmp_path / "six"), "--json"])
    assert result.exit_code == 0, result.output
    rows, summary = json_lines(result.stdout)
    assert summary["batch"] == 4 and summary["images"] == len(rows) == 6  # 4 + 2, and the 2 padded rows dropped
    with Predictor(lenet5_export.onnx_path) as dynamic:
        expected = dynamic.predict(images, batch=1)
    assert [row["predictions"][0]["index"] for row in rows] == [c.predictions[0].index for c in expected]
    np.testing.assert_allclose(
        [row["predictions"][0]["probability"] for row in rows],
        [c.predictions[0].probability for c in expected],
        atol=1e-5,
    )
    refused = cli.invoke(app, ["infer", str(static.onnx_path), str(images[0]), "--batch", "3"])
    assert refused.exit_code == BadInput.exit_code and "static batch of 4" in refused.output
    assert "--batch 4" in refused.output and "Traceback" not in refused.output


def test_a_batch_outside_the_sidecar_range_is_refused(
    cli: CliRunner, lenet5_export: ExportResult, volume: Path
) -> None:
    batches = lenet5_export.sidecar.batch
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume), "--batch", str(batches.max + 1)])
    assert result.exit_code == BadInput.exit_code, result.output
    assert f"batch range 1..{batches.max}" in result.output and f"--batch {batches.max}" in result.output
    assert result.stdout == ""


def test_the_predictor_takes_paths_pil_images_and_arrays_alike(lenet5_export: ExportResult, tmp_path: Path) -> None:
    path = write_digits(tmp_path, 1)[0]
    with Image.open(path) as opened:
        picture = opened.copy()
    pixels = np.asarray(picture.convert("RGB"))  # HxWx3 uint8
    with Predictor(lenet5_export.onnx_path) as predictor:
        assert predictor.labels == tuple(str(d) for d in range(10))
        assert predictor.preprocessing == lenet5_export.sidecar.preprocessing and predictor.model == "lenet5"
        by_path = predictor.predict(path)
        by_str = predictor.predict([str(path)])
        by_picture = predictor.predict(picture)
        by_pixels = predictor.predict([pixels])
        from deploy.preprocessing import load_image, preprocess

        tensor = preprocess(load_image(path), predictor.preprocessing)  # float32 CHW, already preprocessed
        by_tensor = predictor.predict(tensor)
        by_stack = predictor.predict(np.stack([tensor, tensor]))  # NCHW: two images
        with pytest.raises(BadInput, match=r"float32 array of shape \[3, 3\]"):
            predictor.predict(np.zeros((3, 3), dtype=np.float32))
    for other in (by_str, by_picture, by_pixels, by_tensor, by_stack[:1], by_stack[1:]):
        assert_same(by_path, other)
    assert by_path[0].image == str(path) and by_stack[1].image == "<array 0[1]>"


def test_a_corrupt_image_in_a_folder_is_skipped_with_a_warning(
    cli: CliRunner, lenet5_export: ExportResult, volume: Path
) -> None:
    broken = volume / "b" / "broken.jpg"
    buffer = io.BytesIO()
    _digit_images()[0].resize((256, 256)).save(buffer, format="JPEG")
    broken.write_bytes(buffer.getvalue()[:600])  # headers intact, pixels cut off
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume), "--json"])
    assert result.exit_code == 0, result.output
    rows, summary = json_lines(result.stdout)
    assert len(rows) == 7 and summary["skipped"] == 1
    assert "warning: skipped" in result.stderr and "broken.jpg" in result.stderr

    named = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(broken)])
    assert named.exit_code == BadInput.exit_code and "broken.jpg" in named.output and "Traceback" not in named.output


def test_a_named_file_that_is_not_an_image_fails_before_any_inference(
    cli: CliRunner, lenet5_export: ExportResult, volume: Path
) -> None:
    good = volume / "digit00000.png"
    result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(good), str(volume / "notes.txt")])
    assert result.exit_code == BadInput.exit_code and "notes.txt" in result.output
    assert result.stdout == ""  # checked before the first batch ran
    missing = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), str(volume / "nope.png")])
    assert missing.exit_code == BadInput.exit_code and "nope.png does not exist" in missing.output


def test_an_empty_folder_or_a_glob_matching_nothing_is_refused_by_name(
    cli: CliRunner, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("a")
    cases = {
        str(tmp_path / "empty"): "is empty",
        str(tmp_path / "texts"): "has no images",
        str(tmp_path / "*.jpg"): "matches no files",
    }
    for argument, reason in cases.items():
        result = cli.invoke(app, ["infer", str(lenet5_export.onnx_path), argument])
        assert result.exit_code == BadInput.exit_code, result.output
        assert argument in result.output and reason in result.output and "Traceback" not in result.output


def _peak_rss_mb(command: list[str]) -> float:
    """Peak RSS of `command`, measured by a fresh wrapper process whose only child it is."""
    wrapper = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *command], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024  # Linux reports kilobytes


@pytest.mark.slow
def test_memory_stays_flat_from_100_to_1000_images(lenet5_export: ExportResult, tmp_path: Path) -> None:
    small, large = tmp_path / "100", tmp_path / "1000"
    write_digits(small, 100)
    write_digits(large, 1000)
    command = [sys.executable, "-m", "deploy", "infer", str(lenet5_export.onnx_path)]
    peak_small = _peak_rss_mb([*command, str(small), "--csv"])
    peak_large = _peak_rss_mb([*command, str(large), "--csv"])
    assert peak_large - peak_small < 30, (peak_small, peak_large)
