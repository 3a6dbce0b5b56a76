"""Where an FP16 or INT8 artifact departs from its FP32 source, node by node, on held-out images.

Both graphs run on ONNX Runtime's CPU provider with every intermediate tensor exposed and graph optimisations off:
with them on, ORT fuses Q/DQ pairs into integer kernels only where no exposed tensor sits in between, so exposing a
tensor would change the very values it reports. With them off, Q/DQ runs as its float definition (quantise, round,
clamp, dequantise) — the arithmetic a strongly typed TensorRT build reproduces — on any CPU.

A node's *added error* is its output's relative error minus the largest relative error among its inputs: the damage
the node does itself rather than inherits, which is what ranks layers.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from deploy.errors import BadInput
from deploy.harness.heldout import held_out_set
from deploy.precision.exposed import batches, exposing_session
from deploy.precision.fp16_scan import Fp16Scan, scan_fp16_ranges
from deploy.sidecar import Sidecar, load_sidecar

# Plumbing whose outputs are not a layer's result (Q/DQ and casts exist only in the typed graph).
NOT_COMPARED = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "Cast", "Constant", "Shape", "Gather", "Unsqueeze", "Concat_shape",
     "Identity", "Reshape", "Flatten", "Squeeze", "Transpose"}
)  # fmt: skip
# The first node whose added error reaches this share of the largest added error is where the damage starts.
JUMP_SHARE = 0.5
# Below this relative error nothing is called a jump (FP16 rounding alone is ~1e-3).
JUMP_FLOOR = 0.02
DIAGNOSE_BATCH = 4
DEFAULT_IMAGES = 64
NAME_SCOPES = "pkg.torch.onnx.name_scopes"


@dataclass(frozen=True)
class DiagnoseConfig:
    artifact: Path
    reference: Path | None = None  # the FP32 ONNX; default: the one the artifact's sidecar names
    images: Path | None = None  # a folder of the user's images; default: the model's held-out demo set
    count: int = DEFAULT_IMAGES
    progress: Callable[[int, int], None] | None = None  # (images done, images in all)


@dataclass(frozen=True)
class NodeError:
    position: int  # in the FP32 graph's order
    node: str
    op: str
    tensor: str
    module: str | None  # the PyTorch module it was exported from
    reduced: bool  # INT8: an input of it passes through Q/DQ; FP16: it computes in FP16
    cosine: float  # mean over images of the per-image cosine similarity to FP32
    min_cosine: float
    relative_error: float  # ||typed - fp32|| / ||fp32|| over all images
    added_error: float  # relative_error minus the largest relative_error among its compared inputs


@dataclass(frozen=True)
class Diagnosis:
    model: str
    artifact: str
    reference: str
    precision: str
    images: int
    image_source: str
    nodes: tuple[NodeError, ...]  # graph order
    first_jump: NodeError | None
    fp16_scan: Fp16Scan | None  # FP16 artifacts: FP32 activation peaks against the FP16 limit

    def ranked(self, top: int | None = None) -> tuple[NodeError, ...]:
        """The nodes that add the most error themselves, worst first."""
        order = sorted(self.nodes, key=lambda n: (-n.added_error, n.position))
        return tuple(order[:top] if top is not None else order)

    @property
    def output(self) -> NodeError | None:
        return self.nodes[-1] if self.nodes else None


def diagnose(config: DiagnoseConfig) -> Diagnosis:
    artifact = _existing(config.artifact, "artifact", "build one with `deploy build MODEL --fp16 --int8`")
    sidecar = load_sidecar(artifact)
    typed_path = _typed_onnx(artifact, sidecar)
    typed_sidecar = sidecar if typed_path == artifact else load_sidecar(typed_path)
    if typed_sidecar.precision is None or typed_sidecar.label.precision == "fp32":
        raise BadInput(
            f"{artifact} is an FP32 artifact: there is no reduced precision to diagnose",
            hint="pass an FP16 or INT8 artifact from `deploy build --fp16 --int8`",
        )
    reference = _reference(config.reference, typed_sidecar, artifact)
    held = held_out_set(typed_sidecar, images=config.images, count=config.count)
    fp32_model = onnx.load(reference)
    typed_model = onnx.load(typed_path)
    compared = _compared_tensors(fp32_model, typed_model)
    if not compared:
        raise BadInput(
            f"{typed_path} and {reference} share no intermediate tensor names: they are not one model's graphs",
            hint="pass the FP32 export the artifact was built from with --reference export/MODEL.onnx",
        )
    input_name = typed_sidecar.inputs[0].name
    stats = _compare(fp32_model, typed_model, compared, input_name, held.arrays, config.progress)
    nodes = _node_errors(fp32_model, typed_model, compared, stats, precision=typed_sidecar.label.precision)
    scan = None
    if typed_sidecar.label.precision == "fp16":
        scan = scan_fp16_ranges(reference, typed_model, input_name=input_name, images=held.arrays)
    return Diagnosis(
        model=typed_sidecar.model,
        artifact=str(artifact),
        reference=str(reference),
        precision=typed_sidecar.label.typed_name,
        images=len(held.arrays),
        image_source=held.source,
        nodes=nodes,
        first_jump=first_jump(nodes),
        fp16_scan=scan,
    )


def first_jump(nodes: Iterable[NodeError]) -> NodeError | None:
    """The first node, in graph order, whose added error is at least JUMP_SHARE of the largest one (and above
    JUMP_FLOOR): where most of the damage starts, even when later nodes amplify it."""
    ordered = list(nodes)
    worst = max((n.added_error for n in ordered), default=0.0)
    if worst < JUMP_FLOOR:
        return None
    return next(n for n in ordered if n.added_error >= max(JUMP_FLOOR, JUMP_SHARE * worst))


def module_of(node: onnx.NodeProto, initializers: set[str]) -> str | None:
    """The PyTorch module a node came from: the exporter's name scopes, else the name of its weight."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES:
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if s]
            except (ValueError, SyntaxError):
                break
            if len(scopes) >= 2:
                return str(scopes[-2])  # the last entry is the aten op's own name
            break
    for name in node.input:
        if name in initializers and name.endswith((".weight", ".bias")):
            return name.rsplit(".", 1)[0]
    return None


@dataclass
class _Stats:
    squared_error: float = 0.0
    squared_reference: float = 0.0
    cosines: list[float] | None = None

    def add(self, reference: np.ndarray, typed: np.ndarray) -> None:
        if self.cosines is None:
            self.cosines = []
        ref = reference.reshape(len(reference), -1).astype(np.float64)
        got = typed.reshape(len(typed), -1).astype(np.float64)
        self.squared_error += float(np.sum((got - ref) ** 2))
        self.squared_reference += float(np.sum(ref**2))
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
        dots = np.sum(ref * got, axis=1)
        both_zero = (norms == 0) & np.all(ref == got, axis=1)
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1.0, 0.0))
        self.cosines.extend(float(c) for c in cos)

    @property
    def relative_error(self) -> float:
        if self.squared_reference == 0.0:  # an all-zero reference: any difference is all error (1.0, JSON-safe)
            return 0.0 if self.squared_error == 0.0 else 1.0
        return math.sqrt(self.squared_error / self.squared_reference)


def _existing(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise BadInput(f"{what} {path} {'is not a file' if path.exists() else 'does not exist'}", hint=fix)
    return path


def _typed_onnx(artifact: Path, sidecar: Sidecar) -> Path:
    """The typed ONNX behind an artifact: the file itself, or what a compiled plan or IR was built from."""
    if artifact.suffix == ".onnx":
        return artifact
    source = Path(sidecar.target.source_onnx) if sidecar.target is not None else None
    if source is None or not source.is_file():
        raise BadInput(
            f"cannot find the typed ONNX {artifact} was compiled from ({source or 'not recorded'})",
            hint=f"run deploy diagnose on the .onnx beside it, e.g. {artifact.with_suffix('.onnx')}",
        )
    return source


def _reference(given: Path | None, sidecar: Sidecar, artifact: Path) -> Path:
    if given is not None:
        return _existing(given, "--reference", "pass the FP32 export, e.g. --reference export/MODEL.onnx")
    assert sidecar.precision is not None
    recorded = Path(sidecar.precision.source_onnx)
    for candidate in (recorded, artifact.parent / recorded, artifact.parent.parent / "export" / recorded.name):
        if candidate.is_file():
            return candidate
    raise BadInput(
        f"the FP32 ONNX {artifact} was built from ({recorded}) is not here",
        hint=f"pass it with --reference, e.g. deploy diagnose {artifact} --reference export/{recorded.name}",
    )


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    return {name: kind for name, kind in types.items() if kind in floats}


def _compared_tensors(fp32: onnx.ModelProto, typed: onnx.ModelProto) -> list[str]:
    """Outputs of the FP32 graph's layers that the typed graph also computes, under the same name, in graph order."""
    typed_outputs = {out for node in typed.graph.node for out in node.output}
    fp32_types = _float_types(fp32)
    return [
        node.output[0]
        for node in fp32.graph.node
        if node.op_type not in NOT_COMPARED
        and node.output
        and node.output[0] in typed_outputs
        and node.output[0] in fp32_types
    ]


def _compare(
    fp32: onnx.ModelProto,
    typed: onnx.ModelProto,
    names: list[str],
    input_name: str,
    images: np.ndarray,
    progress: Callable[[int, int], None] | None,
) -> dict[str, _Stats]:
    failure = "ONNX Runtime cannot run the graph with its intermediate tensors exposed"
    reference = exposing_session(fp32, names, failure=failure)
    candidate = exposing_session(typed, names, failure=failure)
    stats = {name: _Stats() for name in names}
    done = 0
    for feed, real in batches(candidate, images, batch=DIAGNOSE_BATCH):
        ours = candidate.run(names, {input_name: feed})
        theirs = reference.run(names, {input_name: feed})
        for name, got, want in zip(names, ours, theirs, strict=True):
            stats[name].add(np.asarray(want)[:real], np.asarray(got)[:real])
        done += real
        if progress is not None:
            progress(done, len(images))
    return stats


def _node_errors(
    fp32: onnx.ModelProto,
    typed: onnx.ModelProto,
    names: list[str],
    stats: dict[str, _Stats],
    *,
    precision: str,
) -> tuple[NodeError, ...]:
    initializers = {init.name for init in fp32.graph.initializer}
    producers = {node.output[0]: (position, node) for position, node in enumerate(fp32.graph.node) if node.output}
    reduced = _reduced_outputs(typed, precision)
    errors = _propagated_errors(fp32, stats)
    rows = []
    for name in names:
        position, node = producers[name]
        own = stats[name].relative_error
        inherited = max((errors.get(i, 0.0) for i in node.input), default=0.0)
        cosines = stats[name].cosines or [1.0]
        rows.append(
            NodeError(
                position=position,
                node=node.name,
                op=node.op_type,
                tensor=name,
                module=module_of(node, initializers),
                reduced=name in reduced,
                cosine=float(np.mean(cosines)),
                min_cosine=float(np.min(cosines)),
                relative_error=own,
                added_error=max(0.0, own - inherited),
            )
        )
    return tuple(rows)


def _propagated_errors(fp32: onnx.ModelProto, stats: dict[str, _Stats]) -> dict[str, float]:
    """Every tensor's relative error: measured where compared, else the largest of its inputs' (a Reshape or a
    Flatten passes its input's error on unchanged)."""
    errors: dict[str, float] = {}
    for node in fp32.graph.node:
        inherited = max((errors.get(i, 0.0) for i in node.input), default=0.0)
        for out in node.output:
            errors[out] = stats[out].relative_error if out in stats else inherited
    return errors


def _reduced_outputs(typed: onnx.ModelProto, precision: str) -> set[str]:
    if precision == "fp16":
        types = _float_types(typed)
        return {out for node in typed.graph.node for out in node.output if types.get(out) == onnx.TensorProto.FLOAT16}
    dequantized = {node.output[0] for node in typed.graph.node if node.op_type == "DequantizeLinear"}
    return {node.output[0] for node in typed.graph.node if node.output and dequantized.intersection(node.input)}
