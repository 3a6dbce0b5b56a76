"""ONNX Runtime behind the Runner interface (CPU by default; any execution provider it has)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime.capi.onnxruntime_pybind11_state as ort_errors

from deploy.backends.base import Runner, TensorMeta
from deploy.environment import CpuIsa, cpu_isa
from deploy.errors import ArtifactError, first_line
from deploy.targets.onnxruntime.u8s8 import EXACT_SESSION_CONFIG, REDUCED_WEIGHT_LIMIT, saturating_weights

log = logging.getLogger(__name__)

_RUN_ERRORS = (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.RuntimeException, ort_errors.NotImplemented)
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}


class OrtRunner(Runner):
    name = "onnxruntime"

    def __init__(
        self,
        model: Path | bytes,
        *,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
        isa: CpuIsa | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.providers = tuple(providers)
        self.intra_op_threads = intra_op_threads
        self.isa = isa  # None: this machine's; tests inject another to check what a different CPU would get
        self.exact_int8 = False  # set on activation when the U8U8 kernels had to replace saturating U8S8 ones
        self._session: ort.InferenceSession | None = None
        self._output_names: list[str] = []

    def activate(self) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        source = str(self.model) if isinstance(self.model, Path) else self.model
        self.exact_int8 = self._needs_exact_int8()
        if self.exact_int8:
            for key, value in EXACT_SESSION_CONFIG.items():
                options.add_session_config_entry(key, value)
        try:
            self._session = ort.InferenceSession(source, sess_options=options, providers=list(self.providers))
            self._output_names = [arg.name for arg in self._session.get_outputs()]
        except Exception as exc:  # onnxruntime raises its own untyped exception classes
            where = self.model if isinstance(self.model, Path) else "in-memory model"
            raise ArtifactError(
                f"ONNX Runtime cannot load {where}: {first_line(exc)}",
                hint="re-export it with `deploy export MODEL`; the file may be truncated or not ONNX",
            ) from exc

    def _needs_exact_int8(self) -> bool:
        """On a CPU whose U8S8 kernels saturate, a model with full-range int8 weights needs the exact kernels."""
        isa = self.isa or cpu_isa()
        if isa.exact_u8s8:
            return False
        try:
            model = onnx.load(self.model) if isinstance(self.model, Path) else onnx.load_from_string(self.model)
        except Exception:  # onnx raises DecodeError and others; ONNX Runtime reports an unreadable model below
            return False
        risky = saturating_weights(model)
        if risky:
            log.info(
                "%s: %d int8 weight tensors exceed ±%d and this CPU is %s: using ONNX Runtime's exact U8U8 kernels",
                self.model if isinstance(self.model, Path) else "in-memory model",
                len(risky),
                REDUCED_WEIGHT_LIMIT,
                isa.describe(),
            )
        return bool(risky)

    def deactivate(self) -> None:
        self._session = None

    @property
    def session(self) -> ort.InferenceSession:
        if self._session is None:
            raise RuntimeError("OrtRunner used outside its `with` block")
        return self._session

    @staticmethod
    def _meta(arg: ort.NodeArg) -> TensorMeta:
        shape = tuple(dim if isinstance(dim, int) else str(dim) for dim in arg.shape)
        return TensorMeta(arg.name, shape, _ORT_DTYPES.get(arg.type, arg.type))

    @property
    def inputs(self) -> tuple[TensorMeta, ...]:
        return tuple(self._meta(arg) for arg in self.session.get_inputs())

    @property
    def outputs(self) -> tuple[TensorMeta, ...]:
        return tuple(self._meta(arg) for arg in self.session.get_outputs())

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # session.run returns freshly allocated arrays, so nothing here is reused between calls.
        try:
            values = self.session.run(self._output_names, dict(feed))
        except _RUN_ERRORS as exc:  # raised by the model's own graph (a foreign or hand-edited file)
            where = self.model if isinstance(self.model, Path) else "in-memory model"
            raise ArtifactError(
                f"ONNX Runtime cannot run {where}: {first_line(exc)}",
                hint="check that the file is the model its sidecar describes; re-export it with `deploy export MODEL`",
            ) from exc
        return dict(zip(self._output_names, values, strict=True))
