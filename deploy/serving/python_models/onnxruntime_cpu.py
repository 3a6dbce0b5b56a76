"""Triton Python-backend model: an ONNX artifact run on the CPU through ONNX Runtime, inside Triton's stub process.

Written by `deploy triton --backend python` as `<model>/1/model.py` beside `model.onnx`. It is for servers without
Triton's own ONNX Runtime backend (the tritonserver of PyPI's nvidia-pytriton wheel has the Python backend only);
in NVIDIA's container, the default `deploy triton` (platform onnxruntime_onnx) is faster. Tensors are fed and
returned by their ONNX names, which config.pbtxt repeats. `intra_op_threads` in config.pbtxt sets ONNX Runtime's
threads per instance (0: its default, one per core).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(config["parameters"]["intra_op_threads"]["string_value"])
        options.inter_op_num_threads = 1
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]  # only in Triton's stub

        # One ONNX Runtime run for every request the dynamic batcher gathered, then split back per request.
        feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        sizes = [len(feed[self.inputs[0]]) for feed in feeds]
        joined = {n: np.concatenate([feed[n] for feed in feeds]) for n in self.inputs}
        try:
            results = self.session.run(self.outputs, joined)
        except Exception as exc:  # ONNX Runtime's own errors (shape, type): answered, the instance stays up
            error = pb_utils.TritonError(f"ONNX Runtime: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            parts = zip(self.outputs, results, strict=True)
            tensors = [pb_utils.Tensor(n, np.ascontiguousarray(r[start : start + size])) for n, r in parts]
            responses.append(pb_utils.InferenceResponse(tensors))
            start += size
        return responses
