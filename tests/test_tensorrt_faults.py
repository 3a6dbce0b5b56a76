"""The TensorRT path's failure handling, on a machine without TensorRT or a GPU (issue 14, defects 1-6).

Every TensorRT and CUDA object here is a TEST DOUBLE that scripts control flow (what a call returns or raises); none
is TensorRT or CUDA and none can be imported by the library: each test hands its doubles to the module under test
through monkeypatch, for that test only. What the real API is (names, arity, keywords) is
tests/test_tensorrt_contract.py's job.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from deploy.cuda import Cuda, DeviceBuffer, Event, HostBuffer, Stream, _PyCuda
from deploy.errors import ArtifactError, DeployError, MissingDependency
from deploy.exporter import ExportResult
from deploy.sidecar import Sidecar
from deploy.targets.tensorrt import api, build, runtime
from deploy.targets.tensorrt.api import TensorRTInfo, numpy_dtype
from deploy.targets.tensorrt.build import PlanOptions, build_plan
from deploy.targets.tensorrt.gpu import GpuInfo
from deploy.targets.tensorrt.inspect import layer_precision
from deploy.targets.tensorrt.runtime import TrtRunner, check_plan_compatible, runs_version_compatible

# --- test doubles: TensorRT's control flow, scripted --------------------------------------------------------------


@dataclasses.dataclass
class Script:
    """What the TensorRT double does: which timing caches it accepts, whether the inspector fails, ..."""

    corrupt_cache: bytes = b"garbage"  # create_timing_cache raises on this (pybind's behaviour on a bad buffer)
    refused_cache: bytes = b"other-gpu"  # set_timing_cache returns False for a cache made from this
    get_cache_returns_none: bool = False
    inspector_raises: bool = False
    inspector_json: str = '{"Layers": []}'
    loggers: list[Any] = dataclasses.field(default_factory=list)
    dynamic: bool = True


class _Enum(SimpleNamespace):
    def __getattr__(self, name: str) -> str:  # any member: its own name (the double never checks members)
        return name


class _DataType:
    def __init__(self, name: str) -> None:
        self.name = name


def trt_double(script: Script) -> SimpleNamespace:
    """A TEST DOUBLE for the `tensorrt` module (not TensorRT): just enough objects for build_plan and TrtRunner."""

    class Logger:
        WARNING, VERBOSE = "WARNING", "VERBOSE"

        def __init__(self, severity: str) -> None:
            self.min_severity = severity
            script.loggers.append(self)

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return b"serialized:" + self.data

    class BuilderConfig:
        def __init__(self) -> None:
            self.attached: TimingCache | None = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None: ...
        def set_flag(self, flag: str) -> None: ...
        def add_optimization_profile(self, profile: object) -> int:
            return 0

        def create_timing_cache(self, data: bytes) -> TimingCache:
            if data == script.corrupt_cache:
                raise RuntimeError("Deserialization of the timing cache failed")
            return TimingCache(data)

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            if cache.data == script.refused_cache:
                return False  # TensorRT attaches nothing: get_timing_cache() then returns None
            self.attached = cache
            return True

        def get_timing_cache(self) -> TimingCache | None:
            return None if script.get_cache_returns_none else self.attached

    class Builder:
        def __init__(self, logger: Logger) -> None: ...
        def create_network(self, flags: int) -> object:
            return object()

        def create_builder_config(self) -> BuilderConfig:
            return BuilderConfig()

        def create_optimization_profile(self) -> SimpleNamespace:
            return SimpleNamespace(set_shape=lambda name, lo, opt, hi: None)

        def build_serialized_network(self, network: object, config: BuilderConfig) -> bytes:
            return b"plan bytes from the double"

    class OnnxParser:
        def __init__(self, network: object, logger: Logger) -> None: ...
        def parse_from_file(self, path: str) -> bool:
            return True

    class Context:
        def __init__(self, engine: Engine) -> None:
            self.engine = engine
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: list[int]) -> bool:
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> list[int]:
            batch = self.shapes.get("input", (-1,))[0]
            return [batch, 10]

        def set_tensor_address(self, name: str, address: int) -> bool:
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream: int) -> bool:
            self.engine.executed.append(stream)
            return True

    class Inspector:
        execution_context: Context | None = None

        def get_engine_information(self, fmt: str) -> str:
            if script.inspector_raises:
                raise RuntimeError("inspector: no layer information")
            return script.inspector_json

    class Engine:
        num_io_tensors = 2

        def __init__(self) -> None:
            self.executed: list[int] = []

        def get_tensor_name(self, index: int) -> str:
            return ("input", "logits")[index]

        def get_tensor_mode(self, name: str) -> str:
            return "INPUT" if name == "input" else "OUTPUT"

        def get_tensor_shape(self, name: str) -> list[int]:
            batch = -1 if script.dynamic else 4
            return [batch, 1, 28, 28] if name == "input" else [batch, 10]

        def get_tensor_dtype(self, name: str) -> _DataType:
            return _DataType("FLOAT")

        def get_tensor_profile_shape(self, name: str, profile: int) -> list[list[int]]:
            return [[1, 1, 28, 28], [8, 1, 28, 28], [32, 1, 28, 28]]

        def create_execution_context(self) -> Context:
            return Context(self)

        def create_engine_inspector(self) -> Inspector:
            return Inspector()

    class Runtime:
        engine_host_code_allowed = False

        def __init__(self, logger: Logger) -> None: ...
        def deserialize_cuda_engine(self, plan: bytes) -> Engine:
            return Engine()

    return SimpleNamespace(
        Logger=Logger,
        Builder=Builder,
        OnnxParser=OnnxParser,
        Runtime=Runtime,
        Dims=lambda shape: list(shape),
        MemoryPoolType=_Enum(),
        ProfilingVerbosity=_Enum(),
        BuilderFlag=_Enum(),
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=0),
        LayerInformationFormat=_Enum(),
        HardwareCompatibilityLevel=_Enum(),
        TensorIOMode=SimpleNamespace(INPUT="INPUT"),
    )


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    """Install the TensorRT double in the TensorRT modules for one test (never importable as `tensorrt`)."""
    scripted = Script()
    double = trt_double(scripted)
    for module in (api, build, runtime):
        monkeypatch.setattr(module, "trt", double)
    monkeypatch.setattr(api, "_LOGGER", [], raising=False)
    about = TensorRTInfo("11.4.0.106", 11)
    monkeypatch.setattr(build, "info", lambda: about)
    monkeypatch.setattr(runtime, "info", lambda: about)
    monkeypatch.setattr(build, "gpu_info", lambda: GpuInfo("test double, not a GPU", "9.0", "580.00", "13.0"))
    return scripted


def _build(export: ExportResult, tmp_path: Path, cache: bytes | None = None) -> tuple[build.PlanResult, Path, Path]:
    timing = tmp_path / "timing.cache"
    if cache is not None:
        timing.write_bytes(cache)
    out = tmp_path / "lenet5.fp32.plan"
    result = build_plan(export.onnx_path, export.sidecar, PlanOptions(timing_cache=timing), out=out)
    return result, out, timing


# --- defect 1: the timing cache never costs a build ---------------------------------------------------------------


def test_a_timing_cache_the_builder_refuses_is_replaced_and_the_new_one_saved(
    script: Script, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    """set_timing_cache returns False for a cache from another GPU; its result used to be ignored, and the build
    then died in get_timing_cache().serialize() after the plan was built."""
    result, out, timing = _build(lenet5_export, tmp_path, cache=script.refused_cache)
    assert out.read_bytes() == b"plan bytes from the double" and result.path == out
    assert timing.read_bytes() == b"serialized:"  # the fresh, empty cache the build filled


def test_a_corrupt_timing_cache_file_starts_a_new_cache(
    script: Script, lenet5_export: ExportResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr(build.log, "warning", lambda message, *args: said.append(message % args))
    _, out, timing = _build(lenet5_export, tmp_path, cache=script.corrupt_cache)
    assert out.is_file() and timing.read_bytes() == b"serialized:"
    assert any("could not read the timing cache" in line for line in said)


def test_a_timing_cache_that_cannot_be_saved_costs_a_warning_not_the_plan(
    script: Script, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    script.get_cache_returns_none = True
    result, out, timing = _build(lenet5_export, tmp_path, cache=b"good cache")
    assert out.read_bytes() == b"plan bytes from the double"
    assert timing.read_bytes() == b"good cache"  # untouched
    assert any("timing cache" in warning for warning in result.warnings)


# --- defect 3: the inspector runs after the plan is written --------------------------------------------------------


def test_an_inspector_failure_keeps_the_plan_and_says_the_precisions_are_unknown(
    script: Script, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    script.inspector_raises = True
    result, out, _ = _build(lenet5_export, tmp_path)
    assert out.read_bytes() == b"plan bytes from the double"
    assert result.layers is None and result.sidecar.target is not None
    assert result.sidecar.target.settings["layer_precision"] is None
    assert any("engine inspector failed" in warning for warning in result.warnings)


# --- defect 6: one logger ------------------------------------------------------------------------------------------


def test_builds_and_runners_share_one_tensorrt_logger(
    script: Script, lenet5_export: ExportResult, tmp_path: Path
) -> None:
    _build(lenet5_export, tmp_path)
    _build(lenet5_export, tmp_path)
    assert api.logger() is api.logger(verbose=True) is api.logger()
    assert len(script.loggers) == 1  # TensorRT warns when builders and runtimes are given different loggers
    assert script.loggers[0].min_severity == "WARNING"


# --- the runner, driven through a CUDA double ----------------------------------------------------------------------


class _Memory(DeviceBuffer):
    def __init__(self, log: list[str], nbytes: int, ptr: int) -> None:
        self.data, self.nbytes, self._ptr, self._log = bytearray(nbytes), nbytes, ptr, log

    @property
    def ptr(self) -> int:
        return self._ptr

    def free(self) -> None:
        self._log.append(f"free {self._ptr}")


class _Host(HostBuffer):
    def __init__(self, log: list[str], count: int, dtype: np.dtype) -> None:
        self.array, self._log = np.zeros(count, dtype), log

    def free(self) -> None:
        self._log.append("free host")


class _Stream(Stream):
    def __init__(self, log: list[str], fail: Callable[[], None]) -> None:
        self.raw, self._log, self._fail = 7, log, fail

    @property
    def handle(self) -> int:
        return 7

    def synchronize(self) -> None:
        self._log.append("synchronize")
        self._fail()

    def close(self) -> None:
        self._log.append("stream closed")


class CudaDouble(Cuda):
    """A TEST DOUBLE for deploy.cuda's interface (not CUDA): host bytearrays as "device" memory, a call log, and a
    synchronize that can be told to fail as a real one does when a kernel faulted."""

    name = "cuda-python"

    def __init__(self) -> None:
        self.log: list[str] = []
        self.fail_synchronize: Exception | None = None
        self.buffers: list[_Memory] = []

    def _maybe_fail(self) -> None:
        if self.fail_synchronize is not None:
            raise self.fail_synchronize

    def device_count(self) -> int:
        return 1

    def compute_capability(self, device: int) -> tuple[int, int]:
        return 9, 0

    def open(self, device: int) -> None:
        self.log.append(f"open {device}")

    def close(self) -> None:
        self.log.append("close")

    def alloc(self, nbytes: int) -> DeviceBuffer:
        self.buffers.append(_Memory(self.log, nbytes, 0x1000 * (len(self.buffers) + 1)))
        return self.buffers[-1]

    def pinned(self, count: int, dtype: np.dtype) -> HostBuffer:
        return _Host(self.log, count, dtype)

    def stream(self) -> Stream:
        return _Stream(self.log, self._maybe_fail)

    def event(self) -> Event:
        raise NotImplementedError

    def copy_to_device(self, *, dst: DeviceBuffer, src: np.ndarray, stream: Stream) -> None:
        assert isinstance(dst, _Memory)
        dst.data[: src.nbytes] = src.tobytes()
        self.log.append(f"h2d {src.nbytes}")

    def copy_to_host(self, *, dst: np.ndarray, src: DeviceBuffer, stream: Stream) -> None:
        assert isinstance(src, _Memory)
        dst.view(np.uint8)[:] = np.frombuffer(bytes(src.data[: dst.nbytes]), np.uint8)
        self.log.append(f"d2h {dst.nbytes}")


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"plan bytes for the double")
    return plan


def _runner(plan: Path, export: ExportResult, cuda: CudaDouble) -> TrtRunner:
    return TrtRunner(plan, sidecar=export.sidecar, cuda=cuda)


def test_dynamic_dimensions_are_named_as_tensor_meta_documents(
    script: Script, plan_file: Path, lenet5_export: ExportResult
) -> None:
    """backends/base.py: a string dimension is dynamic. TensorRT's -1 used to leak into TensorMeta, where a fixed
    size in the sidecar (checked by Runner.expecting) would then never match."""
    with _runner(plan_file, lenet5_export, CudaDouble()) as runner:
        assert runner.inputs[0].shape == ("batch", 1, 28, 28)
        assert runner.outputs[0].shape == ("batch", 10)


def test_the_runner_copies_in_runs_and_copies_out_through_the_cuda_facade(
    script: Script, plan_file: Path, lenet5_export: ExportResult
) -> None:
    cuda = CudaDouble()
    with _runner(plan_file, lenet5_export, cuda) as runner:
        # The double's "network" is the identity on the output buffer: fill it as a kernel would.
        x = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 1, 28, 28)
        runner.stage_inputs({"input": x})
        runner.copy_in()
        runner.execute()
        cuda.buffers[1].data[:80] = np.arange(20, dtype=np.float32).tobytes()
        runner.copy_out()
        runner.synchronize()
        out = runner.collect()
    assert np.frombuffer(bytes(cuda.buffers[0].data[: x.nbytes]), np.float32).tolist() == x.ravel().tolist()
    assert out["logits"].shape == (2, 10) and out["logits"].ravel().tolist() == list(range(20))
    assert f"h2d {x.nbytes}" in cuda.log and "d2h 80" in cuda.log  # only the active batch moves
    assert cuda.log[-1] == "close"


# --- defect 2: the CUDA context is given back whatever fails --------------------------------------------------------


def test_release_gives_the_context_back_and_raises_the_real_error_when_synchronize_fails(
    script: Script, plan_file: Path, lenet5_export: ExportResult
) -> None:
    cuda = CudaDouble()
    fault = DeployError("CUDA cudaStreamSynchronize failed: cudaErrorIllegalAddress")
    with pytest.raises(DeployError, match="IllegalAddress"), _runner(plan_file, lenet5_export, cuda):
        cuda.fail_synchronize = fault
    allocated = {f"free {buffer.ptr}" for buffer in cuda.buffers}
    assert cuda.log.count("free host") == 2 and allocated and allocated <= set(cuda.log)
    assert cuda.log[-2:] == ["stream closed", "close"]  # the context is popped/released last, after the failure


def test_a_failed_load_reports_its_own_error_even_if_cleanup_fails_too(
    script: Script, plan_file: Path, lenet5_export: ExportResult
) -> None:
    """The load fails after the stream exists (device memory runs out), and the cleanup's synchronize fails too:
    the error raised is the load's, and the context is still closed last."""
    cuda = CudaDouble()
    cuda.fail_synchronize = DeployError("cleanup fault")

    def out_of_memory(nbytes: int) -> DeviceBuffer:
        cuda.log.append(f"alloc {nbytes} refused")
        raise DeployError("CUDA cudaMalloc failed: cudaErrorMemoryAllocation")

    cuda.alloc = out_of_memory  # type: ignore[method-assign]
    with pytest.raises(DeployError, match="MemoryAllocation"):
        _runner(plan_file, lenet5_export, cuda).__enter__()
    assert any(entry.endswith("refused") for entry in cuda.log)
    assert "synchronize" in cuda.log  # the cleanup ran, and failed, after the load's own error
    assert cuda.log[-1] == "close"


class _PrimaryContext:
    """A TEST DOUBLE for pycuda's Context (not pycuda)."""

    def __init__(self, log: list[str], pop_fails: bool) -> None:
        self.log, self.pop_fails = log, pop_fails

    def push(self) -> None:
        self.log.append("push")

    def pop(self) -> None:
        self.log.append("pop")
        if self.pop_fails:
            raise RuntimeError("cuCtxPopCurrent failed")

    def detach(self) -> None:
        self.log.append("detach")


@pytest.mark.parametrize("pop_fails", [False, True])
def test_pycuda_binding_pops_and_detaches_the_retained_primary_context(pop_fails: bool) -> None:
    """The retained primary context used to be pushed and popped but never detached (released)."""
    log: list[str] = []
    context = _PrimaryContext(log, pop_fails)
    driver = SimpleNamespace(  # a TEST DOUBLE for pycuda.driver, handed to the binding directly
        init=lambda: None,
        Device=lambda index: SimpleNamespace(retain_primary_context=lambda: context),
    )
    cuda = _PyCuda(driver)
    cuda.open(0)
    if pop_fails:
        with pytest.raises(RuntimeError, match="PopCurrent"):
            cuda.close()
    else:
        cuda.close()
    assert log == ["push", "pop", "detach"]
    cuda.close()  # closing twice does nothing
    assert log == ["push", "pop", "detach"]


# --- defect 4: version-compatible plans run only on the same or a newer TensorRT ------------------------------------


def _plan_sidecar(base: Sidecar, version: str) -> Sidecar:
    built = {"version": version, "compute_capability": "9.0", "gpu": "H100", "version_compatible": True}
    return dataclasses.replace(base, extra={"tensorrt": built})


def test_a_version_compatible_plan_is_refused_by_an_older_runtime(lenet5_export: ExportResult) -> None:
    plan = _plan_sidecar(lenet5_export.sidecar, "10.14.1")
    with pytest.raises(ArtifactError, match="same or a newer TensorRT"):
        check_plan_compatible(plan, trt_version="10.13.0", compute_capability="9.0")
    check_plan_compatible(plan, trt_version="10.16.1", compute_capability="9.0")
    check_plan_compatible(plan, trt_version="11.4.0", compute_capability="9.0")  # 10 → 11 is documented
    with pytest.raises(ArtifactError):
        check_plan_compatible(_plan_sidecar(lenet5_export.sidecar, "11.1.0"), trt_version="10.16.1",
                              compute_capability="9.0")  # fmt: skip


def test_version_compatibility_follows_nvidias_rules() -> None:
    assert runs_version_compatible("10.13.0", "10.13.0") and runs_version_compatible("10.13.0", "10.16.1.11")
    assert runs_version_compatible("10.16.1", "11.4.0.106")
    assert not runs_version_compatible("10.16.1", "10.13.3.9")
    assert not runs_version_compatible("11.0.0", "12.0.0")  # no 11 → 12 promise (yet)
    assert not runs_version_compatible("", "10.13.0")


# --- defect 5: every TensorRT type is known; an unusable one is the plan's fault ------------------------------------


def test_every_tensorrt_data_type_maps_to_a_host_dtype_or_an_artifact_error() -> None:
    import ml_dtypes

    assert numpy_dtype(_DataType("BF16")) == np.dtype(ml_dtypes.bfloat16)  # type: ignore[arg-type]
    assert numpy_dtype(_DataType("FP8")) == np.dtype(ml_dtypes.float8_e4m3fn)  # type: ignore[arg-type]
    assert numpy_dtype(_DataType("E8M0")) == np.dtype(ml_dtypes.float8_e8m0fnu)  # type: ignore[arg-type]
    assert numpy_dtype(_DataType("HALF")) == np.float16  # type: ignore[arg-type]
    for packed in ("INT4", "FP4", "SOMETHING_NEW"):
        with pytest.raises(ArtifactError) as raised:
            numpy_dtype(_DataType(packed))  # type: ignore[arg-type]
        assert not isinstance(raised.value, MissingDependency)
    assert set(api.DTYPES) == {"FLOAT", "HALF", "BF16", "INT8", "INT32", "INT64", "BOOL", "UINT8", "FP8",
                               "INT4", "FP4", "E8M0"}  # fmt: skip  # DataType's members in 10.16 and 11.4


# --- defect 6: the inspector's JSON as NVIDIA documents it -----------------------------------------------------------


def _layer(name: str, kind: str, fmt: str) -> dict[str, Any]:
    return {"Name": name, "LayerType": kind, "Inputs": [{"Name": f"{name}_in", "Format/Datatype": fmt}]}


def test_reformat_and_quantize_layers_do_not_make_a_small_int8_build_look_fp32() -> None:
    """A LeNet-sized INT8 engine: two INT8 convolutions between FP32 reformats at the network's edges."""
    layers = [
        _layer("Reformatting CopyNode for Input Tensor 0 to conv1", "Reformat", "Row major linear FP32"),
        _layer("input_quantize", "Quantize", "Row major linear FP32"),
        _layer("conv1", "CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format"),
        _layer("conv2", "CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format"),
        _layer("Reformatting CopyNode for Output Tensor 0", "Reformat", "Row major linear FP32"),
        _layer("fc", "CaskGemmMatMul", "Row major linear FP32"),
    ]
    counts = layer_precision(json.dumps({"Layers": layers, "Bindings": ["input", "logits"]}))
    assert (counts.int8, counts.fp16, counts.fp32, counts.other) == (2, 0, 1, 3)
    assert not counts.mostly_fp32()


def test_layer_precision_reads_every_field_of_a_tensor_but_its_name() -> None:
    """NVIDIA documents one 11.x change to this JSON ("Bindings" → "I/O Tensors"); how later versions name a
    tensor's format field is not documented, so a field called "Precision" here is HYPOTHETICAL, not TensorRT's."""
    layers = [
        {"Name": "conv1", "Inputs": [{"Name": "x", "Precision": "Half"}]},
        {"Name": "conv2", "Inputs": [{"Name": "int8_named_tensor", "Format/Datatype": "Row major linear FP32"}]},
    ]
    io = [{"Name": "input_0", "IOMode": "Input", "DataType": "Float", "Dimensions": [1, 3, 224, 224]}]
    counts = layer_precision(json.dumps({"Layers": layers, "I/O Tensors": io}))
    assert (counts.int8, counts.fp16, counts.fp32) == (0, 1, 1)  # the tensor's name never decides
