"""CPU INT8 is exact on every x86 CPU: the int16 pair sums of non-VNNI kernels, emulated on real layers.

Nothing here depends on the CPU the tests run on: the saturating arithmetic is emulated in numpy and the CPU the
runner adapts to is injected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from deploy.builder import BuildConfig, BuiltArtifact, build
from deploy.environment import CpuIsa, level_from_flags
from deploy.exporter import ExportResult
from deploy.harness.heldout import held_out_set
from deploy.precision.calibration import CalibrationConfig
from deploy.targets.onnxruntime.runner import OrtRunner
from deploy.targets.onnxruntime.u8s8 import (
    EXACT_SESSION_CONFIG,
    REDUCED_WEIGHT_LIMIT,
    pair_sums,
    saturating_weights,
    widen_int8_weights,
)

AVX2 = CpuIsa("avx2", "injected")
VNNI = CpuIsa("avx512-vnni", "injected")


@pytest.fixture(scope="module")
def lenet5_cpu_int8(lenet5_export: ExportResult, tmp_path_factory: pytest.TempPathFactory) -> BuiltArtifact:
    root = tmp_path_factory.mktemp("u8s8")
    config = BuildConfig(
        sources=(str(lenet5_export.onnx_path),),
        precisions=("int8",),
        engines_dir=root / "engines",
        calibration=CalibrationConfig(directory=root / "calibration"),
        method="max",
        targets=("onnxruntime",),
        verify=None,
    )
    return build(config).artifacts[0]


def test_pair_sum_emulation_saturates_like_vpmaddubsw() -> None:
    activations = np.array([[255, 255, 3, 1]], dtype=np.uint8)
    weights = np.array([[127], [127], [-2], [5]], dtype=np.int8)
    result = pair_sums(activations, weights)
    assert result.exact[0, 0] == 255 * 254 - 6 + 5
    assert result.emulated[0, 0] == 32767 - 6 + 5 and result.saturated_pairs == 1 and not result.identical
    bounded = pair_sums(np.full((3, 6), 255, np.uint8), np.full((6, 2), -REDUCED_WEIGHT_LIMIT, np.int8))
    assert bounded.identical  # 255·(−64−64) = −32640 still fits


@pytest.mark.parametrize(
    ("flags", "level", "exact"),
    [
        ({"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_int8"}, "amx", True),
        ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "avx512-vnni", True),
        ({"avx2", "avx_vnni"}, "avx-vnni", True),
        ({"avx2", "avx512f", "avx512bw"}, "avx512", False),
        ({"avx2", "fma", "sse4_2"}, "avx2", False),  # AMD EPYC Zen 3
        ({"sse4_2"}, "x86-64", False),
    ],
)
def test_isa_level_and_whether_u8s8_is_exact(flags: set[str], level: str, exact: bool) -> None:
    isa = CpuIsa(level_from_flags(flags), "injected")
    assert isa.level == level and isa.exact_u8s8 is exact


def _u8_activations(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every QuantizeLinear output (the u8 the integer kernels read), from ONNX Runtime's reference operators."""
    quantized = [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    exposed.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, None) for name in quantized)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no integer kernels at all
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip(quantized, session.run(quantized, feed), strict=True))


def _integer_products(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(layer, u8 activations (P, K), s8 weights (K, O)) for every quantized Conv and Gemm, as the kernels see them."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    activations = _u8_activations(model, feed)
    products = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or node.input[0] not in producer:
            continue
        data_dq, weight_dq = producer[node.input[0]], producer.get(node.input[1])
        if data_dq.op_type != "DequantizeLinear" or weight_dq is None or weight_dq.input[0] not in inits:
            continue
        x, zero = activations[data_dq.input[0]], int(inits[data_dq.input[2]])
        w = inits[weight_dq.input[0]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            assert attrs.get("group", 1) == 1
            patches = _im2col(x, w.shape[2:], attrs, zero)
            products.append((node.name, patches, w.reshape(w.shape[0], -1).T))
        else:
            products.append((node.name, x.reshape(x.shape[0], -1), w.T if attrs.get("transB", 0) else w))
    return products


def _im2col(x: np.ndarray, kernel: tuple[int, ...], attrs: dict[str, object], zero: int) -> np.ndarray:
    """Rows of (C·kh·kw) u8 inputs per output position, padded with the activation zero point as the kernel does."""
    pads = list(attrs.get("pads", [0, 0, 0, 0]))  # type: ignore[call-overload]
    stride_h, stride_w = attrs.get("strides", [1, 1])  # type: ignore[misc]
    padded = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=zero)
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel, axis=(2, 3))[:, :, ::stride_h, ::stride_w]
    n, c, oh, ow, kh, kw = windows.shape
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw))


def _held_out_feed(artifact: BuiltArtifact, count: int) -> dict[str, np.ndarray]:
    held = held_out_set(artifact.sidecar, images=None, count=count)
    return {artifact.sidecar.inputs[0].name: held.arrays}


def test_shipped_lenet5_weights_never_saturate_on_real_digits(lenet5_cpu_int8: BuiltArtifact) -> None:
    model = onnx.load(lenet5_cpu_int8.path)
    assert lenet5_cpu_int8.sidecar.precision.weight_bits == 7  # type: ignore[union-attr]
    assert not saturating_weights(model)
    feed = _held_out_feed(lenet5_cpu_int8, 64)
    products = _integer_products(model, feed)
    assert len(products) >= 4  # 2 conv + 3 gemm
    for layer, activations, weights in products:
        assert np.abs(weights.astype(np.int16)).max() <= REDUCED_WEIGHT_LIMIT, layer
        assert pair_sums(activations, weights).identical, layer
    # The emulation can fail: the same layers with full-range weights saturate on these very digits.
    wide = _integer_products(widen_int8_weights(model), feed)
    assert sum(pair_sums(a, w).saturated_pairs for _, a, w in wide) > 0


def test_runner_picks_exact_kernels_only_where_full_range_weights_meet_a_saturating_cpu(
    lenet5_cpu_int8: BuiltArtifact, tmp_path: Path
) -> None:
    wide_path = tmp_path / "lenet5.full-range.onnx"
    onnx.save(widen_int8_weights(onnx.load(lenet5_cpu_int8.path)), wide_path)
    key = next(iter(EXACT_SESSION_CONFIG))

    def configured(path: Path, isa: CpuIsa) -> bool:
        with OrtRunner(path, isa=isa) as runner:
            options = runner.session.get_session_options()
            try:
                entry = options.get_session_config_entry(key)
            except RuntimeError:  # ONNX Runtime raises for a key that was never set
                entry = None
            assert runner.exact_int8 is (entry == "1")
            return runner.exact_int8

    assert configured(wide_path, AVX2)  # an artifact from a VNNI machine, run on an AVX2-only one
    assert not configured(wide_path, VNNI)
    assert not configured(lenet5_cpu_int8.path, AVX2)  # 7-bit weights are exact everywhere: fast kernels kept
