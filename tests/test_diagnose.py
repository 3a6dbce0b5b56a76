"""`deploy diagnose` and `deploy build --int8 --max-drop`, on a small ReLU network trained here on real digits, with
one layer made sensitive on purpose: an outlier channel that leaves FP32 unchanged but ruins a per-tensor INT8
scale. Diagnose must name that layer first and the budget search must keep it, and only it, out of INT8."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import deploy
from deploy.builder import BuildConfig, build
from deploy.cli.app import app
from deploy.customization import Customization
from deploy.diagnose import DiagnoseConfig, diagnose
from deploy.errors import ParityError
from deploy.precision.budget import exclude_from_int8
from deploy.precision.calibration import CalibrationConfig
from deploy.precision.typing_info import quantized_nodes
from deploy.sidecar import load_sidecar
from deploy.zoo.digits import DigitsRecipe, train_on_digits
from deploy.zoo.own import own_model

OUTLIER = 400.0  # channel 0 of conv2 grows by this; conv3 reads it scaled back: FP32 is the same function


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.fc(x.flatten(1))


CUSTOM = Customization(input_size=16, resize_size=16, mean=(0.5,), std=(0.5,))


@pytest.fixture(scope="module")
def sensitive_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    module = Small()
    prep = own_model(module, "small", CUSTOM, color="L").source.preprocessing
    trained = train_on_digits(module, prep, DigitsRecipe("small", size=16, epochs=8, lr=3e-3, shift=0, one_cycle=True))
    assert trained.test_accuracy >= 0.9, trained.test_accuracy
    module.load_state_dict(trained.state_dict)
    with torch.no_grad():  # relu(400 z) = 400 relu(z): the same function, one channel 400x wider
        module.conv2.weight[0] *= OUTLIER
        module.conv2.bias[0] *= OUTLIER
        module.conv3.weight[:, 0] /= OUTLIER
    root = tmp_path_factory.mktemp("sensitive")
    result = deploy.export(module.eval(), name="small", input_size=16, resize_size=16, mean=0.5, std=0.5, color="L",
                           out_dir=root / "export")  # fmt: skip
    return result.onnx_path


def _build(onnx_path: Path, engines: str = "engines", **kwargs: object) -> Path:
    root = onnx_path.parent.parent
    config = BuildConfig(
        sources=(str(onnx_path),),
        precisions=("int8",),
        export_dir=root / "export",
        engines_dir=root / engines,
        calibration=CalibrationConfig(directory=root / "calibration"),
        targets=("tensorrt",),
        compile=False,
        verify=None,
        **kwargs,  # type: ignore[arg-type]
    )
    built = build(config)
    return next(a.path for a in built.artifacts if a.label.precision == "int8")


def test_diagnose_names_the_layer_with_the_outlier_channel_first(sensitive_export: Path) -> None:
    int8 = _build(sensitive_export)
    found = diagnose(DiagnoseConfig(int8, count=96))
    assert found.images == 96 and "digits" in found.image_source
    assert found.first_jump is not None and found.first_jump.module == "conv3", found.ranked(4)
    assert found.ranked(1)[0].module == "conv3"
    by_module = {n.module: n for n in found.nodes if n.op == "Conv"}
    assert by_module["conv3"].added_error > 10 * by_module["conv2"].added_error
    assert by_module["conv3"].reduced and by_module["conv3"].cosine < 0.5 < by_module["conv2"].cosine
    assert found.output is not None and found.output.cosine < 0.99  # the damage reaches the logits


def test_leaving_a_layer_out_of_int8_makes_its_inputs_float_and_drops_dead_pairs(sensitive_export: Path) -> None:
    int8 = onnx.load(_build(sensitive_export))
    quantized = quantized_nodes(int8)
    edited = exclude_from_int8(int8, {quantized[-1]})
    assert quantized_nodes(edited) == quantized[:-1]
    q_count = sum(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    assert sum(n.op_type == "QuantizeLinear" for n in edited.graph.node) < q_count
    onnx.checker.check_model(edited, full_check=True)


def test_max_drop_keeps_only_the_sensitive_layer_out_of_int8(sensitive_export: Path) -> None:
    path = _build(sensitive_export, engines="budget", max_drop=0.5, recalibrate=True)
    sidecar = load_sidecar(path)
    assert sidecar.precision is not None
    budget = sidecar.precision.details["budget"]
    steps = budget["steps"]
    assert steps[0]["excluded"] == [] and steps[0]["drop"] > 0.5, steps[0]  # full INT8 misses the budget
    assert budget["metric"] == "agreement" and budget["max_drop"] == 0.5  # an own module: no labels of its own
    model = onnx.load(path)
    modules = {n.name: n for n in onnx.load(sensitive_export).graph.node}
    assert len(budget["excluded"]) == 1, budget["excluded"]
    assert "conv3" in str(modules[budget["excluded"][0]].metadata_props)
    assert budget["excluded"][0] not in quantized_nodes(model) and quantized_nodes(model)  # the rest stays INT8
    assert (
        100 * budget["fp32_score"] - 100 * next(s["score"] for s in steps if s["excluded"] == budget["excluded"]) <= 0.5
    )


def test_an_unreachable_budget_exits_3_naming_the_best_found_and_writes_nothing(
    sensitive_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search is allowed no exclusion at all (its limit narrowed for this test), so the outlier layer stays INT8
    and the 0.5-point budget cannot hold."""
    from deploy.precision import budget

    monkeypatch.setattr(budget, "search_budget", functools.partial(budget.search_budget, max_excluded=0))
    with pytest.raises(ParityError, match="was not reached; the best found") as caught:
        _build(sensitive_export, engines="unreachable", max_drop=0.5)
    assert caught.value.exit_code == 3
    assert "0 of" in caught.value.message and "layers kept out of INT8" in caught.value.message
    written = sensitive_export.parent.parent / "unreachable"
    assert not written.exists() or not [p for p in written.rglob("*") if p.is_file()]


def test_diagnose_cli_prints_the_ranked_table_and_json(sensitive_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    int8 = _build(sensitive_export)
    runner = CliRunner()
    shown = runner.invoke(app, ["diagnose", str(int8), "--count", "64"])
    assert shown.exit_code == 0, shown.output
    assert "conv3" in shown.stdout and "first jump" in shown.stdout
    as_json = runner.invoke(app, ["diagnose", str(int8), "--count", "64", "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = _rows(json.loads(as_json.stdout))
    assert rows[0]["module"] == "conv1" and any(row["module"] == "conv3" for row in rows)  # graph order
    missing = runner.invoke(app, ["diagnose", str(int8.with_name("nothing.int8.onnx"))])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def _rows(payload: dict[str, object]) -> list[dict[str, object]]:
    body = payload.get("payload", payload)
    assert isinstance(body, dict)
    nodes = body["nodes"]
    assert isinstance(nodes, list)
    return nodes


def test_build_max_drop_from_the_command_line(sensitive_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sensitive_export.parent.parent)
    runner = CliRunner()
    args = ["build", "export/small.onnx", "--int8", "--no-compile", "--out-dir", "cli-engines", "--max-drop"]
    built = runner.invoke(app, [*args, "0.5"])
    assert built.exit_code == 0, built.output
    budget = load_sidecar(Path("cli-engines/small.int8.onnx")).precision.details["budget"]  # type: ignore[union-attr]
    assert len(budget["excluded"]) == 1
    refused = runner.invoke(app, [*args, "-1"])
    assert refused.exit_code == 2 and "--max-drop -1 is not between 0 and 100" in refused.output
    cpu = runner.invoke(app, ["build", "export/small.onnx", "--int8", "--target", "cpu", "--max-drop", "1"])
    assert cpu.exit_code == 2 and "TensorRT-style INT8 only" in cpu.output
    assert not Path("engines/small.int8-cpu.onnx").exists()
    fp16_only = runner.invoke(app, ["build", "export/small.onnx", "--fp16", "--max-drop", "1"])
    assert fp16_only.exit_code == 2 and "--max-drop" in fp16_only.output and "--int8" in fp16_only.output
