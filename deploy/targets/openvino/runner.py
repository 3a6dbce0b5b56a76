"""OpenVINO on CPU behind the Runner interface: the OpenVINO target's IR, and the peers' ONNX files.

OpenVINO reads IR and ONNX alike (the U8S8 QDQ model's Q/DQ pairs run as INT8). `precision="f32"` pins true FP32;
`None` keeps OpenVINO's default, which on AMX/AVX512-BF16 CPUs is BF16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploy.backends.base import Runner, TensorMeta
from deploy.errors import ArtifactError, first_line
from deploy.lazy import require


def precision_hint(precision: str) -> str | None:
    """INFERENCE_PRECISION_HINT for an artifact of `precision`: FP16 artifacts compute in the CPU's 16-bit float
    (OpenVINO's default picks BF16 on AMX/AVX512-BF16 and FP16 on ARM, FP32 where there is neither); FP32 and INT8
    pin FP32 for the float layers."""
    return None if precision == "fp16" else "f32"


class OpenVinoRunner(Runner):
    name = "openvino"

    def __init__(
        self,
        model: Path | Any,  # a file (IR or ONNX), or an openvino.Model made in memory (NNCF's quantized peer)
        *,
        threads: int | None = None,
        precision: str | None = "f32",
        output_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.output_names = tuple(output_names)  # the ONNX names callers key outputs by
        self.threads = threads
        self.precision = precision
        self._compiled: Any = None
        self._request: Any = None

    def activate(self) -> None:
        openvino = require("openvino", purpose="OpenVINO")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.precision is not None:
            config["INFERENCE_PRECISION_HINT"] = self.precision
        try:
            core = openvino.Core()
            model = core.read_model(str(self.model)) if isinstance(self.model, Path) else self.model
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise ArtifactError(
                f"OpenVINO cannot compile {self.model}: {first_line(exc)}", hint="rerun with --debug for all it says"
            ) from exc
        self._request = self._compiled.create_infer_request()

    def deactivate(self) -> None:
        self._request = None
        self._compiled = None

    @property
    def effective_precision(self) -> str:
        """What OpenVINO actually computes in (bf16 when left to its default on AMX CPUs)."""
        return str(self._compiled.get_property("INFERENCE_PRECISION_HINT")) if self._compiled else "unknown"

    @property
    def inputs(self) -> tuple[TensorMeta, ...]:
        return tuple(TensorMeta(port.any_name, _shape(port), "float32") for port in self._compiled.inputs)

    @property
    def outputs(self) -> tuple[TensorMeta, ...]:
        return tuple(TensorMeta(self._name(port), _shape(port), "float32") for port in self._compiled.outputs)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self._request.infer({name: np.ascontiguousarray(value) for name, value in feed.items()})
        except RuntimeError as exc:  # OpenVINO's errors from the model or the feed are untyped RuntimeErrors
            raise ArtifactError(
                f"OpenVINO cannot run {self.model}: {first_line(exc)}",
                hint="check that the file is the model its sidecar describes; rebuild it with `deploy build MODEL`",
            ) from exc
        return {self._name(port): np.array(results[port], copy=True) for port in self._compiled.outputs}

    def _name(self, port: Any) -> str:
        """The ONNX output name: OpenVINO may give a tensor several names (folded nodes) and call any of them first."""
        return next((name for name in self.output_names if name in port.get_names()), port.any_name)


def _shape(port: Any) -> tuple[int | str, ...]:
    return tuple(int(d.get_length()) if d.is_static else "batch" for d in port.get_partial_shape())
