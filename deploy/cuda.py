"""The few CUDA operations deploy needs (device context, device and pinned host memory, async copies, a stream,
events), behind one small interface with two implementations: pycuda, preferred when importable, and NVIDIA's
cuda-python (`cuda.bindings.runtime`, the `cuda-bindings` wheel). Both are imported only when `cuda_api` is called.

pycuda has no wheels (it compiles against the CUDA toolkit's headers and links libcuda); cuda-bindings has real
wheels and is what NVIDIA's samples and Polygraphy use. Either drives the same TensorRT runner.
"""

from __future__ import annotations

import abc
import ctypes
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from deploy.errors import DeployError, MissingDependency, first_line

log = logging.getLogger(__name__)

Binding = Literal["pycuda", "cuda-python"]
BINDINGS: tuple[Binding, ...] = ("pycuda", "cuda-python")

# The exact install lines doctor, errors and the README give.
PYCUDA_INSTALL = (
    'pip install "pycuda>=2026.1" (builds from source: needs the CUDA toolkit headers, cudaProfiler.h included, '
    "libcuda from the NVIDIA driver, and g++; 2025.1.1 does not build against CUDA 13)"
)
CUDA_PYTHON_INSTALL = 'pip install "cuda-bindings>=13.0" (wheels; or pip install -e ".[cuda]")'
_MODULES: dict[Binding, str] = {"pycuda": "pycuda.driver", "cuda-python": "cuda.bindings.runtime"}


class CudaError(DeployError):
    """A CUDA call failed (no driver, no device, out of memory, a kernel fault reported at a synchronisation)."""


class DeviceBuffer(abc.ABC):
    """Device memory; `ptr` is the address TensorRT's set_tensor_address takes."""

    nbytes: int

    @property
    @abc.abstractmethod
    def ptr(self) -> int: ...

    @abc.abstractmethod
    def free(self) -> None: ...


class HostBuffer(abc.ABC):
    """Page-locked host memory viewed as a flat NumPy array (async copies need pinned memory to be async)."""

    array: np.ndarray

    @abc.abstractmethod
    def free(self) -> None: ...


class Stream(abc.ABC):
    raw: Any  # the binding's own stream object

    @property
    @abc.abstractmethod
    def handle(self) -> int:
        """The cudaStream_t as an integer, for TensorRT's execute_async_v3."""

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


class Event(abc.ABC):
    raw: Any  # the binding's own event object

    @abc.abstractmethod
    def record(self, stream: Stream) -> None: ...

    @abc.abstractmethod
    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to `end`, both recorded and complete (the stream was synchronised)."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Cuda(abc.ABC):
    """One CUDA binding. `open` makes `device` current on this thread; `close` undoes exactly that."""

    name: Binding

    @abc.abstractmethod
    def device_count(self) -> int: ...

    @abc.abstractmethod
    def compute_capability(self, device: int) -> tuple[int, int]: ...

    @abc.abstractmethod
    def open(self, device: int) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def alloc(self, nbytes: int) -> DeviceBuffer: ...

    @abc.abstractmethod
    def pinned(self, count: int, dtype: np.dtype) -> HostBuffer: ...

    @abc.abstractmethod
    def stream(self) -> Stream: ...

    @abc.abstractmethod
    def event(self) -> Event: ...

    @abc.abstractmethod
    def copy_to_device(self, *, dst: DeviceBuffer, src: np.ndarray, stream: Stream) -> None:
        """Queue a copy of the contiguous host array `src` (pinned, for the copy to be asynchronous) into `dst`."""

    @abc.abstractmethod
    def copy_to_host(self, *, dst: np.ndarray, src: DeviceBuffer, stream: Stream) -> None:
        """Queue a copy of the first `dst.nbytes` bytes of `src` into the contiguous host array `dst`."""


@dataclass(frozen=True)
class BindingStatus:
    """Whether a CUDA binding can be imported here, and if not, why (for doctor and the self-test)."""

    name: Binding
    importable: bool
    detail: str
    install: str


def binding_status() -> tuple[BindingStatus, ...]:
    """Each binding's importability, preferred first; nothing is initialised."""
    rows = []
    for name, install in zip(BINDINGS, (PYCUDA_INSTALL, CUDA_PYTHON_INSTALL), strict=True):
        if importlib.util.find_spec(_MODULES[name].split(".")[0]) is None:
            rows.append(BindingStatus(name, False, "not installed", install))
            continue
        try:
            _import(name)
        except ImportError as exc:  # pycuda's _driver fails to load without libcuda
            rows.append(BindingStatus(name, False, f"installed but not importable: {first_line(exc)}", install))
            continue
        rows.append(BindingStatus(name, True, "importable", install))
    return tuple(rows)


def cuda_api(prefer: Binding | None = None) -> Cuda:
    """The CUDA binding to use: `prefer` if given, else pycuda when importable, else cuda-python."""
    order = (prefer,) if prefer is not None else BINDINGS
    reasons = []
    for name in order:
        try:
            module = _import(name)
        except ImportError as exc:
            reasons.append(f"{name}: {first_line(exc)}")
            continue
        try:
            return _PyCuda(module) if name == "pycuda" else _CudaPython(module)
        except Exception as exc:  # pycuda's init raises its own RuntimeError/LogicError (no device, old driver)
            reasons.append(f"{name}: imported but could not initialise CUDA: {first_line(exc)}")
            log.info("CUDA binding %s failed to initialise: %s", name, exc)
    raise MissingDependency(
        "running TensorRT plans needs a CUDA binding, and none is usable (" + "; ".join(reasons) + ")",
        hint=f"install cuda-python: {CUDA_PYTHON_INSTALL}; or pycuda: {PYCUDA_INSTALL}",
    )


def _import(name: Binding) -> Any:
    import importlib

    return importlib.import_module(_MODULES[name])


# --- pycuda -------------------------------------------------------------------------------------------------------


class _PyCudaDevice(DeviceBuffer):
    def __init__(self, allocation: Any, nbytes: int) -> None:
        self._allocation = allocation
        self.nbytes = nbytes

    @property
    def ptr(self) -> int:
        return int(self._allocation)

    def free(self) -> None:
        self._allocation.free()


class _PyCudaHost(HostBuffer):
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def free(self) -> None:
        base = self.array.base
        if base is not None and hasattr(base, "free"):  # pycuda's HostAllocation
            base.free()


class _PyCudaStream(Stream):
    def __init__(self, stream: Any) -> None:
        self.raw = stream

    @property
    def handle(self) -> int:
        return int(self.raw.handle)

    def synchronize(self) -> None:
        self.raw.synchronize()

    def close(self) -> None:
        self.raw = None  # pycuda destroys the stream with the object


class _PyCudaEvent(Event):
    def __init__(self, event: Any) -> None:
        self.raw = event

    def record(self, stream: Stream) -> None:
        self.raw.record(_raw(stream))

    def elapsed_ms(self, end: Event) -> float:
        return float(self.raw.time_till(_raw(end)))

    def close(self) -> None:
        self.raw = None


def _raw(thing: Stream | Event) -> Any:
    return thing.raw


class _PyCuda(Cuda):
    name: Binding = "pycuda"

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self._context: Any = None
        driver.init()

    def device_count(self) -> int:
        return int(self.driver.Device.count())

    def compute_capability(self, device: int) -> tuple[int, int]:
        major, minor = self.driver.Device(device).compute_capability()
        return int(major), int(minor)

    def open(self, device: int) -> None:
        # The primary context, as the CUDA runtime (and TensorRT) use it; pushed so pycuda's calls see it.
        context = self.driver.Device(device).retain_primary_context()
        context.push()
        self._context = context

    def close(self) -> None:
        """Pop, then detach (release the primary context), even if popping failed: pycuda aborts the process at
        exit when a context is left on its stack."""
        context, self._context = self._context, None
        if context is None:
            return
        try:
            context.pop()
        finally:
            context.detach()

    def alloc(self, nbytes: int) -> DeviceBuffer:
        return _PyCudaDevice(self.driver.mem_alloc(max(nbytes, 1)), nbytes)

    def pinned(self, count: int, dtype: np.dtype) -> HostBuffer:
        return _PyCudaHost(self.driver.pagelocked_empty(count, dtype))

    def stream(self) -> Stream:
        return _PyCudaStream(self.driver.Stream())

    def event(self) -> Event:
        return _PyCudaEvent(self.driver.Event())

    def copy_to_device(self, *, dst: DeviceBuffer, src: np.ndarray, stream: Stream) -> None:
        # pycuda: memcpy_htod_async(dest, src, stream) — device first.
        self.driver.memcpy_htod_async(dst.ptr, src, _raw(stream))

    def copy_to_host(self, *, dst: np.ndarray, src: DeviceBuffer, stream: Stream) -> None:
        # pycuda: memcpy_dtoh_async(dest, src, stream) — host first.
        self.driver.memcpy_dtoh_async(dst, src.ptr, _raw(stream))


# --- cuda-python (cuda.bindings.runtime) ---------------------------------------------------------------------------


class _CudaPythonDevice(DeviceBuffer):
    def __init__(self, api: _CudaPython, ptr: int, nbytes: int) -> None:
        self._api, self._ptr, self.nbytes = api, ptr, nbytes

    @property
    def ptr(self) -> int:
        return self._ptr

    def free(self) -> None:
        ptr, self._ptr = self._ptr, 0
        if ptr:
            self._api.call("cudaFree", ptr)


class _CudaPythonHost(HostBuffer):
    def __init__(self, api: _CudaPython, ptr: int, count: int, dtype: np.dtype) -> None:
        self._api, self._ptr = api, ptr
        raw = (ctypes.c_byte * max(count * dtype.itemsize, 1)).from_address(ptr)
        self.array = np.frombuffer(memoryview(raw), dtype=np.uint8)[: count * dtype.itemsize].view(dtype)

    def free(self) -> None:
        ptr, self._ptr = self._ptr, 0
        if ptr:
            self.array = np.empty(0, self.array.dtype)  # no view may outlive the memory
            self._api.call("cudaFreeHost", ptr)


class _CudaPythonStream(Stream):
    def __init__(self, api: _CudaPython, stream: Any) -> None:
        self._api, self.raw = api, stream

    @property
    def handle(self) -> int:
        return int(self.raw)

    def synchronize(self) -> None:
        self._api.call("cudaStreamSynchronize", self.raw)

    def close(self) -> None:
        stream, self.raw = self.raw, None
        if stream is not None:
            self._api.call("cudaStreamDestroy", stream)


class _CudaPythonEvent(Event):
    def __init__(self, api: _CudaPython, event: Any) -> None:
        self._api, self.raw = api, event

    def record(self, stream: Stream) -> None:
        self._api.call("cudaEventRecord", self.raw, _raw(stream))

    def elapsed_ms(self, end: Event) -> float:
        return float(self._api.call("cudaEventElapsedTime", self.raw, _raw(end)))

    def close(self) -> None:
        event, self.raw = self.raw, None
        if event is not None:
            self._api.call("cudaEventDestroy", event)


class _CudaPython(Cuda):
    """The CUDA runtime API through `cuda.bindings.runtime`: every call returns (cudaError_t, *results)."""

    name: Binding = "cuda-python"

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def call(self, function: str, *args: Any) -> Any:
        result = getattr(self.runtime, function)(*args)
        error, values = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if int(error) != 0:
            _, text = self.runtime.cudaGetErrorString(error)
            message = text.decode() if isinstance(text, bytes) else str(text)
            raise CudaError(
                f"CUDA {function} failed: {getattr(error, 'name', error)} ({message})",
                hint="check the driver and GPU with `deploy doctor` and nvidia-smi",
            )
        return values[0] if len(values) == 1 else values or None

    def device_count(self) -> int:
        return int(self.call("cudaGetDeviceCount"))

    def compute_capability(self, device: int) -> tuple[int, int]:
        attr = self.runtime.cudaDeviceAttr
        major = self.call("cudaDeviceGetAttribute", attr.cudaDevAttrComputeCapabilityMajor, device)
        minor = self.call("cudaDeviceGetAttribute", attr.cudaDevAttrComputeCapabilityMinor, device)
        return int(major), int(minor)

    def open(self, device: int) -> None:
        self.call("cudaSetDevice", device)  # the runtime API uses the device's primary context, as TensorRT does

    def close(self) -> None:
        """Nothing to undo: the runtime API keeps the primary context for the process and releases it at exit."""

    def alloc(self, nbytes: int) -> DeviceBuffer:
        return _CudaPythonDevice(self, int(self.call("cudaMalloc", max(nbytes, 1))), nbytes)

    def pinned(self, count: int, dtype: np.dtype) -> HostBuffer:
        dtype = np.dtype(dtype)
        return _CudaPythonHost(self, int(self.call("cudaMallocHost", max(count * dtype.itemsize, 1))), count, dtype)

    def stream(self) -> Stream:
        return _CudaPythonStream(self, self.call("cudaStreamCreate"))

    def event(self) -> Event:
        return _CudaPythonEvent(self, self.call("cudaEventCreate"))

    def copy_to_device(self, *, dst: DeviceBuffer, src: np.ndarray, stream: Stream) -> None:
        kind = self.runtime.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.call("cudaMemcpyAsync", dst.ptr, _address(src), src.nbytes, kind, _raw(stream))

    def copy_to_host(self, *, dst: np.ndarray, src: DeviceBuffer, stream: Stream) -> None:
        kind = self.runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.call("cudaMemcpyAsync", _address(dst), src.ptr, dst.nbytes, kind, _raw(stream))


def _address(array: np.ndarray) -> int:
    if not array.flags.c_contiguous:
        raise ValueError("CUDA copies need a contiguous host array")
    return int(array.ctypes.data)
