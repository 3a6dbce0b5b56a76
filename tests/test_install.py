"""The install itself: one onnxruntime distribution, ModelOpt importable lazily, no heavy import at startup."""

from __future__ import annotations

from importlib import metadata

import pytest

from deploy.errors import MissingDependency
from deploy.lazy import require


def test_exactly_one_onnxruntime_distribution_is_installed() -> None:
    # ModelOpt's [onnx] extra wants onnxruntime-gpu; a second distribution would shadow the first's files.
    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    runtimes = sorted(n for n in names if n in {"onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"})
    assert len(runtimes) == 1, runtimes


def test_onnx_line_is_the_one_modelopt_requires() -> None:
    assert metadata.version("onnx").startswith("1.21.")
    assert metadata.version("nvidia-modelopt").startswith("0.47.")


def test_missing_optional_dependency_names_how_to_install_it() -> None:
    with pytest.raises(MissingDependency) as info:
        require("tensorrt_not_a_real_module_for_this_test", purpose="a test")
    assert "pip install" in (info.value.hint or "")
