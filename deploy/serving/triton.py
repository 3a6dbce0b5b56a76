"""`deploy triton`: a Triton Inference Server model repository from artifacts and their sidecars.

We write what Triton reads — `<name>/config.pbtxt`, `<name>/<version>/model.{onnx,plan,xml+bin}` (file names and the
platform or backend come from the artifact's target), `labels.txt` — and never a server. Every field comes from the
sidecar, so the config and the artifact cannot disagree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deploy.errors import ArtifactError, BadInput
from deploy.files import Staging, ensure_writable_dir
from deploy.sidecar import Sidecar, TensorInfo, companions, load_sidecar
from deploy.targets import Target, target_for

Device = Literal["gpu", "cpu"]
_TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "bfloat16": "TYPE_BF16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "bool": "TYPE_BOOL",
}
LABELS_FILE = "labels.txt"


@dataclass(frozen=True)
class TritonConfig:
    artifacts: tuple[Path, ...]
    repo: Path = Path("model_repository")
    name: str | None = None
    instances: int = 1
    device: Device | None = None  # None: where the artifact's target runs (GPU for ONNX and plans, CPU for IR)
    max_queue_delay_us: int = 100
    labels: bool = True
    force: bool = False


@dataclass(frozen=True)
class TritonModel:
    name: str
    version: int
    platform: str  # Triton's platform, or its backend where the target has no platform (openvino)
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    config_path: Path
    model_path: Path
    labels_path: Path | None


@dataclass(frozen=True)
class TritonResult:
    repo: Path
    models: tuple[TritonModel, ...]


def write_repository(config: TritonConfig) -> TritonResult:
    _validate(config)
    planned = [(path, _sidecar_of(path)) for path in config.artifacts]
    names = [config.name or _default_name(path) for path, _ in planned]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadInput(
            f"two artifacts would share the Triton model name {duplicates[0]!r}",
            hint="add them in separate calls with --name, or rename the files",
        )
    repo = ensure_writable_dir(config.repo)
    _check_repository(repo, config.force)
    models = tuple(
        _write_model(repo, name, path, sidecar, config) for name, (path, sidecar) in zip(names, planned, strict=True)
    )
    return TritonResult(repo, models)


def _validate(config: TritonConfig) -> None:
    if not config.artifacts:
        raise BadInput(
            "no artifacts given", hint="pass export/MODEL.onnx, engines/MODEL.int8.onnx, a .plan or an OpenVINO .xml"
        )
    if config.name is not None and len(config.artifacts) > 1:
        raise BadInput("--name applies to one artifact, not several", hint="run deploy triton once per --name")
    if config.instances < 1:
        raise BadInput(f"--instances {config.instances} must be at least 1", hint="pass --instances 1")
    if config.max_queue_delay_us < 0:
        raise BadInput("--max-queue-delay-us must not be negative", hint="pass --max-queue-delay-us 100")
    if config.name is not None and not _valid_name(config.name):
        raise BadInput(f"--name {config.name!r} is not a usable model name", hint="use letters, digits, _ and -")


def _sidecar_of(path: Path) -> Sidecar:
    if not path.is_file():
        raise BadInput(f"artifact {path} does not exist", hint="export or build it first")
    target = target_for(path)
    sidecar = load_sidecar(path)
    listed = len(companions(path, sidecar))
    if listed != len(target.triton.filenames) - 1:  # refused before anything is written
        raise ArtifactError(
            f"the sidecar of {path} lists {listed} companion files; a {target.name} model needs "
            f"{len(target.triton.filenames) - 1}",
            hint=f"rebuild it with `deploy build {sidecar.model} --target {target.name}`",
        )
    return sidecar


def _default_name(path: Path) -> str:
    return path.name.removesuffix(path.suffix).replace(".", "_")


def _valid_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "_-" for c in name)


def _check_repository(repo: Path, force: bool) -> None:
    """A repository holds model folders (each with a config.pbtxt) only; anything else means a wrong folder."""
    foreign = sorted(
        entry.name
        for entry in repo.iterdir()
        if not entry.name.startswith(".") and not (entry.is_dir() and (entry / "config.pbtxt").is_file())
    )
    if foreign and not force:
        raise BadInput(
            f"{repo} holds content that is not a Triton model ({', '.join(foreign[:3])}"
            f"{', …' if len(foreign) > 3 else ''})",
            hint="choose an empty or existing model repository with --repo, or pass --force to write there anyway",
        )


def _write_model(repo: Path, name: str, artifact: Path, sidecar: Sidecar, config: TritonConfig) -> TritonModel:
    target = target_for(artifact)
    device = _device(target, artifact, config.device)
    serving = _serving_line(target)
    platform = target.triton.platform or target.triton.backend or target.name
    folder = repo / name
    existing = folder / "config.pbtxt"
    if existing.is_file() and serving not in existing.read_text(encoding="utf-8"):
        raise BadInput(
            f"model {name!r} in {repo} is served by another platform than {platform}",
            hint="pass --name to add this artifact as a separate model",
        )
    max_batch = sidecar.batch.max if sidecar.batch.dynamic else 0
    preferred = preferred_batch_sizes(sidecar.batch.min, max_batch) if max_batch else ()
    labels = sidecar.labels if config.labels else None
    text = config_text(
        name=name,
        serving=serving,
        max_batch_size=max_batch,
        inputs=sidecar.inputs,
        outputs=sidecar.outputs,
        dynamic=sidecar.batch.dynamic,
        preferred=preferred,
        max_queue_delay_us=config.max_queue_delay_us,
        instances=config.instances,
        device=device,
        labels=labels is not None,
    )
    folder.mkdir(exist_ok=True)
    version = _next_version(folder)
    model_path = _add_version(folder, version, artifact, sidecar, target)
    labels_path = folder / LABELS_FILE if labels is not None else None
    with Staging() as staging:
        if labels is not None and labels_path is not None:
            staging.path_for(labels_path).write_text("\n".join(labels) + "\n", encoding="utf-8")
        staging.path_for(existing).write_text(text, encoding="utf-8")
        staging.commit()
    return TritonModel(name, version, platform, max_batch, preferred, existing, model_path, labels_path)


def _device(target: Target, artifact: Path, requested: Device | None) -> Device:
    kinds = target.triton.instance_kinds
    if requested is None:
        return "gpu" if kinds[0] == "gpu" else "cpu"
    if requested not in kinds:
        raise BadInput(
            f"{artifact} is a {target.name} artifact, which Triton runs on {' or '.join(kinds).upper()} only",
            hint=f"drop --device {requested}",
        )
    return requested


def _serving_line(target: Target) -> str:
    if target.triton.platform is not None:
        return f'platform: "{target.triton.platform}"'
    return f'backend: "{target.triton.backend}"'


def _next_version(folder: Path) -> int:
    versions = [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def _add_version(folder: Path, version: int, artifact: Path, sidecar: Sidecar, target: Target) -> Path:
    """Copy the artifact (and its companions: an IR's .bin) into `<version>/` under Triton's file names, via a
    hidden folder renamed whole: Triton never sees half a version."""
    staging = Path(tempfile.mkdtemp(prefix=".version-", dir=folder))
    files = (artifact, *companions(artifact, sidecar))
    try:
        for source, filename in zip(files, target.triton.filenames, strict=True):
            shutil.copyfile(source, staging / filename)
        os.chmod(staging, 0o755)
        os.rename(staging, folder / str(version))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder / str(version) / target.triton.filenames[0]


def preferred_batch_sizes(minimum: int, maximum: int) -> tuple[int, ...]:
    """Powers of two from 4 (or the minimum) up to the profile's maximum, plus the maximum itself."""
    sizes = [size for size in (2**k for k in range(2, 16)) if max(minimum, 1) <= size <= maximum]
    if maximum not in sizes:
        sizes.append(maximum)
    return tuple(sizes)


def config_text(
    *,
    name: str,
    serving: str,
    max_batch_size: int,
    inputs: tuple[TensorInfo, ...],
    outputs: tuple[TensorInfo, ...],
    dynamic: bool,
    preferred: tuple[int, ...],
    max_queue_delay_us: int,
    instances: int,
    device: Device,
    labels: bool,
) -> str:
    """config.pbtxt in protobuf text format (Triton's ModelConfig message)."""
    lines = [f'name: "{name}"', serving, f"max_batch_size: {max_batch_size}"]
    lines += _tensors("input", inputs, dynamic, label=False)
    lines += _tensors("output", outputs, dynamic, label=labels)
    if max_batch_size > 0:
        lines += [
            "dynamic_batching {",
            f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
            f"  max_queue_delay_microseconds: {max_queue_delay_us}",
            "}",
        ]
    kind = "KIND_GPU" if device == "gpu" else "KIND_CPU"
    lines += ["instance_group [", "  {", f"    count: {instances}", f"    kind: {kind}", "  }", "]"]
    return "\n".join(lines) + "\n"


def _tensors(section: str, tensors: tuple[TensorInfo, ...], dynamic: bool, *, label: bool) -> list[str]:
    lines = [f"{section} ["]
    for index, tensor in enumerate(tensors):
        dims = tensor.shape[1:] if dynamic else tensor.shape
        if any(not isinstance(d, int) for d in dims):
            raise BadInput(
                f"{section} {tensor.name} has symbolic dimensions {tensor.shape} beyond the batch",
                hint="export with fixed image sizes (the default)",
            )
        if tensor.dtype not in _TRITON_TYPES:
            raise BadInput(f"{section} {tensor.name} has data type {tensor.dtype}, which Triton cannot serve")
        lines += [
            "  {",
            f'    name: "{tensor.name}"',
            f"    data_type: {_TRITON_TYPES[tensor.dtype]}",
            f"    dims: [ {', '.join(str(d) for d in dims)} ]",
        ]
        if label and index == 0:
            lines.append(f'    label_filename: "{LABELS_FILE}"')
        lines.append("  }," if index < len(tensors) - 1 else "  }")
    lines.append("]")
    return lines
