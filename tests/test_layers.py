"""Imports point down the layers only: a module never imports from a layer above its own.

Every import counts, the lazy ones inside functions too: they are real dependencies that only run later. The
order is shared/STYLE.md's, with one difference: the deployment targets (their runners) sit below harness,
because verify and bench take runners from the target registry. Modules of one layer may import
each other; a circle among them is not caught here (farm-studio look shows circles).
"""

from __future__ import annotations

import ast
from pathlib import Path

import deploy

# Bottom first. A package or module named here holds everything under it.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "environment", "lazy", "files", "codec", "validation", "listing", "progress", "cuda"}),
    frozenset({"preprocessing", "simplify", "samples", "sidecar", "customization", "imported"}),
    frozenset({"zoo", "backends", "targets", "serving"}),
    frozenset({"harness", "doctor"}),
    frozenset({"exporter", "report", "onnx_import"}),
    frozenset({"precision", "diagnose"}),
    frozenset({"builder"}),
    frozenset({"pipeline"}),
    frozenset({"cli", "__main__", "api"}),
)
ROOT = Path(deploy.__file__).parent


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # `deploy` itself: the lazy public API, above nothing
    return next((i for i, names in enumerate(LAYERS) if parts[1] in names), None)


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = ("deploy", *path.relative_to(ROOT).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return [(name, line) for name, line in found if name == "deploy" or name.startswith("deploy.")]


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if m != "deploy" and _layer(m) is None]
    assert not unplaced, f"add these to LAYERS in tests/test_layers.py: {unplaced}"


def upward_imports(modules: dict[str, Path]) -> list[str]:
    upward = []
    for module, path in modules.items():
        own = _layer(module)
        for imported, line in _imports(path):
            other = _layer(imported)
            if own is not None and other is not None and other > own:
                upward.append(f"{path}:{line} {module} -> {imported}")
    return upward


def test_no_import_runs_back_up_a_layer() -> None:
    upward = upward_imports(_modules())
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_an_import_from_above_is_caught(tmp_path: Path) -> None:
    bottom = tmp_path / "errors.py"
    bottom.write_text("def hint():\n    from deploy.cli.app import app  # lazy, still a dependency\n    return app\n")
    assert upward_imports({"deploy.errors": bottom}) == [f"{bottom}:2 deploy.errors -> deploy.cli.app"]
    assert upward_imports({"deploy.cli.app": bottom}) == []
