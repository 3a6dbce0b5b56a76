"""Every hint's advice is a command that exists: each `deploy ...` command line quoted in the code parses against
the app (its subcommand, options and arguments), with sample values for the placeholders a user fills in."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import deploy
from deploy.cli import app
from deploy.errors import BadInput

ROOT = Path(deploy.__file__).parent
# What a user types for the metavars hints spell in capitals.
METAVARS = {
    "MODEL": "resnet18", "NAME": "resnet18", "FILE": "model.onnx", "ARTIFACT": "engines/resnet18.int8.onnx",
    "TARGET": "onnxruntime", "DIR": "calibration", "PATH": "ckpt.pt", "N": "8", "SIZE": "224", "POINTS": "1",
    "REPO": "repo",
}  # fmt: skip
# What the code fills into f-string hints, by the expression it formats. A new expression fails the test until it is
# given a sample here: then its command line is parsed too.
EXPRESSIONS = {
    "resnet18": ("name", "item", "model", "spec.name", "sidecar.model", "config.model", "result.sidecar.model"),
    "engines/resnet18.int8.onnx": ("final", "artifact", "self.artifact", "source", "path"),
    "onnxruntime": ("target.name",),
    "--weights random --num-classes 10": ("given",),
    "": ("out", "where"),
}
SAMPLES = {expression: value for value, expressions in EXPRESSIONS.items() for expression in expressions}
QUOTED = re.compile(r"`(deploy [^`]*)`")


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _text(node: ast.JoinedStr) -> str:
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
        else:
            assert isinstance(value, ast.FormattedValue)
            expression = ast.unparse(value.value)
            parts.append(SAMPLES.get(expression, f"<{expression}>"))
    return "".join(parts)


def quoted_commands() -> list[tuple[str, str]]:
    """(where, command line) for every `deploy ...` quoted in a string of the package, docstrings aside."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.JoinedStr):
                text = _text(node)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip | parts:
                text = node.value
            else:
                continue
            found += [(where, command) for command in QUOTED.findall(text)]
    return found


def _parses(command: str) -> None:
    """Raises click's UsageError (or an AssertionError) unless `command` is a valid `deploy` command line."""
    assert "<" not in command, f"give {command!r}'s f-string expression a sample in EXPRESSIONS"
    words = [METAVARS.get(word, word) for word in shlex.split(command)]
    assert words[0] == "deploy"
    group = typer.main.get_command(app)
    root = group.make_context("deploy", [], resilient_parsing=True)
    name, *args = words[1:]
    command_object = group.get_command(root, name)  # type: ignore[attr-defined]
    assert command_object is not None, f"no command {name!r}"
    if args:  # a bare `deploy NAME` names the command; anything more must parse as its command line
        command_object.make_context(name, args, parent=root)


COMMANDS = quoted_commands()


def test_the_scan_finds_the_hints_it_should() -> None:
    lines = {command for _, command in COMMANDS}
    assert "deploy export resnet18 --weights random --num-classes 10" in lines  # an f-string hint, filled in
    assert "deploy build MODEL --target TARGET" in lines and len(COMMANDS) > 30


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w} {c}" for w, c in COMMANDS])
def test_every_quoted_command_line_parses(where: str, command: str) -> None:
    try:
        _parses(command)
    except Exception as exc:
        pytest.fail(f"{where}: `{command}` does not parse: {exc}")


def test_a_wrong_command_line_is_caught() -> None:
    with pytest.raises(Exception, match="--min-cosine/--min-top1"):
        _parses("deploy pipeline MODEL --min-cosine/--min-top1")
    with pytest.raises(AssertionError, match="no command"):
        _parses("deploy convert MODEL")


def test_export_help_states_the_fp32_tolerances_that_apply() -> None:
    from deploy.harness.compare import DEFAULT_TOLERANCES

    fp32 = DEFAULT_TOLERANCES["fp32"]
    shown = CliRunner().invoke(app, ["export", "--help"], env={"COLUMNS": "300"}).stdout
    stated = [float(value) for value in re.findall(r"FP32 default ([0-9.e-]+[0-9])", shown)]
    assert stated == [fp32.atol, fp32.rtol]  # --atol's, then --rtol's


@pytest.mark.parametrize(
    ("artifact", "advice"),
    [
        ("engines/vgg16.plan", "`deploy build vgg16 --target tensorrt` on a machine with an NVIDIA GPU"),
        ("engines/vgg16.int8-cpu.onnx", "`deploy build vgg16 --target onnxruntime`"),
        ("engines/vgg16.fp16.xml", "`deploy build vgg16 --target openvino`"),
        ("export/vgg16.onnx", "`deploy export vgg16`"),
    ],
)
def test_a_missing_artifact_is_answered_with_the_command_that_makes_its_kind(artifact: str, advice: str) -> None:
    result = CliRunner().invoke(app, ["infer", artifact, "x.jpg"])
    assert result.exit_code == BadInput.exit_code and "does not exist" in result.stderr
    assert advice in result.stderr.replace("\n", " ")
    (command,) = QUOTED.findall(result.stderr.replace("\n", " "))
    _parses(command)
