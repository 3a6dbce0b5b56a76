"""The Runner for an artifact file: ONNX Runtime for .onnx, TensorRT (pycuda) for .plan."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import Runner
from deploy.errors import BadInput

ARTIFACT_SUFFIXES = (".onnx", ".plan")


def runner_for(artifact: Path, *, intra_op_threads: int | None = None) -> Runner:
    if artifact.suffix == ".plan":
        from deploy.backends.tensorrt.runtime import TrtRunner

        return TrtRunner(artifact)
    if artifact.suffix == ".onnx":
        from deploy.backends.onnxruntime_runner import OrtRunner

        return OrtRunner(artifact, intra_op_threads=intra_op_threads)
    raise BadInput(
        f"{artifact} is neither an .onnx file nor a TensorRT .plan",
        hint="pass an artifact from `deploy export` or `deploy build`",
    )
