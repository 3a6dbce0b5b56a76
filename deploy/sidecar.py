"""The JSON sidecar beside every artifact: what produced it, how to feed it, and a hash that exposes staleness."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from deploy.errors import ArtifactError
from deploy.files import sha256_file
from deploy.preprocessing import Preprocessing

SCHEMA = "deploy.onnx/1"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class BatchRange:
    dynamic: bool
    min: int
    max: int


@dataclass(frozen=True)
class Sidecar:
    model: str
    family: str
    weights: dict[str, Any]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    batch: BatchRange
    preprocessing: Preprocessing
    labels: tuple[str, ...] | None
    labels_source: str | None
    opset: int
    artifact: str
    sha256: str
    size_bytes: int
    num_params: int
    simplifier: dict[str, Any]
    versions: dict[str, str]
    export_seconds: float
    created_at: str
    parity: dict[str, Any] | None
    schema: str = SCHEMA
    precision: dict[str, Any] | None = None  # typed ONNX from `deploy build`: how its precision was made
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def precision_name(self) -> str:
        return "fp32" if self.precision is None else str(self.precision["precision"])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sidecar:
        return cls(
            model=data["model"],
            family=data["family"],
            weights=dict(data["weights"]),
            inputs=tuple(TensorInfo(t["name"], tuple(t["shape"]), t.get("dtype", "float32")) for t in data["inputs"]),
            outputs=tuple(TensorInfo(t["name"], tuple(t["shape"]), t.get("dtype", "float32")) for t in data["outputs"]),
            batch=BatchRange(**data["batch"]),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]),
            labels=None if data.get("labels") is None else tuple(data["labels"]),
            labels_source=data.get("labels_source"),
            opset=int(data["opset"]),
            artifact=data["artifact"],
            sha256=data["sha256"],
            size_bytes=int(data["size_bytes"]),
            num_params=int(data["num_params"]),
            simplifier=dict(data.get("simplifier") or {}),
            versions=dict(data.get("versions") or {}),
            export_seconds=float(data.get("export_seconds", 0.0)),
            created_at=data.get("created_at", ""),
            parity=data.get("parity"),
            schema=data.get("schema", SCHEMA),
            precision=data.get("precision"),
            extra=dict(data.get("extra") or {}),
        )


def sidecar_path(artifact: Path) -> Path:
    """`X.onnx` → `X.json` (as every export and build so far); any other artifact keeps its suffix: `X.plan` →
    `X.plan.json`, so a plan never overwrites the sidecar of the typed ONNX it was compiled from."""
    if artifact.suffix == ".onnx":
        return artifact.with_suffix(".json")
    return artifact.with_name(artifact.name + ".json")


def withdraw(artifact: Path) -> None:
    """Remove an artifact and its sidecar (either may be missing): what failed parity never stays looking valid."""
    artifact.unlink(missing_ok=True)
    sidecar_path(artifact).unlink(missing_ok=True)


def load_sidecar(artifact: Path, *, check_hash: bool = True) -> Sidecar:
    """Read the sidecar beside `artifact`, refusing one that is missing, unreadable or describes another file."""
    path = sidecar_path(artifact)
    if not path.is_file():
        raise ArtifactError(
            f"no sidecar {path} beside {artifact}; it records the preprocessing and labels",
            hint="re-export with `deploy export MODEL`, or pass --model NAME to use the zoo's preprocessing",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
        sidecar = Sidecar.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"sidecar {path} is unreadable or not a deploy sidecar ({exc})",
            hint="re-export with `deploy export MODEL`",
        ) from exc
    if check_hash and sha256_file(artifact) != sidecar.sha256:
        raise ArtifactError(
            f"sidecar {path} describes a different file than {artifact} (sha256 mismatch: stale or foreign)",
            hint="re-export with `deploy export MODEL` so the pair matches",
        )
    return sidecar


def package_versions(*names: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
