"""Trained-weight truth for the classic families: a residual, a concatenating and a dense network trained on
real digits (deploy.zoo.digits), exported with a fine-tune's 10-class head, built in every precision and judged on
the held-out split — where an INT8 or FP16 regression shows as lost accuracy, not as ties among random logits.

The `trained` marker keeps these out of the default run (each trains once per cache, 1-4 minutes on 2 cores); CI
runs them in a step of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deploy.builder import BuildConfig, build
from deploy.cli.app import app
from deploy.exporter import ExportConfig, export_model
from deploy.harness.verify import VerifyConfig, verify
from deploy.precision.calibration import CalibrationConfig
from deploy.samples import digits_split
from deploy.sidecar import HeadInfo, load_sidecar
from deploy.zoo import get_spec, load_model
from deploy.zoo.digits import RECIPES

FAMILIES = ["resnet18", "googlenet", "densenet121"]  # VGG: see deploy/zoo/digits.py RECIPES
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def test_digits_weights_exist_for_one_network_of_each_family() -> None:
    """Control flow only (nothing trains): which models offer `digits`, and that each recipe caches apart."""
    from deploy.errors import WeightsError

    assert set(FAMILIES) | {"lenet5"} == set(RECIPES)
    assert len({recipe.name for recipe in RECIPES.values()}) == len(RECIPES)
    assert {get_spec(name).family for name in FAMILIES} == {"ResNet", "Inception", "DenseNet"}
    with pytest.raises(WeightsError, match="'digits' weights exist for"):
        load_model(get_spec("alexnet2012"), "digits")


@pytest.mark.trained
@pytest.mark.parametrize("name", FAMILIES)
def test_every_precision_keeps_the_trained_accuracy_on_held_out_digits(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = export_model(ExportConfig(model=name, weights="digits", out_dir=tmp_path / "export", parity_samples=4))
    spec = get_spec(name)
    assert exported.sidecar.head == HeadInfo(str(spec.head), 10)
    assert exported.sidecar.weights.kind == "digits" and exported.sidecar.labels == tuple("0123456789")

    built = build(
        BuildConfig(
            sources=(str(exported.onnx_path),),
            targets=("tensorrt", "onnxruntime"),  # TensorRT's S8 Q/DQ and the CPU's U8S8, both judged on ORT here
            export_dir=tmp_path / "export",
            engines_dir=tmp_path / "engines",
            calibration=CalibrationConfig(directory=tmp_path / "calibration"),  # absent: the digits' training split
        )
    )
    assert not built.rejected, [a.verdict.failures for a in built.rejected if a.verdict]
    artifacts = (exported.onnx_path, *(a.path for a in built.artifacts))
    result = verify(VerifyConfig(artifacts))
    assert result.labelled and "digits" in result.images
    rows = {v.artifact: v for v in result.verdicts}
    eager = next(iter(rows.values())).eager_accuracy
    assert eager is not None and eager >= 0.90, f"{name}: eager held-out accuracy {eager}"
    for verdict in rows.values():
        assert verdict.passed, (verdict.artifact, verdict.failures)
        assert verdict.artifact_accuracy is not None
        assert verdict.artifact_accuracy >= eager - 0.01, (verdict.artifact, eager, verdict.artifact_accuracy)
    with capsys.disabled():  # the accuracy table of the closing note, one line per family
        cells = ", ".join(f"{Path(a).name}: {v.artifact_accuracy:.2%}" for a, v in rows.items())
        print(f"\n{name} ({len(digits_split().test)} held-out digits): eager {eager:.2%}; {cells}")


@pytest.mark.trained
def test_a_fine_tuned_resnet18_checkpoint_goes_through_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's 10-class fine-tune (a plain state_dict from a training script) and its class names: the head size
    comes from the checkpoint; the flags say the preprocessing it was trained with and where its held-out images
    are (class subfolders named by label)."""
    monkeypatch.chdir(tmp_path)
    trained = load_model(get_spec("resnet18"), "digits")
    torch.save(trained.module.state_dict(), tmp_path / "r18_digits.pt")
    (tmp_path / "labels.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    for index, sample in enumerate(digits_split().test):
        folder = tmp_path / "held-out" / NAMES[sample.label]
        folder.mkdir(parents=True, exist_ok=True)
        sample.image.save(folder / f"{index}.png")
    prep = trained.source.preprocessing
    result = CliRunner().invoke(
        app,
        [
            "pipeline", "resnet18", "--weights", "r18_digits.pt", "--labels", "labels.txt",
            "--input-size", str(prep.crop_size), "--resize-size", str(prep.resize_size),
            "--mean", ",".join(map(str, prep.mean)), "--std", ",".join(map(str, prep.std)),
            "--images", "held-out", "--batch", "1", "--duration", "0.5", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    sidecar = load_sidecar(Path("export/resnet18.onnx"))
    assert sidecar.head == HeadInfo("fc", 10) and sidecar.labels == NAMES
    assert f"--labels {tmp_path.resolve() / 'labels.txt'}" in sidecar.export_options
    artifacts = [row for row in report["rows"] if row["artifact"] is not None and not row.get("peer")]
    assert len(artifacts) >= 4  # fp32, fp16, int8 (entropy, max), int8-cpu, and OpenVINO's where installed
    for row in artifacts:
        assert row["passed"] and row["accuracy"] >= 0.90, row
