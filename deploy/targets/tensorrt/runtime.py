"""The TensorRT Runner: a plan deserialised behind the common Runner interface, driven through the CUDA facade
(deploy.cuda: pycuda when importable, else cuda-python).

Page-locked host buffers and device buffers sized for the profile's largest batch, one CUDA stream, the name-based
I/O API of TensorRT 10/11 (set_input_shape, set_tensor_address, execute_async_v3), asynchronous copies, and
outputs copied out of the reused host buffers before they are returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.backends.base import Runner, TensorMeta
from deploy.backends.timing import BenchConfig, GpuStages
from deploy.cuda import Cuda, DeviceBuffer, HostBuffer, Stream, cuda_api
from deploy.errors import ArtifactError, BadInput
from deploy.sidecar import Sidecar, load_sidecar, sidecar_path
from deploy.targets.tensorrt.api import dims, dims_tuple, info, logger, numpy_dtype, trt

log = logging.getLogger(__name__)


@dataclass
class _Binding:
    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]  # -1 where dynamic (TensorRT's spelling; TensorMeta gets a name instead)
    max_shape: tuple[int, ...]
    host: HostBuffer | None = None
    device: DeviceBuffer | None = None
    active: int = 0  # elements of the current call; copies move only these, not the whole buffer


def plan_record(sidecar: Sidecar) -> dict[str, Any]:
    """How the plan was built: the sidecar's target block (schema /2) or its /1 `extra["tensorrt"]`."""
    if sidecar.target is not None and sidecar.target.name == "tensorrt":
        return {**sidecar.target.settings, "version": sidecar.target.version}
    return dict(sidecar.extra.get("tensorrt", {}))


# Version-compatible plans run on the same or a newer TensorRT of the same major version, and 10.x ones on 11.x
# (NVIDIA, "Engine Compatibility" and the 11.4 support matrix: "TensorRT 10 version-compatible engines can run with
# a TensorRT 11 runtime"; never on an older runtime).
_ACROSS_MAJORS = frozenset({(10, 11)})


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit())  # "1.post1" style suffixes
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def runs_version_compatible(plan_version: str, runtime_version: str) -> bool:
    """Whether a plan built with VERSION_COMPATIBLE by `plan_version` may be run by `runtime_version`."""
    plan, runtime = _version_tuple(plan_version), _version_tuple(runtime_version)
    if not plan or not runtime or runtime < plan:
        return False
    return plan[0] == runtime[0] or (plan[0], runtime[0]) in _ACROSS_MAJORS


def check_plan_compatible(sidecar: Sidecar, *, trt_version: str, compute_capability: str | None) -> None:
    """Refuse a plan from another TensorRT version or GPU with a clear message instead of TensorRT's."""
    built = plan_record(sidecar)
    if not built:
        return
    plan_version = str(built.get("version", ""))
    compatible = bool(built.get("version_compatible")) and runs_version_compatible(plan_version, trt_version)
    if plan_version != trt_version and not compatible:
        newer = built.get("version_compatible") and _version_tuple(trt_version) < _version_tuple(plan_version)
        raise ArtifactError(
            f"{sidecar.artifact} was built by TensorRT {plan_version}; this machine has {trt_version}"
            + (" (a version-compatible plan runs only on the same or a newer TensorRT)" if newer else ""),
            hint=f"rebuild it here: deploy build {sidecar.model} (plans are tied to the TensorRT version)",
        )
    built_cc = str(built.get("compute_capability", ""))
    level = built.get("hardware_compatibility", "none")
    if compute_capability and built_cc and built_cc != compute_capability:
        portable = level == "ampere_plus" and float(compute_capability) >= 8.0
        if not portable:
            raise ArtifactError(
                f"{sidecar.artifact} was built for compute capability {built_cc} ({built.get('gpu')}); "
                f"this GPU is {compute_capability}",
                hint="rebuild it on this GPU, or build with --hardware-compatibility ampere_plus",
            )


def tensor_meta(name: str, shape: tuple[int, ...], dtype: np.dtype) -> TensorMeta:
    """TensorRT's -1 for a dynamic dimension becomes a name, as TensorMeta documents ("batch" for the first)."""
    named = tuple(d if d >= 0 else ("batch" if i == 0 else f"dim{i}") for i, d in enumerate(shape))
    return TensorMeta(name, named, dtype.name)


class TrtRunner(Runner):
    name = "tensorrt"

    def __init__(
        self, plan: Path, *, device: int = 0, sidecar: Sidecar | None = None, cuda: Cuda | None = None
    ) -> None:
        """`cuda`: the CUDA binding to drive (default: deploy.cuda.cuda_api(), pycuda when importable)."""
        super().__init__()
        self.plan = plan
        self.device_index = device
        self.sidecar = sidecar  # a build judges a plan in its work folder, before its sidecar is written
        self._cuda = cuda
        self._opened = False
        self._bindings: list[_Binding] = []
        self._runtime: trt.Runtime | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._stream: Stream | None = None

    def activate(self) -> None:
        if not self.plan.is_file():
            raise BadInput(f"plan {self.plan} does not exist", hint="build it with `deploy build MODEL`")
        if self.sidecar is None and sidecar_path(self.plan).is_file():
            self.sidecar = load_sidecar(self.plan)
        elif self.sidecar is None:
            log.warning("no sidecar beside %s: assuming the engine's own (static) shapes", self.plan)
        about = info()
        if self._cuda is None:
            self._cuda = cuda_api()
        cuda = self._cuda
        if self.sidecar is not None:
            # The CUDA device's own capability (NVML numbers devices differently and ignores CUDA_VISIBLE_DEVICES).
            major, minor = cuda.compute_capability(self.device_index)
            check_plan_compatible(self.sidecar, trt_version=about.version, compute_capability=f"{major}.{minor}")
        cuda.open(self.device_index)
        self._opened = True
        try:
            self._load()
        except BaseException:
            try:
                self._release()
            except Exception as cleanup:  # the load's own error is the one to report
                log.warning("cleaning up after a failed load of %s also failed: %s", self.plan, cleanup)
            raise

    @property
    def cuda(self) -> Cuda:
        if self._cuda is None:
            raise RuntimeError("TrtRunner used outside its `with` block")
        return self._cuda

    def _load(self) -> None:
        self._runtime = trt.Runtime(logger())
        if self.sidecar is not None and plan_record(self.sidecar).get("version_compatible"):
            # Version-compatible plans embed the builder's host code; the runtime must be allowed to run it.
            self._runtime.engine_host_code_allowed = True
        engine = self._runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if engine is None:
            raise ArtifactError(
                f"TensorRT could not deserialize {self.plan}: truncated, corrupt or from another version",
                hint="rebuild it with `deploy build MODEL`",
            )
        self._engine = engine
        context = engine.create_execution_context()
        self._context = context
        self._stream = self.cuda.stream()
        inputs: list[_Binding] = []
        outputs: list[_Binding] = []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            shape = dims_tuple(engine.get_tensor_shape(name))
            binding = _Binding(name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                               numpy_dtype(engine.get_tensor_dtype(name)), shape, shape)  # fmt: skip
            (inputs if binding.is_input else outputs).append(binding)
        if self.sidecar is None and any(-1 in b.shape for b in inputs):
            raise ArtifactError(
                f"{self.plan} has a dynamic batch but no sidecar to say how to feed it",
                hint="keep the .json beside the plan, or rebuild it with `deploy build`",
            )
        for binding in inputs:
            if -1 in binding.shape:
                binding.max_shape = dims_tuple(engine.get_tensor_profile_shape(binding.name, 0)[2])
                context.set_input_shape(binding.name, dims(binding.max_shape))
        for binding in outputs:
            # With every input at its largest shape, TensorRT reports each output's largest shape.
            binding.max_shape = dims_tuple(context.get_tensor_shape(binding.name))
            if -1 in binding.max_shape:
                raise ArtifactError(
                    f"output {binding.name} of {self.plan} has a data-dependent shape {binding.max_shape}",
                    hint="deploy serves the classic CNNs, whose output shapes follow from the input shape",
                )
        self._bindings = inputs + outputs
        for binding in self._bindings:
            binding.host = self.cuda.pinned(int(np.prod(binding.max_shape)), binding.dtype)
            binding.device = self.cuda.alloc(binding.host.array.nbytes)
            binding.active = binding.host.array.size
            context.set_tensor_address(binding.name, binding.device.ptr)  # fixed for the session

    @property
    def context(self) -> trt.IExecutionContext:
        if self._context is None:
            raise RuntimeError("TrtRunner used outside its `with` block")
        return self._context

    def deactivate(self) -> None:
        self._release()

    def _release(self) -> None:
        """Wait for queued work, drop TensorRT objects (context before engine before runtime), free our memory and
        give the CUDA context back. Every step runs even when an earlier one raised (a fault reported at the
        synchronisation, a failing free): a context left current makes pycuda abort the process at exit, hiding the
        real error. The first error is raised once everything is released."""
        errors: list[BaseException] = []

        def attempt(step: Any, *args: Any) -> None:
            try:
                step(*args)
            except Exception as exc:
                errors.append(exc)

        stream, self._stream = self._stream, None
        if stream is not None:
            attempt(stream.synchronize)
        self._context = None
        self._engine = None
        self._runtime = None
        for binding in self._bindings:
            if binding.device is not None:
                attempt(binding.device.free)
            if binding.host is not None:
                attempt(binding.host.free)
        self._bindings = []
        if stream is not None:
            attempt(stream.close)
        if self._opened and self._cuda is not None:
            self._opened = False
            attempt(self._cuda.close)
        if errors:
            for later in errors[1:]:
                log.warning("also failed while releasing %s: %s", self.plan, later)
            raise errors[0]

    @property
    def inputs(self) -> tuple[TensorMeta, ...]:
        return tuple(tensor_meta(b.name, b.shape, b.dtype) for b in self._bindings if b.is_input)

    @property
    def outputs(self) -> tuple[TensorMeta, ...]:
        return tuple(tensor_meta(b.name, b.shape, b.dtype) for b in self._bindings if not b.is_input)

    def _host(self, binding: _Binding) -> np.ndarray:
        if binding.host is None:
            raise RuntimeError("TrtRunner used outside its `with` block")
        return binding.host.array

    def _device(self, binding: _Binding) -> DeviceBuffer:
        if binding.device is None:
            raise RuntimeError("TrtRunner used outside its `with` block")
        return binding.device

    def stage_inputs(self, feed: Mapping[str, np.ndarray]) -> None:
        """Shapes and host copies for `feed` (no device work yet)."""
        for binding in (b for b in self._bindings if b.is_input):
            array = np.ascontiguousarray(feed[binding.name], dtype=binding.dtype)
            host = self._host(binding)
            if array.size > host.size:
                raise BadInput(
                    f"batch {array.shape[0]} for {binding.name} exceeds the plan's profile {binding.max_shape}",
                    hint="rebuild with a larger --max-batch, or send smaller batches",
                )
            if not self.context.set_input_shape(binding.name, dims(array.shape)):
                raise BadInput(f"shape {array.shape} does not fit {binding.name}'s profile {binding.max_shape}")
            host[: array.size] = array.ravel()
            binding.active = array.size
        for binding in (b for b in self._bindings if not b.is_input):
            binding.active = int(np.prod(dims_tuple(self.context.get_tensor_shape(binding.name))))

    def copy_in(self) -> None:
        for binding in (b for b in self._bindings if b.is_input):
            src = self._host(binding)[: binding.active]
            self.cuda.copy_to_device(dst=self._device(binding), src=src, stream=self.stream)

    def execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise ArtifactError(f"TensorRT failed to enqueue {self.plan}", hint="rerun with --debug")

    def copy_out(self) -> None:
        for binding in (b for b in self._bindings if not b.is_input):
            dst = self._host(binding)[: binding.active]
            self.cuda.copy_to_host(dst=dst, src=self._device(binding), stream=self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    @property
    def stream(self) -> Stream:
        if self._stream is None:
            raise RuntimeError("TrtRunner used outside its `with` block")
        return self._stream

    def collect(self) -> dict[str, np.ndarray]:
        results = {}
        for binding in (b for b in self._bindings if not b.is_input):
            shape = dims_tuple(self.context.get_tensor_shape(binding.name))
            # Copy: the page-locked buffer is reused by the next call.
            results[binding.name] = self._host(binding)[: int(np.prod(shape))].reshape(shape).copy()
        return results

    def gpu_stages(self, feeds: Sequence[Mapping[str, np.ndarray]], config: BenchConfig) -> GpuStages:
        from deploy.targets.tensorrt.latency import measure_trt

        return measure_trt(self, feeds, config)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.stage_inputs(feed)
        self.copy_in()
        self.execute()
        self.copy_out()
        self.synchronize()
        return self.collect()
