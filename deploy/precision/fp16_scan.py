"""Which activations of an FP16 artifact come near or past the FP16 limit, measured in FP32 on real images.

ONNX Runtime's CPU provider computes an AutoCast FP16 graph in FP32, so running the artifact here can never show an
FP16 overflow, the classic TensorRT FP16 failure. This scan runs the FP32 source with every intermediate tensor
exposed over the calibration images and checks each tensor the FP16 artifact stores in FP16 against 65504.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from deploy.precision.exposed import batches, exposing_session

FP16_MAX = float(np.finfo(np.float16).max)
# A tensor whose calibration maximum is within this factor of the limit may overflow on inputs a little outside the
# calibration set; reported, not judged.
NEAR_LIMIT_FACTOR = 16.0
SCAN_BATCH = 8


@dataclass(frozen=True)
class TensorPeak:
    tensor: str
    node: str
    op: str
    max_abs: float


@dataclass(frozen=True)
class Fp16Scan:
    images: int
    fp16_tensors: int  # activations the artifact stores in FP16
    overflow: tuple[TensorPeak, ...]  # FP16 tensors whose FP32 values exceed the FP16 limit: inf on a GPU
    near_limit: tuple[TensorPeak, ...]  # FP16 tensors within NEAR_LIMIT_FACTOR of it
    largest: tuple[TensorPeak, ...]  # the five largest FP16 tensors, for the record

    @property
    def passed(self) -> bool:
        return not self.overflow


def fp16_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the activations `model` holds in FP16 (graph I/O kept FP32 by AutoCast are not among them)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.output)
    names = {info.name for info in infos if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    for node in model.graph.node:  # an FP32 tensor cast to FP16 overflows in that cast: count its source
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and to == onnx.TensorProto.FLOAT16:
            names.add(node.input[0])
    return names


def scan_fp16_ranges(source: Path, fp16_model: onnx.ModelProto, *, input_name: str, images: np.ndarray) -> Fp16Scan:
    """Peak |activation| in FP32 of every tensor `fp16_model` keeps in FP16, over `images` (N, C, H, W)."""
    stored_fp16 = fp16_tensors(fp16_model)
    model = onnx.load(source)
    floats = {
        v.name
        for v in onnx.shape_inference.infer_shapes(model).graph.value_info
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    floats |= {v.name for v in model.graph.output}
    producers = {out: node for node in model.graph.node for out in node.output if out in stored_fp16 and out in floats}
    names = sorted(producers)
    if not names:  # nothing stored in FP16 that the source also has (ORT would run every output for an empty list)
        return Fp16Scan(images=len(images), fp16_tensors=0, overflow=(), near_limit=(), largest=())
    session = exposing_session(
        model,
        names,
        failure=f"cannot scan the FP16 activations of {source}",
        hint="rerun with --debug; --fp32 and --int8 builds are independent of this one",
    )
    peaks = dict.fromkeys(names, 0.0)
    for chunk, _ in batches(session, images, batch=SCAN_BATCH):  # padding repeats an image: no new peak
        for name, value in zip(names, session.run(names, {input_name: chunk}), strict=True):
            peaks[name] = max(peaks[name], float(np.max(np.abs(value))) if value.size else 0.0)
    ranked = sorted(
        (TensorPeak(n, producers[n].name, producers[n].op_type, peak) for n, peak in peaks.items()),
        key=lambda p: -p.max_abs,
    )
    return Fp16Scan(
        images=len(images),
        fp16_tensors=len(names),
        overflow=tuple(p for p in ranked if p.max_abs > FP16_MAX),
        near_limit=tuple(p for p in ranked if FP16_MAX / NEAR_LIMIT_FACTOR < p.max_abs <= FP16_MAX),
        largest=tuple(ranked[:5]),
    )
