"""The TensorRT code is right against the real API it cannot run here (no TensorRT libraries, no GPU).

Needs the two wheels in .cache/trt-contract (`.ci/fetch-trt-contract` downloads them; CI always does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.trt_contract import (
    BINDINGS_WHEEL,
    STUBS_WHEEL,
    extract_stubs,
    find_wheel,
    so_strings,
    so_suffixes,
    stub_index,
    usage_in,
    violations,
)

ROOT = Path(__file__).resolve().parent.parent
WHEELS = Path(os.environ.get("DEPLOY_TRT_CONTRACT", ROOT / ".cache" / "trt-contract"))
# The modules that drive TensorRT objects (gpu.py speaks NVML, latency.py only our runner and pycuda events).
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
