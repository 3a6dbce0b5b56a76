"""Trained-weight truth for the classic families: a residual, a concatenating, a dense and a VGG-BN network trained
on real digits (deploy.zoo.digits), exported with a fine-tune's 10-class head, built in every precision and judged on
the held-out split — where an INT8 or FP16 regression shows as lost accuracy, not as ties among random logits.

The `trained` marker keeps these out of the default run (each trains once per cache, 1-7 minutes on 2 cores; the
test session's cache is empty, so every run trains from scratch); CI runs them in a step of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deploy.builder import BuildConfig, build
from deploy.cli.app import app
from deploy.customization import Customization
from deploy.exporter import ExportConfig, ExportResult, export_model
from deploy.harness.eager import eager_runner
from deploy.harness.verify import VerifyConfig, verify
from deploy.precision.calibration import CalibrationConfig
from deploy.samples import digits_split
from deploy.sidecar import HeadInfo, load_sidecar
from deploy.zoo import LoadedModel, digits, get_spec, load_model
from deploy.zoo.catalog import catalog
from deploy.zoo.digits import RECIPES, DigitsRecipe, TrainedDigits, cache_path

FAMILIES = ["resnet18", "googlenet", "densenet121", "vgg11_bn"]
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def test_digits_weights_exist_for_one_network_of_each_family() -> None:
    """Control flow only (nothing trains): which models offer `digits`, and that each recipe caches apart."""
    from deploy.errors import WeightsError

    assert set(FAMILIES) | {"lenet5"} == set(RECIPES)
    assert len({recipe.name for recipe in RECIPES.values()}) == len(RECIPES)
    assert {get_spec(name).family for name in FAMILIES} == {"ResNet", "Inception", "DenseNet", "VGG"}
    with pytest.raises(WeightsError, match="'digits' weights exist for"):
        load_model(get_spec("alexnet2012"), "digits")


def test_deploy_list_offers_digits_for_the_trained_families_and_marks_them_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_CACHE", str(tmp_path))
    entries = {entry.name: entry for entry in catalog("*")}
    assert {name for name, entry in entries.items() if "digits" in entry.weights} == set(RECIPES)
    assert not any("digits" in entry.cached_weights for entry in entries.values())
    cache_path(RECIPES["googlenet"]).write_bytes(b"")  # listing looks for the file, it does not load it
    assert "digits" in catalog("googlenet")[0].cached_weights
    assert "digits" not in catalog("resnet18")[0].cached_weights


def test_a_damaged_digits_cache_is_retrained_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control flow only: the trainer is replaced by one that keeps the initial weights."""
    monkeypatch.setenv("DEPLOY_CACHE", str(tmp_path))
    recipe = RECIPES["resnet18"]
    cache_path(recipe).write_bytes(b"not a checkpoint")
    trained: list[str] = []

    def keep_initial(module: torch.nn.Module, prep: object, recipe: DigitsRecipe) -> TrainedDigits:
        trained.append(recipe.name)
        return TrainedDigits({k: v.clone() for k, v in module.state_dict().items()}, 0.5, recipe.epochs, seconds=1.0)

    monkeypatch.setattr(digits, "train_on_digits", keep_initial)
    loaded = load_model(get_spec("resnet18"), "digits")
    assert trained == [recipe.name]
    assert loaded.num_classes == 10 and loaded.input_shape == (3, recipe.size, recipe.size)
    assert loaded.source.detail["test_accuracy"] == 0.5 and loaded.source.detail["input_size"] == recipe.size
    assert torch.load(cache_path(recipe), weights_only=True)["test_accuracy"] == 0.5  # replaced, atomically
    again = load_model(get_spec("resnet18"), "digits", Customization(num_classes=10))  # how eager rebuilds it
    assert trained == [recipe.name]  # read from the cache this time
    assert all(torch.equal(v, again.module.state_dict()[k]) for k, v in loaded.module.state_dict().items())


@dataclass(frozen=True)
class TrainedExport:
    trained: LoadedModel  # the first load of this session: trained here, since the test session's cache is empty
    exported: ExportResult  # its export, made from the cache the first load wrote


@pytest.fixture(scope="module", params=FAMILIES)
def trained_export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TrainedExport:
    trained = load_model(get_spec(request.param), "digits")
    out_dir = tmp_path_factory.mktemp(request.param) / "export"
    exported = export_model(ExportConfig(model=request.param, weights="digits", out_dir=out_dir, parity_samples=4))
    return TrainedExport(trained, exported)


@pytest.mark.trained
def test_the_eager_reference_is_the_trained_module_bit_for_bit(trained_export: TrainedExport) -> None:
    """What `deploy verify` judges every artifact against (the module rebuilt from the sidecar, its weights read
    back from the cache) holds exactly the tensors training produced and the export was made from."""
    sidecar = trained_export.exported.sidecar
    trained = trained_export.trained.module.state_dict()
    with eager_runner(sidecar) as reference:
        rebuilt = reference.module.state_dict()
    assert rebuilt.keys() == trained.keys()
    different = [key for key, value in trained.items() if not torch.equal(value, rebuilt[key])]
    assert not different, different
    recorded = trained_export.trained.source.detail
    assert sidecar.weights.detail["recipe"] == recorded["recipe"] == RECIPES[sidecar.model].name
    assert sidecar.preprocessing == trained_export.trained.source.preprocessing
    assert sidecar.inputs[0].shape[1:] == (3, RECIPES[sidecar.model].size, RECIPES[sidecar.model].size)


@pytest.mark.trained
def test_every_precision_keeps_the_trained_accuracy_on_held_out_digits(
    trained_export: TrainedExport, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = trained_export.exported
    name = exported.sidecar.model
    spec = get_spec(name)
    assert exported.sidecar.head == HeadInfo(str(spec.head), 10)
    assert exported.sidecar.weights.kind == "digits" and exported.sidecar.labels == tuple("0123456789")

    root = exported.onnx_path.parent.parent
    built = build(
        BuildConfig(
            sources=(str(exported.onnx_path),),
            targets=("tensorrt", "onnxruntime"),  # TensorRT's S8 Q/DQ and the CPU's U8S8, both judged on ORT here
            export_dir=root / "export",
            engines_dir=root / "engines",
            calibration=CalibrationConfig(directory=root / "calibration"),  # absent: the digits' training split
        )
    )
    assert not built.rejected, [a.verdict.failures for a in built.rejected if a.verdict]
    assert {"fp16", "int8", "int8-cpu"} <= {a.name for a in built.artifacts}
    artifacts = (exported.onnx_path, *(a.path for a in built.artifacts))
    result = verify(VerifyConfig(artifacts))
    assert result.labelled and "digits" in result.images
    rows = {v.artifact: v for v in result.verdicts}
    eager = next(iter(rows.values())).eager_accuracy
    assert eager is not None and eager >= 0.90, f"{name}: eager held-out accuracy {eager}"
    # The trainer measured the same split in its own batches: one image's worth of float re-association at most.
    assert abs(eager - exported.sidecar.weights.detail["test_accuracy"]) <= 1 / len(digits_split().test) + 1e-6
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
    split = digits_split()
    for index, sample in enumerate(split.test):
        folder = tmp_path / "held-out" / NAMES[sample.label]
        folder.mkdir(parents=True, exist_ok=True)
        sample.image.save(folder / f"{index}.png")
    # Calibration on images like the training data, as a user of a fine-tune would give it: the demo fallback for a
    # checkpoint is scikit-image's photos, whose ranges failed the CPU U8S8 INT8 here (cosine 0.896 < 0.99).
    (tmp_path / "calib").mkdir()
    for index, sample in enumerate(split.train[:128]):
        sample.image.save(tmp_path / "calib" / f"{index}.png")
    prep = trained.source.preprocessing
    result = CliRunner().invoke(
        app,
        [
            "pipeline", "resnet18", "--weights", "r18_digits.pt", "--labels", "labels.txt",
            "--input-size", str(prep.crop_size), "--resize-size", str(prep.resize_size),
            "--mean", ",".join(map(str, prep.mean)), "--std", ",".join(map(str, prep.std)),
            "--images", "held-out", "--calib-dir", "calib", "--calib-count", "128",
            "--batch", "1", "--duration", "0.5", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["payload"]
    sidecar = load_sidecar(Path("export/resnet18.onnx"))
    assert sidecar.head == HeadInfo("fc", 10) and sidecar.labels == NAMES
    assert f"--labels {tmp_path.resolve() / 'labels.txt'}" in sidecar.export_options
    artifacts = [row for row in report["rows"] if row["artifact"] is not None and not row.get("peer")]
    assert len(artifacts) >= 4  # fp32, fp16, int8 (entropy, max), int8-cpu, and OpenVINO's where installed
    for row in artifacts:
        assert row["passed"] and row["accuracy"] >= 0.90, row
