"""The ONNX Runtime target: runs every typed ONNX on CPU; its INT8 is the U8S8 QDQ recipe."""

from __future__ import annotations

from pathlib import Path

from deploy.backends.base import Runner
from deploy.sidecar import Sidecar
from deploy.targets.base import Check, Compiled, CompileRequest, Progress, Target, TritonModelFiles


class OnnxRuntime(Target):
    name = "onnxruntime"
    suffix = ".onnx"
    int8_recipe = "cpu"
    triton = TritonModelFiles("onnxruntime_onnx", None, ("model.onnx",), instance_kinds=("gpu", "cpu"))
    compiles = False

    def runner(self, artifact: Path, *, threads: int | None = None, sidecar: Sidecar | None = None) -> Runner:
        from deploy.targets.onnxruntime.runner import OrtRunner

        return OrtRunner(artifact, intra_op_threads=threads)

    def availability(self) -> tuple[bool, str]:
        import onnxruntime

        return True, f"ONNX Runtime {onnxruntime.__version__} runs the typed ONNX on CPU"

    def compile(self, request: CompileRequest, *, progress: Progress | None = None) -> Compiled | None:
        return None

    def probe(self) -> tuple[Check, ...]:
        import onnxruntime

        providers = ", ".join(onnxruntime.get_available_providers())
        return (Check("ONNX Runtime", True, onnxruntime.__version__, f"providers: {providers}", ""),)
