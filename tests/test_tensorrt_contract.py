"""The TensorRT code is right against the real API it cannot run here (no TensorRT libraries, no GPU).

Two checks:
- the real pybind modules of TensorRT 11.4 and 10.16 (`tensorrt_bindings/tensorrt.so` from the
  tensorrt-cu13-bindings wheels), imported in a subprocess against an inert stand-in for libnvinfer (a few lines of
  C, compiled here, that only satisfy the loader: nothing in the bindings is ever called) and read for their
  classes, enum members, properties (and which are writable) and pybind signatures (argument names, defaults,
  overloads). Every TensorRT call in deploy/targets/tensorrt is checked against both, version guards honoured.
- the 10.13 stubs (tensorrt-stubs), through mypy and a name check (deprecated in 10.x = removed in 11).

What no signature can show is not claimed: a call with its arguments in the wrong order but the right count and
types (e.g. `set_shape(name, max, opt, min)`) passes; only a real build on a GPU (`pytest -m gpu`) catches it.

Needs the wheels in .cache/trt-contract (`.ci/fetch-trt-contract` downloads them; CI always does) and gcc.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.trt_contract import (
    BINDINGS_WHEEL,
    REAL_BINDINGS,
    STUBS_WHEEL,
    CallCheck,
    check_against_api,
    extract_stubs,
    find_wheel,
    load_real_api,
    so_strings,
    so_suffixes,
    stub_index,
    usage_in,
    violations,
)

ROOT = Path(__file__).resolve().parent.parent
WHEELS = Path(os.environ.get("DEPLOY_TRT_CONTRACT", ROOT / ".cache" / "trt-contract"))
# The modules that drive TensorRT objects (gpu.py speaks NVML, latency.py only our runner and the CUDA facade).
TRT_MODULES = [ROOT / "deploy" / "targets" / "tensorrt" / name for name in ("api.py", "build.py", "runtime.py")]

bindings = find_wheel(WHEELS, BINDINGS_WHEEL)
stubs = find_wheel(WHEELS, STUBS_WHEEL)
pytestmark = pytest.mark.skipif(
    bindings is None or stubs is None,
    reason=f"TensorRT contract wheels not in {WHEELS}: run .ci/fetch-trt-contract (needs PyPI)",
)


@pytest.fixture(scope="module")
def contract():  # type: ignore[no-untyped-def]
    assert bindings is not None and stubs is not None
    strings = so_strings(bindings)
    return stub_index(stubs), strings, so_suffixes(strings)


def test_every_tensorrt_name_our_code_uses_exists_and_is_not_deprecated(contract) -> None:  # type: ignore[no-untyped-def]
    index, strings, suffixes = contract
    usage = usage_in({path.name: path.read_text() for path in TRT_MODULES})
    # The contract must see the API we rely on, or it would pass vacuously.
    assert ("NetworkDefinitionCreationFlag", "STRONGLY_TYPED") in usage.qualified
    assert {"execute_async_v3", "set_tensor_address", "set_input_shape", "build_serialized_network"} <= usage.attributes
    assert violations(usage, index, strings, suffixes) == []


def test_the_contract_catches_removed_and_misspelled_names(contract) -> None:  # type: ignore[no-untyped-def]
    index, strings, suffixes = contract
    bad = """
def old_style(trt, builder, config, context, stream):
    config.set_flag(trt.BuilderFlag.INT8)
    config.set_flag(trt.BuilderFlag.FP16)
    calibrator = trt.IInt8EntropyCalibrator2()
    context.execute_async_v4(stream)
    trt.BuilderFlag.FASTEST
"""
    problems = violations(usage_in({"bad.py": bad}), index, strings, suffixes)
    text = "\n".join(problems)
    assert "trt.BuilderFlag.INT8: deprecated" in text
    assert "trt.BuilderFlag.FP16: deprecated" in text
    assert "trt.IInt8EntropyCalibrator2: not in TensorRT 11.4's bindings" in text
    assert ".execute_async_v4: no TensorRT 10.13 class has it" in text
    assert "trt.BuilderFlag.FASTEST: BuilderFlag has no FASTEST" in text


def test_the_bindings_really_are_tensorrt_11(contract) -> None:  # type: ignore[no-untyped-def]
    _, strings, _ = contract
    assert "execute_async_v3" in strings and "STRONGLY_TYPED" in strings
    assert "IInt8EntropyCalibrator2" not in strings  # the calibrators are gone in 11


def test_tensorrt_modules_type_check_against_the_stubs(tmp_path: Path) -> None:
    """mypy over deploy/targets/tensorrt with the (repaired) 10.13 stubs: signatures and types, not just names."""
    assert stubs is not None
    stub_path = extract_stubs(stubs, tmp_path / "stubs")
    config = tmp_path / "mypy.ini"
    # The generated stubs have errors of their own; follow them for types, report only ours.
    config.write_text(
        "[mypy]\npython_version = 3.11\nignore_missing_imports = True\n"
        "[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]\nignore_errors = True\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental",
         str(ROOT / "deploy" / "targets" / "tensorrt")],
        env={**os.environ, "MYPYPATH": str(stub_path)},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# --- the real 11.4 and 10.16 bindings ------------------------------------------------------------------------------

real_wheels = {version: find_wheel(WHEELS, pattern) for version, pattern in REAL_BINDINGS.items()}
needs_real = pytest.mark.skipif(
    None in real_wheels.values() or shutil.which("gcc") is None,
    reason=f"needs gcc and the bindings wheels in {WHEELS} (run .ci/fetch-trt-contract)",
)


@pytest.fixture(scope="module")
def real_apis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    apis = {}
    for version, wheel in real_wheels.items():
        assert wheel is not None
        apis[version] = load_real_api(wheel, tmp_path_factory.mktemp(f"trt-{version}"))
    return apis


def _our_sources(**edits: tuple[str, str]) -> dict[str, str]:
    """The TensorRT modules' text; `edits` seeds a mistake into an in-memory COPY ({file stem: (old, new)})."""
    sources = {path.name: path.read_text() for path in TRT_MODULES}
    for stem, (old, new) in edits.items():
        name = f"{stem}.py"
        assert sources[name].count(old) == 1, f"seed {old!r} not found once in {name}"
        sources[name] = sources[name].replace(old, new)
    return sources


def _check(apis: dict[str, dict[str, Any]], sources: dict[str, str]) -> dict[str, CallCheck]:
    return {version: check_against_api(sources, api, version) for version, api in apis.items()}


@needs_real
def test_the_real_bindings_load_with_the_inert_stand_in(real_apis: dict[str, dict[str, Any]]) -> None:
    for version, api in real_apis.items():
        classes = api["classes"]
        assert {"Builder", "IBuilderConfig", "ICudaEngine", "IExecutionContext", "Runtime"} <= set(classes), version
        assert (
            "set_timing_cache(self: tensorrt.IBuilderConfig, cache: tensorrt.ITimingCache, ignore_mismatch: bool)"
            in (classes["IBuilderConfig"]["members"]["set_timing_cache"]["doc"])
        )
    assert "INT8" not in real_apis["11.4"]["classes"]["BuilderFlag"]["enum"]  # removed in 11
    assert "INT8" in real_apis["10.16"]["classes"]["BuilderFlag"]["enum"]


@needs_real
def test_every_tensorrt_call_matches_the_real_11_4_and_10_16_signatures(real_apis: dict[str, dict[str, Any]]) -> None:
    results = _check(real_apis, _our_sources())
    for version, check in results.items():
        assert check.problems == [], version
        # The check must have seen the calls that matter with their receivers' types, or it would pass vacuously.
        assert {
            ("IBuilderConfig", "set_timing_cache"), ("IBuilderConfig", "create_timing_cache"),
            ("IBuilderConfig", "get_timing_cache"), ("ITimingCache", "serialize"),
            ("IOptimizationProfile", "set_shape"), ("Builder", "build_serialized_network"),
            ("IExecutionContext", "execute_async_v3"), ("IExecutionContext", "set_tensor_address"),
            ("IExecutionContext", "set_input_shape"), ("ICudaEngine", "get_tensor_profile_shape"),
            ("Runtime", "engine_host_code_allowed"), ("Logger", "min_severity"), ("Logger", "__init__"),
            ("EngineInspector", "execution_context"), ("IBuilderConfig", "builder_optimization_level"),
        } <= check.resolved, version  # fmt: skip


@needs_real
def test_the_host_dtype_table_names_exactly_the_real_data_types(real_apis: dict[str, dict[str, Any]]) -> None:
    from deploy.targets.tensorrt.api import DTYPES

    for version, api in real_apis.items():
        assert set(DTYPES) == set(api["classes"]["DataType"]["enum"]), version


# Each seed: a mistake put into a copy of our code, and what the check must say about it, per version (None: that
# version accepts it, as the real API does).
SEEDS: dict[str, tuple[dict[str, tuple[str, str]], dict[str, str | None]]] = {
    "wrong keyword name": (
        {"build": ("set_timing_cache(cache, False)", "set_timing_cache(cache, ignore_mismatches=False)")},
        {"11.4": "has no keyword 'ignore_mismatches'", "10.16": "has no keyword 'ignore_mismatches'"},
    ),
    "missing argument": (
        {"runtime": ("execute_async_v3(self.stream.handle)", "execute_async_v3()")},
        {"11.4": "misses stream_handle", "10.16": "misses stream_handle"},
    ),
    "one argument too many": (
        {"build": ("builder.create_optimization_profile()", "builder.create_optimization_profile(0)")},
        {"11.4": "takes at most 0 positional", "10.16": "takes at most 0 positional"},
    ),
    "constructor arity": (
        {"build": ("trt.OnnxParser(network, trt_logger)", "trt.OnnxParser(network)")},
        {"11.4": "misses logger", "10.16": "misses logger"},
    ),
    "removed enum member used unguarded": (
        {"build": ("    if config.version_compatible:\n", "    builder_config.set_flag(trt.BuilderFlag.INT8)\n"
                   "    if config.version_compatible:\n")},
        {"11.4": "trt.BuilderFlag.INT8: BuilderFlag has no INT8", "10.16": None},
    ),
    "removed enum member behind a version guard": (
        {"build": ("    if config.version_compatible:\n", "    if about.major == 10:\n"
                   "        builder_config.set_flag(trt.BuilderFlag.INT8)\n    if config.version_compatible:\n")},
        {"11.4": None, "10.16": None},
    ),
    "misspelled property": (
        {"build": ("builder_config.builder_optimization_level =", "builder_config.builder_optimisation_level =")},
        {"11.4": "has no builder_optimisation_level", "10.16": "has no builder_optimisation_level"},
    ),
    "write to a read-only property": (
        {"build": ("        cache = builder_config.get_timing_cache()\n",
                   "        builder_config.num_optimization_profiles = 1\n"
                   "        cache = builder_config.get_timing_cache()\n")},
        {"11.4": "num_optimization_profiles = ...: not a writable property",
         "10.16": "num_optimization_profiles = ...: not a writable property"},
    ),
    "method that does not exist": (
        {"runtime": ("execute_async_v3(self.stream.handle)", "execute_async_v4(self.stream.handle)")},
        {"11.4": "IExecutionContext has no execute_async_v4", "10.16": "IExecutionContext has no execute_async_v4"},
    ),
    # Not catchable by any signature: right count, right types, wrong order. Listed so the limit stays explicit.
    "profile shapes in the wrong order (NOT catchable)": (
        {"build": ("dims((profile.min, *chw)), dims((profile.opt, *chw)), dims((profile.max, *chw))",
                   "dims((profile.max, *chw)), dims((profile.opt, *chw)), dims((profile.min, *chw))")},
        {"11.4": None, "10.16": None},
    ),
}  # fmt: skip


@needs_real
@pytest.mark.parametrize("seed", list(SEEDS))
def test_the_real_bindings_check_catches_seeded_mistakes(real_apis: dict[str, dict[str, Any]], seed: str) -> None:
    edits, expected = SEEDS[seed]
    results = _check(real_apis, _our_sources(**edits))
    for version, wanted in expected.items():
        problems = "\n".join(results[version].problems)
        if wanted is None:
            assert problems == "", (version, problems)
        else:
            assert wanted in problems, (version, problems)


# --- cuda-python: the runtime API calls deploy/cuda.py makes ------------------------------------------------------


def test_cuda_python_calls_match_the_installed_cuda_bindings() -> None:
    """Every `self.call("cudaX", ...)` in deploy/cuda.py names a function of cuda.bindings.runtime and passes as
    many arguments as its signature line lists (cuda-python returns errors; it does not raise on a bad count)."""
    runtime = pytest.importorskip("cuda.bindings.runtime")
    tree = ast.parse((ROOT / "deploy" / "cuda.py").read_text())
    calls = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call"
        and node.args and isinstance(node.args[0], ast.Constant)
    ]  # fmt: skip
    assert len(calls) >= 12
    for node in calls:
        name = node.args[0].value
        function = getattr(runtime, name, None)
        assert function is not None, f"cuda.bindings.runtime has no {name}"
        signature = (function.__doc__ or "").splitlines()[0]
        inside = signature[signature.index("(") + 1 : signature.rindex(")")]
        wanted = len([p for p in inside.split(",") if p.strip()])
        assert len(node.args) - 1 == wanted, f"{name}: {signature}"
