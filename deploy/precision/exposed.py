"""ONNX Runtime sessions that compute Q/DQ and casts as their float definitions, optionally with intermediate
tensors exposed as outputs, and the batches to feed them.

Graph optimisations are off: with them on, ORT fuses Q/DQ pairs into integer kernels (whose results differ between
AVX2 and VNNI/AMX CPUs) and only where no exposed tensor sits in between, so exposing a tensor would change the
values it reports. Off, every CPU computes the same numbers, the arithmetic a strongly typed TensorRT build does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from deploy.errors import ExportFailed, first_line

DEFAULT_BATCH = 8


def plain_session(
    model: onnx.ModelProto, *, failure: str, hint: str = "rerun with --debug", threads: int | None = None
) -> ort.InferenceSession:
    """`model` on the CPU provider with graph optimisations off; `failure` opens the error if ORT refuses it."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exception classes
        raise ExportFailed(f"{failure}: {first_line(exc)}", hint=hint) from exc


def exposing_session(
    model: onnx.ModelProto, names: Sequence[str], *, failure: str, hint: str = "rerun with --debug"
) -> ort.InferenceSession:
    """A plain session of `model` with `names` (intermediate tensors) among its outputs, typed as inferred."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    existing = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(
        helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None)
        for name in names
        if name not in existing
    )
    return plain_session(exposed, failure=failure, hint=hint)


def batches(
    session: ort.InferenceSession, images: np.ndarray, *, batch: int = DEFAULT_BATCH
) -> Iterator[tuple[np.ndarray, int]]:
    """(feed, rows that are real) in `batch`es, or in the model's own batch when it is static (the last one padded
    with its final image)."""
    dim = session.get_inputs()[0].shape[0]
    static = isinstance(dim, int) and dim > 0
    size = int(dim) if static else batch
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        real = len(chunk)
        if static and real < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - real, axis=0)])
        yield chunk, real
