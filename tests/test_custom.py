"""Your fine-tune of a registered architecture: its head size (given or read from the checkpoint), its labels and its
preprocessing go from the command line into the sidecar, and every later command uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deploy.cli.app import app
from deploy.customization import Customization, read_labels
from deploy.errors import BadInput, WeightsError
from deploy.sidecar import HeadInfo, load_sidecar
from deploy.zoo import get_spec, load_model

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _fails_cleanly(result, code: int, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.fixture(scope="module")
def five_class_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LeNet-5 with a 5-class head saved the way training scripts wrap it (Lightning-style `state_dict` key)."""
    loaded = load_model(get_spec("lenet5"), "random", Customization(num_classes=5))
    path = tmp_path_factory.mktemp("ckpt") / "lenet5_5.pt"
    torch.save({"state_dict": loaded.module.state_dict(), "epoch": 3}, path)
    return path


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits-trained LeNet-5 saved as a user's own checkpoint (a plain state_dict): real weights."""
    path = tmp_path_factory.mktemp("ckpt") / "lenet5_digits.pt"
    torch.save(load_model(get_spec("lenet5"), "digits").module.state_dict(), path)
    return path


def test_a_checkpoint_with_another_head_exports_with_that_head_and_no_flag(
    cli: CliRunner, tmp_path: Path, five_class_checkpoint: Path, digit_files: list[tuple[Path, int]]
) -> None:
    out = tmp_path / "export"
    result = cli.invoke(app, ["export", "lenet5", "--weights", str(five_class_checkpoint), "-o", str(out)])
    assert result.exit_code == 0, result.output
    sidecar = load_sidecar(out / "lenet5.onnx")
    assert sidecar.head == HeadInfo("classifier.5", 5)
    assert sidecar.outputs[0].shape[-1] == 5
    assert sidecar.labels is None  # the digits' names belong to the 10-class head, not to this one

    # The eager reference is rebuilt with the same head from the sidecar: verify judges it, and passes.
    verified = cli.invoke(app, ["verify", str(out / "lenet5.onnx"), "--json"])
    assert verified.exit_code == 0, verified.output  # exit 0: every artifact passed
    assert json.loads(verified.stdout)["payload"]["verdicts"][0]["parity"]["outputs"][0]["passed"] is True

    inferred = cli.invoke(app, ["infer", str(out / "lenet5.onnx"), str(digit_files[0][0]), "--json"])
    assert inferred.exit_code == 0, inferred.output
    assert "class " in inferred.stdout


def test_fine_tune_labels_are_recorded_and_judged_on_held_out_digits(
    cli: CliRunner, tmp_path: Path, digits_checkpoint: Path, digit_files: list[tuple[Path, int]]
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\r\n".join(DIGIT_NAMES) + "\r\n\r\n", encoding="utf-8")  # Windows line ends, trailing blank
    out = tmp_path / "export"
    exported = cli.invoke(
        app, ["export", "lenet5", "--weights", str(digits_checkpoint), "--labels", str(labels), "-o", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    sidecar = load_sidecar(out / "lenet5.onnx")
    assert sidecar.labels == DIGIT_NAMES and sidecar.labels_source == str(labels)
    assert sidecar.head is None and sidecar.weights.kind == "checkpoint"

    verified = cli.invoke(app, ["verify", str(out / "lenet5.onnx"), "--json"])
    assert verified.exit_code == 0, verified.output
    verdict = json.loads(verified.stdout)["payload"]["verdicts"][0]
    assert verdict["artifact_accuracy"] >= 0.9  # real held-out digits, judged strictly (exit 0: passed)

    path, digit = digit_files[0]
    inferred = cli.invoke(app, ["infer", str(out / "lenet5.onnx"), str(path), "--json"])
    assert inferred.exit_code == 0, inferred.output
    assert DIGIT_NAMES[digit] in inferred.stdout


@pytest.mark.slow  # a resnet18 export (~15 s alone on 2 cores)
def test_input_size_and_normalisation_overrides_reach_the_graph_and_the_sidecar(tmp_path: Path) -> None:
    from deploy.exporter import ExportConfig, export_model

    custom = Customization(num_classes=3, input_size=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    result = export_model(ExportConfig(model="resnet18", weights="random", out_dir=tmp_path, custom=custom))
    prep = result.sidecar.preprocessing
    assert (prep.crop_size, prep.resize_size) == (64, 73)  # the resize keeps ImageNet's 256/224 ratio
    assert prep.mean == (0.5, 0.5, 0.5) and prep.std == (0.25, 0.25, 0.25)
    assert list(result.sidecar.inputs[0].shape) == ["batch", 3, 64, 64]
    assert list(result.sidecar.outputs[0].shape) == ["batch", 3]
    assert result.parity is not None and result.parity


def test_labels_files_one_per_line_or_a_json_list(tmp_path: Path) -> None:
    lines = tmp_path / "a.txt"
    lines.write_text("cat\n dog \nbird\n\n", encoding="utf-8")
    assert read_labels(lines) == ("cat", "dog", "bird")
    listed = tmp_path / "b.json"
    listed.write_text(json.dumps(["cat", "dog"]), encoding="utf-8")
    assert read_labels(listed) == ("cat", "dog")
    for text, needle in (
        ("", "names no classes"),
        ('["cat", 3]', "not a list of strings"),
        ("[cat", "not valid JSON"),
        ("cat\n\ndog\n", "empty"),
    ):
        bad = tmp_path / "bad.txt"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(BadInput, match=needle):
            read_labels(bad)
    with pytest.raises(BadInput, match="does not exist"):
        read_labels(tmp_path / "absent.txt")


@pytest.mark.parametrize(
    ("arguments", "code", "needle"),
    [
        (["--num-classes", "3"], WeightsError.exit_code, "head for 5 classes"),
        (["--labels", "{four_labels}"], BadInput.exit_code, "names 4 classes"),
        (["--input-size", "64"], BadInput.exit_code, "cannot take 64x64"),
        (["--mean", "0.5,0.5,0.5"], BadInput.exit_code, "mean needs 1 values"),
        (["--std", "0"], BadInput.exit_code, "--std 0 must be positive"),
        (["--mean", "a,b"], BadInput.exit_code, "--mean 'a,b' is not"),
        (["--interpolation", "lanczos"], BadInput.exit_code, "--interpolation 'lanczos'"),
        (["--num-classes", "0"], BadInput.exit_code, "--num-classes 0 is out of range"),
    ],
)
def test_fine_tune_options_that_cannot_apply_are_refused_and_nothing_is_written(
    cli: CliRunner, tmp_path: Path, five_class_checkpoint: Path, arguments: list[str], code: int, needle: str
) -> None:
    four = tmp_path / "four.txt"
    four.write_text("a\nb\nc\nd\n", encoding="utf-8")
    arguments = [a.replace("{four_labels}", str(four)) for a in arguments]
    out = tmp_path / "export"
    result = cli.invoke(app, ["export", "lenet5", "--weights", str(five_class_checkpoint), "-o", str(out), *arguments])
    _fails_cleanly(result, code, needle)
    assert not out.exists() or not any(out.iterdir())


def test_a_new_head_needs_trained_weights_or_a_classifier() -> None:
    with pytest.raises(WeightsError, match="classify 10 classes, not 4") as info:
        load_model(get_spec("lenet5"), "digits", Customization(num_classes=4))
    assert "--weights PATH" in info.value.hint
    with pytest.raises(BadInput, match="feature maps"):
        load_model(get_spec("inception_block"), "random", Customization(num_classes=4))


def test_every_registered_head_is_the_classifiers_last_linear() -> None:
    """spec.head names the Linear that fine-tuning replaces; replacing it changes the output width only."""
    from deploy.zoo import list_models
    from deploy.zoo.heads import head_of

    for name in list_models():
        spec = get_spec(name)
        if spec.head is None:
            assert spec.num_classes is None, name
            continue
        with torch.device("meta"):  # the structure only: no memory, no initialisation
            module = spec.build()
        linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        assert head_of(module, spec) is linears[-1], name
        assert linears[-1].out_features == spec.num_classes, name


def test_build_refuses_fine_tune_options_an_existing_export_does_not_have(
    cli: CliRunner, tmp_path: Path, five_class_checkpoint: Path
) -> None:
    out = tmp_path / "export"
    assert cli.invoke(app, ["export", "lenet5", "--weights", str(five_class_checkpoint), "-o", str(out)]).exit_code == 0
    engines = tmp_path / "engines"
    result = cli.invoke(
        app,
        ["build", "lenet5", "--export-dir", str(out), "--out-dir", str(engines), "--num-classes", "6", "--fp32"],
    )
    _fails_cleanly(result, BadInput.exit_code, "exported with 5 classes, not --num-classes 6")
    assert not engines.exists() or not any(engines.iterdir())


def test_two_fine_tunes_of_one_architecture_are_each_judged_against_their_own_reference(
    cli: CliRunner, tmp_path: Path, five_class_checkpoint: Path, lenet5_export: object
) -> None:
    out = tmp_path / "export"
    assert cli.invoke(app, ["export", "lenet5", "--weights", str(five_class_checkpoint), "-o", str(out)]).exit_code == 0
    digits_export = lenet5_export.onnx_path  # type: ignore[attr-defined]
    result = cli.invoke(app, ["verify", str(digits_export), str(out / "lenet5.onnx"), "--json"])
    assert result.exit_code == 0, result.output  # a 10-class and a 5-class lenet5: two references, both pass
    widths = {len(v["parity"]["outputs"]) for v in json.loads(result.stdout)["payload"]["verdicts"]}
    assert widths == {1}


def test_a_checkpoint_changed_after_the_export_is_refused_as_the_reference(
    cli: CliRunner, tmp_path: Path, five_class_checkpoint: Path
) -> None:
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(five_class_checkpoint.read_bytes())
    out = tmp_path / "export"
    assert cli.invoke(app, ["export", "lenet5", "--weights", str(checkpoint), "-o", str(out)]).exit_code == 0
    assert cli.invoke(app, ["verify", str(out / "lenet5.onnx")]).exit_code == 0
    retrained = torch.load(checkpoint, weights_only=True)
    retrained["state_dict"]["classifier.5.bias"] += 1.0  # training went on and saved over best.pt
    torch.save(retrained, checkpoint)
    result = cli.invoke(app, ["verify", str(out / "lenet5.onnx")])
    _fails_cleanly(result, 2, "has changed since the export", "deploy export lenet5 --weights")
