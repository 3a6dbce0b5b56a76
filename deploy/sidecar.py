"""The JSON sidecar beside every artifact: what produced it, how to feed it, and a hash that exposes staleness."""

from __future__ import annotations

import dataclasses
import json
import platform
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deploy.codec import dumps
from deploy.environment import installed_version
from deploy.errors import ArtifactError
from deploy.files import sha256_file
from deploy.preprocessing import Preprocessing

# /2 adds the artifact's label and target blocks; /1 sidecars (deploy 0.1 exports and builds) are read and upgraded.
SCHEMA = "deploy.artifact/2"
OLD_SCHEMAS = ("deploy.onnx/1",)

Precision = Literal["fp32", "fp16", "int8"]
Method = Literal["entropy", "max", "percentile"]
# tensorrt: symmetric S8 Q/DQ by ModelOpt (what TensorRT builds); cpu: U8S8 QDQ with 7-bit weights for CPU runtimes.
Int8Recipe = Literal["tensorrt", "cpu"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class WeightsInfo:
    """Where the parameters came from: kind (torchvision, checkpoint, random, digits), name, and what the kind
    records besides (a checkpoint's path and sha256, a trained demo's test accuracy). Flat in JSON, as in /1."""

    kind: str
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def argument(self) -> str:
        """The `--weights` value that reproduces these parameters (a checkpoint by its resolved path)."""
        return str(self.detail.get("path", self.name)) if self.kind == "checkpoint" else self.name

    def json_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, **self.detail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeightsInfo:
        fields = cls.fields_of(data)
        return cls(str(fields["kind"]), str(fields["name"]), fields["detail"])

    @staticmethod
    def fields_of(data: dict[str, Any]) -> dict[str, Any]:
        """The flat JSON record as this class's fields (what it records besides kind and name is `detail`)."""
        detail = {k: v for k, v in data.items() if k not in ("kind", "name")}
        return {"kind": data.get("kind"), "name": data.get("name"), "detail": detail}


@dataclass(frozen=True)
class HeadInfo:
    """The classifier head a fine-tune replaced (torchvision's recipe): the layer, and its number of classes."""

    layer: str
    num_classes: int

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")


@dataclass(frozen=True)
class ArtifactLabel:
    """What an artifact is — carried from build to report so nothing re-parses it from a file name."""

    precision: Precision = "fp32"
    method: Method | None = None  # INT8 calibration method
    recipe: Int8Recipe | None = None  # INT8 Q/DQ flavour
    target: str = "onnxruntime"  # the deployment target that runs it (deploy.targets)

    @property
    def typed_name(self) -> str:
        """The typed ONNX's part of file names: fp32, fp16, int8, int8-max, int8-cpu, int8-cpu-percentile."""
        if self.precision != "int8":
            return self.precision
        parts = ["int8"]
        if self.recipe == "cpu":
            parts.append("cpu")
        if self.method is not None and self.method != "entropy":
            parts.append(self.method)
        return "-".join(parts)

    @property
    def name(self) -> str:
        """How reports and tables name it: the typed name, then the target when it is not ONNX Runtime."""
        return self.typed_name if self.target == "onnxruntime" else f"{self.typed_name} {self.target}"

    @property
    def is_cpu_int8(self) -> bool:
        return self.precision == "int8" and self.recipe == "cpu"

    @classmethod
    def of(cls, precision: Precision, method: Method, recipe: Int8Recipe, target: str = "onnxruntime") -> ArtifactLabel:
        if precision != "int8":
            return cls(precision, None, None, target)
        return cls(precision, method, recipe, target)


@dataclass(frozen=True)
class CalibrationInfo:
    """The images an FP16 or INT8 build calibrated on, and the cache it read or wrote."""

    source: str
    demo: bool  # the model's demo set (no calibration folder given)
    count: int
    requested: int
    skipped: int
    digest: str
    cache: str
    cache_key: str
    reused_cache: bool
    images_used: int | None = None  # static-batch CPU INT8: a whole number of batches


@dataclass(frozen=True)
class PrecisionInfo:
    """How a typed ONNX got its precision. The recipe's own record (Q/DQ counts, node lists, activation ranges, the
    FP16 scan) is `details`; JSON keeps schema /1's flat layout."""

    precision: Precision
    source_onnx: str
    source_sha256: str
    tool: str | None = None  # None: the FP32 copy
    method: Method | None = None
    calibration: CalibrationInfo | None = None
    weight_bits: int | None = None  # CPU INT8: 7
    built_on_isa: str | None = None
    build_seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def json_data(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "details"}
        return record | self.details

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrecisionInfo:
        fields = cls.fields_of(data)
        calibration = fields.get("calibration")
        return cls(
            **fields
            | {
                "calibration": None if calibration is None else CalibrationInfo(**calibration),
                "warnings": tuple(fields.get("warnings", ())),
            }
        )

    @staticmethod
    def fields_of(data: dict[str, Any]) -> dict[str, Any]:
        """The flat JSON record as this class's fields: every key that is not a field goes into `details`."""
        names = {f.name for f in dataclasses.fields(PrecisionInfo)} - {"details"}
        details = {k: v for k, v in data.items() if k not in names}
        return {k: v for k, v in data.items() if k in names} | {"details": details}


@dataclass(frozen=True)
class FileDigest:
    """A file that belongs to an artifact beside its main file (OpenVINO's .bin beside the .xml)."""

    name: str
    sha256: str
    size_bytes: int

    def __post_init__(self) -> None:
        if not self.name or self.name in (".", "..") or "/" in self.name or "\\" in self.name:
            raise ValueError(f"companions are plain file names beside the artifact, got {self.name!r}")


@dataclass(frozen=True)
class TargetInfo:
    """How the target compiled this artifact from a typed ONNX; None in the sidecar of an ONNX file itself."""

    name: str
    version: str
    source_onnx: str
    source_sha256: str
    seconds: float
    companions: tuple[FileDigest, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)  # the target's own build record (plan profile, IR hint)


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
    weights: WeightsInfo
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
    precision: PrecisionInfo | None = None  # typed ONNX from `deploy build`: how its precision was made
    extra: dict[str, Any] = field(default_factory=dict)
    label: ArtifactLabel = field(default_factory=ArtifactLabel)
    target: TargetInfo | None = None
    head: HeadInfo | None = None  # None: the architecture's own head (its registered number of classes)
    # The fine-tune options the export was given, as typed (`--labels pets.txt`, `--input-size 160`): what a
    # re-export repeats.
    export_options: tuple[str, ...] = ()

    @property
    def reference_key(self) -> str:
        """What makes two artifacts share a reference: the same model name, weights, head, preprocessing and input
        (two fine-tunes of resnet18 are different models; an FP16 and an INT8 build of one export are not)."""
        return dumps(
            {
                "model": self.model,
                "weights": self.weights.json_data(),
                "head": self.head,
                "preprocessing": self.preprocessing,
                "input": self.inputs[0].shape[1:],
                "classes": self.outputs[0].shape[1:],
            }
        )

    def export_command(self, *extra: str) -> str:
        """The `deploy export` command that remakes this model's export, with `extra` options."""
        weights = shlex.quote(self.weights.argument)
        return " ".join(["deploy export", self.model, "--weights", weights, *self.export_options, *extra])

    @property
    def precision_name(self) -> str:
        return self.label.precision

    def to_json(self) -> str:
        return dumps(self) + "\n"

    def __post_init__(self) -> None:
        """What every command relies on before it feeds the artifact; checked whenever a sidecar is read."""
        if not self.inputs or not self.outputs:
            raise ValueError("inputs and outputs must each list at least one tensor")
        if not 1 <= self.batch.min <= self.batch.max:
            raise ValueError(f"batch needs 1 <= min <= max, got min {self.batch.min} and max {self.batch.max}")
        shape = self.inputs[0].shape
        prep = self.preprocessing
        expected = (prep.channels, prep.crop_size, prep.crop_size)
        if len(shape) != 4 or any(isinstance(d, int) and d != e for d, e in zip(shape[1:], expected, strict=True)):
            raise ValueError(
                f"input {self.inputs[0].name!r} has shape {list(shape)}, but the preprocessing makes "
                f"[batch, {', '.join(map(str, expected))}] ({prep.color}, crop {prep.crop_size})"
            )
        scores = self.outputs[0].shape
        width = scores[1] if len(scores) == 2 and isinstance(scores[1], int) else None
        if self.labels is not None and width is not None and len(self.labels) != width:
            raise ValueError(f"{len(self.labels)} labels for {width} class scores in {self.outputs[0].name!r}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")

    @classmethod
    def from_dict(cls, data: Any, *, what: str = "sidecar") -> Sidecar:
        """A decoded sidecar (/2, or /1 upgraded) type-checked field by field; ArtifactError names what is wrong."""
        from deploy.validation import parse

        return parse(cls, _layout(data), what=what, hint="re-export it with `deploy export MODEL`, or rebuild it")


def _layout(data: Any) -> Any:
    """The JSON layout (flat weights and precision records, /1 without a label) as the dataclasses' fields."""
    if not isinstance(data, dict):
        return data
    data = {"simplifier": {}, "versions": {}, "export_seconds": 0.0, "created_at": "", "parity": None} | data
    weights, precision = data.get("weights"), data.get("precision")
    if isinstance(weights, dict):
        data["weights"] = WeightsInfo.fields_of(weights)
    if isinstance(precision, dict):
        data["precision"] = PrecisionInfo.fields_of(precision)
    if "label" not in data:
        data["label"] = _old_label(data)
    return data | {"schema": SCHEMA}


def _old_label(data: dict[str, Any]) -> dict[str, Any]:
    """A /1 sidecar had no label: the only place an artifact's identity is read from its precision record and
    file suffix (a /1 plan was compiled by TensorRT; every other /1 artifact was an ONNX file)."""
    record = data["precision"] if isinstance(data.get("precision"), dict) else {}
    precision = record.get("precision", "fp32")
    target = "tensorrt" if str(data.get("artifact")).endswith(".plan") else "onnxruntime"
    if precision != "int8":
        return {"precision": precision, "target": target}
    details = record.get("details")
    recipe = "cpu" if isinstance(details, dict) and details.get("target") == "cpu" else "tensorrt"
    return {"precision": "int8", "method": record.get("method", "entropy"), "recipe": recipe, "target": target}


def sidecar_path(artifact: Path) -> Path:
    """`X.onnx` → `X.json` (as every export and build so far); any other artifact keeps its suffix: `X.plan` →
    `X.plan.json`, so a plan never overwrites the sidecar of the typed ONNX it was compiled from."""
    if artifact.suffix == ".onnx":
        return artifact.with_suffix(".json")
    return artifact.with_name(artifact.name + ".json")


def withdraw(artifact: Path) -> None:
    """Remove an artifact, the files its sidecar lists beside it, and the sidecar (any may be missing): what failed
    parity never stays looking valid."""
    try:
        listed = companions(artifact, load_sidecar(artifact, check_hash=False))
    except ArtifactError:
        listed = ()
    for path in (artifact, *listed):
        path.unlink(missing_ok=True)
    sidecar_path(artifact).unlink(missing_ok=True)


def load_sidecar(artifact: Path, *, check_hash: bool = True) -> Sidecar:
    """Read the sidecar beside `artifact`, refusing one that is missing, unreadable or describes another file."""
    path = sidecar_path(artifact)
    if not path.is_file():
        raise ArtifactError(
            f"no sidecar {path} beside {artifact}; it records the preprocessing and labels",
            hint="re-export with `deploy export MODEL` (writes both); for an ONNX made elsewhere `deploy import FILE "
            "--input-size N --labels FILE` writes one; `deploy infer` also takes --model NAME",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema not in (SCHEMA, *OLD_SCHEMAS):
            raise ValueError(f"schema {schema!r}, expected {SCHEMA!r}")
    except (OSError, ValueError, RecursionError) as exc:
        raise ArtifactError(
            f"sidecar {path} is unreadable or not a deploy sidecar ({exc})",
            hint="re-export with `deploy export MODEL`",
        ) from exc
    sidecar = Sidecar.from_dict(data, what=f"sidecar {path}")
    if check_hash:
        _check_files(artifact, sidecar, path)
    return sidecar


def companions(artifact: Path, sidecar: Sidecar) -> tuple[Path, ...]:
    """The files beside `artifact` that belong to it (OpenVINO's weights .bin), as its sidecar lists them."""
    listed = () if sidecar.target is None else sidecar.target.companions
    return tuple(artifact.with_name(c.name) for c in listed)


def _check_files(artifact: Path, sidecar: Sidecar, path: Path) -> None:
    stale = ArtifactError(
        f"sidecar {path} describes a different file than {artifact} (sha256 mismatch: stale or foreign)",
        hint="rebuild it (`deploy export MODEL` or `deploy build MODEL`) so the pair matches",
    )
    if sha256_file(artifact) != sidecar.sha256:
        raise stale
    listed = sidecar.target.companions if sidecar.target else ()
    for digest, file in zip(listed, companions(artifact, sidecar), strict=True):
        if not file.is_file():
            raise ArtifactError(
                f"{file} is missing: {artifact} needs it beside it",
                hint="copy both files together, or rebuild with `deploy build MODEL --target TARGET`",
            )
        if sha256_file(file) != digest.sha256:
            raise stale


def package_versions(*names: str) -> dict[str, str]:
    found = {name: installed_version(name) for name in names}
    return {"python": platform.python_version()} | {name: v for name, v in found.items() if v is not None}


def onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
