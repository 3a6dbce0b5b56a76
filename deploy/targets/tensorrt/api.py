"""The TensorRT module, loaded lazily, and the few facts about it the rest of the code branches on."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from deploy.errors import MissingDependency
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


def numpy_dtype(dtype: trt.DataType) -> np.dtype:
    """TensorRT DataType → NumPy dtype (tensorrt.nptype lives in the Python wrapper, not the bindings)."""
    table = {
        trt.DataType.FLOAT: np.float32,
        trt.DataType.HALF: np.float16,
        trt.DataType.INT8: np.int8,
        trt.DataType.INT32: np.int32,
        trt.DataType.INT64: np.int64,
        trt.DataType.BOOL: np.bool_,
        trt.DataType.UINT8: np.uint8,
    }
    if dtype not in table:
        raise MissingDependency(f"TensorRT tensor type {dtype} has no NumPy equivalent for host buffers")
    return np.dtype(table[dtype])


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


def dims(shape: tuple[int, ...]) -> trt.Dims:
    return trt.Dims(list(shape))


def logger(*, verbose: bool = False) -> trt.Logger:
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
