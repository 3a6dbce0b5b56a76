"""What marks a model without a PyTorch module deploy can rebuild, and the commands that make or remake one: shared
by every stage that must treat it differently from a zoo export.

Two kinds of model have none: an imported model (an ONNX classifier made by another tool, given a sidecar by
`deploy import`; weights kind "onnx", the original file as `name`) and your own `nn.Module` exported from Python
(kind "module", deploy.zoo.own). Their reference is their FP32 ONNX on ONNX Runtime, which the sidecar's weights
block records by `path` and `sha256`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from deploy.errors import ArtifactError
from deploy.sidecar import Sidecar, load_sidecar, sidecar_path

IMPORTED_KIND = "onnx"  # WeightsInfo.kind of an imported model
MODULE_KIND = "module"  # WeightsInfo.kind of your own nn.Module exported from Python (deploy.zoo.own)
IMPORTED_FAMILY = "imported"
EAGER_REFERENCE = "eager PyTorch (FP32)"
ONNX_REFERENCE = "FP32 ONNX on ONNX Runtime (imported, no PyTorch module)"
MODULE_REFERENCE = "FP32 ONNX on ONNX Runtime (exported from your module, which files cannot rebuild)"
# The bench row of the reference (the CPU speed-up baseline): eager PyTorch, or the FP32 ONNX on ONNX Runtime.
EAGER_ROW = "eager"
ONNX_ROW = "imported-onnx"
MODULE_ROW = "module-onnx"
# A model name that is also a plain file stem: no dots, so `NAME.fp16.onnx` in engines/ is never read as an artifact
# of another model, no separators, so it cannot leave its folder.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
NO_MODULE = "an imported ONNX has no PyTorch module"
_NO_REBUILD = "your module cannot be rebuilt from files"


def is_imported(sidecar: Sidecar) -> bool:
    return sidecar.weights.kind == IMPORTED_KIND


def has_onnx_reference(sidecar: Sidecar) -> bool:
    """No PyTorch module deploy can rebuild: the reference is the FP32 ONNX (imported, or exported from Python)."""
    return sidecar.weights.kind in (IMPORTED_KIND, MODULE_KIND)


def no_module(sidecar: Sidecar) -> str:
    """Why no eager PyTorch run (FP16 arithmetic, torch.compile, CUDA) exists for a model with an ONNX reference."""
    return NO_MODULE if is_imported(sidecar) else _NO_REBUILD


def reference_description(sidecar: Sidecar) -> str:
    """What an artifact of this model is judged against, as messages and records name it."""
    if not has_onnx_reference(sidecar):
        return EAGER_REFERENCE
    return ONNX_REFERENCE if is_imported(sidecar) else MODULE_REFERENCE


def reference_row(sidecar: Sidecar) -> str:
    """The name of the reference's row in bench tables (the speed-up baseline on CPU)."""
    if not has_onnx_reference(sidecar):
        return EAGER_ROW
    return ONNX_ROW if is_imported(sidecar) else MODULE_ROW


def remake_hint(sidecar: Sidecar) -> str:
    """How to recreate the FP32 ONNX a model with an ONNX reference is judged against."""
    if is_imported(sidecar):
        return f"re-import it ({reimport_command(sidecar)})"
    return f"export your module again from Python (deploy.export(module, name={sidecar.model!r}, ...))"


def exported_onnx(name: str, export_dir: Path) -> Path | None:
    """`export_dir/NAME.onnx` when it exists: how a model name that is not in the zoo (an imported model) is found,
    asked before the zoo so an import never needs a registered architecture."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    candidate = export_dir / f"{name}.onnx"
    return candidate if candidate.is_file() else None


def require_sidecar(artifact: Path, *, check_hash: bool = True) -> Sidecar:
    """load_sidecar, except that an ONNX file without a sidecar (made by another tool) is refused with the exact
    `deploy import` command that writes one."""
    if artifact.suffix == ".onnx" and artifact.is_file() and not sidecar_path(artifact).exists():
        raise ArtifactError(
            f"{artifact} has no sidecar {sidecar_path(artifact).name}: deploy does not know how to preprocess its "
            "input or name its classes (an ONNX made by another tool?)",
            hint=import_hint(artifact),
        )
    return load_sidecar(artifact, check_hash=check_hash)


def import_hint(onnx_file: Path) -> str:
    """The command that imports `onnx_file`, with what can be read from the file filled in (its input size)."""
    size, channels = _input_geometry(onnx_file)
    command = ["deploy", "import", str(onnx_file), "--input-size", str(size) if size else "SIZE"]
    if channels == 1:  # no convention for gray inputs: deploy import requires them
        command += ["--mean", "MEAN", "--std", "STD"]
    command += ["--labels", "LABELS.txt"]
    text = f"write its sidecar first: {shlex.join(command)}"
    if channels != 1:
        text += " (add --mean/--std unless it expects ImageNet's normalisation)"
    return text


def reimport_command(sidecar: Sidecar) -> str:
    """The `deploy import` command that recreates an imported model's export as its sidecar records it."""
    prep = sidecar.preprocessing
    command = ["deploy", "import", sidecar.weights.name, "--name", sidecar.model]
    copy = sidecar.weights.detail.get("path")
    if isinstance(copy, str) and Path(copy).parent != Path("export").resolve():
        command += ["--out-dir", str(Path(copy).parent)]
    command += ["--input-size", str(prep.crop_size), "--resize-size", str(prep.resize_size)]
    command += ["--mean", _floats(prep.mean), "--std", _floats(prep.std)]
    if prep.interpolation != "bilinear":
        command += ["--interpolation", prep.interpolation]
    if sidecar.labels_source is not None:
        command += ["--labels", sidecar.labels_source]
    if sidecar.batch.dynamic:
        command += ["--max-batch", str(sidecar.batch.max)]
    return shlex.join(command)


def _floats(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def _input_geometry(onnx_file: Path) -> tuple[int | None, int | None]:
    """(static H when H == W, channels) of the file's one graph input; None for what cannot be read."""
    try:
        import onnx

        graph = onnx.load(str(onnx_file), load_external_data=False).graph
        initializers = {tensor.name for tensor in graph.initializer}
        (value,) = [i for i in graph.input if i.name not in initializers]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    except Exception:  # only a hint: any file onnx cannot read, or a graph of another shape, leaves placeholders
        return None, None
    if len(dims) != 4:
        return None, None
    return (dims[2] if dims[2] == dims[3] else None), dims[1]
