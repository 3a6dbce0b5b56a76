"""The TensorRT module, loaded lazily, and the few facts about it the rest of the code branches on."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from deploy.errors import ArtifactError, MissingDependency
from deploy.lazy import require

if TYPE_CHECKING:
    # With tensorrt-stubs on MYPYPATH (CI extracts them), mypy checks every trt.* use against the real API.
    import tensorrt as trt


@dataclass(frozen=True)
class TensorRTInfo:
    version: str
    major: int

    @property
    def api_path(self) -> str:
        # 10.x: strong typing is opt-in through a creation flag; 11.x: networks are always strongly typed.
        return "strongly typed via NetworkDefinitionCreationFlag" if self.major == 10 else "strongly typed (default)"


def tensorrt() -> ModuleType:
    module = require("tensorrt", purpose="Building and running TensorRT engines")
    if not hasattr(module, "Builder"):  # e.g. a stubs-only or bindings-only install without the libraries
        raise MissingDependency(
            "the importable 'tensorrt' module has no Builder: only stubs or bindings are installed, not TensorRT",
            hint='install the full package on a GPU machine: pip install -e ".[tensorrt]"',
        )
    return module


class _LazyTensorRT:
    """`trt.X` imports TensorRT on first use (MissingDependency naming the extra when it is absent)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(tensorrt(), name)


if not TYPE_CHECKING:
    trt = _LazyTensorRT()


def info() -> TensorRTInfo:
    version = str(tensorrt().__version__)
    major = int(version.split(".")[0])
    if major < 10:
        raise MissingDependency(
            f"TensorRT {version} is too old: deploy builds strongly typed networks (TensorRT 10 or newer)",
            hint='upgrade: pip install -e ".[tensorrt]"',
        )
    return TensorRTInfo(version, major)


# TensorRT DataType name → NumPy dtype name for host buffers. Keyed by name, not by `trt.DataType.X`, so a member
# an older TensorRT lacks (E8M0 arrived in 10.x) never breaks the lookup of the others. BF16 and the FP8 formats come
# from ml_dtypes (an ONNX dependency); None: no one-element-per-item host layout (INT4/FP4 pack two per byte).
DTYPES: dict[str, str | None] = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
    "FP8": "float8_e4m3fn",
    "E8M0": "float8_e8m0fnu",
    "INT4": None,
    "FP4": None,
}


def numpy_dtype(dtype: trt.DataType) -> np.dtype:
    """TensorRT DataType → NumPy dtype (tensorrt.nptype lives in the Python wrapper, not the bindings).

    A type deploy cannot hold in a host buffer is a property of the plan, so it raises ArtifactError."""
    name = str(getattr(dtype, "name", dtype))
    if name not in DTYPES:
        raise ArtifactError(
            f"the plan has an I/O tensor of TensorRT type {name}, which deploy does not know",
            hint="rebuild the plan from a typed ONNX with float32/float16/int8 inputs and outputs: deploy build MODEL",
        )
    numpy_name = DTYPES[name]
    if numpy_name is None:
        raise ArtifactError(
            f"the plan has an I/O tensor of TensorRT type {name} (sub-byte, packed): no host buffer layout for it",
            hint="keep INT4/FP4 inside the network; its inputs and outputs should be float32 or float16",
        )
    if numpy_name in ("bfloat16", "float8_e4m3fn", "float8_e8m0fnu"):
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, numpy_name))
    return np.dtype(numpy_name)


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


def dims(shape: tuple[int, ...]) -> trt.Dims:
    return trt.Dims(list(shape))


_LOGGER: list[trt.Logger] = []  # one per process: TensorRT warns when builders and runtimes get different loggers


def logger(*, verbose: bool = False) -> trt.Logger:
    """The process's one TensorRT logger, its threshold set by the latest caller (builds and runs are sequential)."""
    if not _LOGGER:
        _LOGGER.append(trt.Logger(trt.Logger.WARNING))
    shared: trt.Logger = _LOGGER[0]
    shared.min_severity = trt.Logger.VERBOSE if verbose else trt.Logger.WARNING
    return shared
