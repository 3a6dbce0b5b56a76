"""ONNX Runtime's x86 U8S8 integer kernels: when they saturate, and what keeps them exact.

Without VNNI or AMX, ONNX Runtime multiplies u8 activations by s8 weights with VPMADDUBSW, which adds each pair of
adjacent products in a *saturating* int16 before widening to int32. A pair saturates when
255 · |w₀ + w₁| > 32767, i.e. only if some weight exceeds 64 in magnitude. Weights quantized to [-64, 64]
(`reduce_range`, 7-bit) therefore give the same sums as the int32 arithmetic of VNNI/AMX on every x86 CPU; for
full-range weights on such a CPU the session option `session.x64quantprecision=1` makes ONNX Runtime convert the
weights to u8 and use its exact (slower) U8U8 kernels.

The emulation below is the int16 pair sum in numpy, so the guarantee is tested on any machine, not only on one
that has the instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

REDUCED_WEIGHT_LIMIT = 64  # onnxruntime.quantization's reduce_range range for int8: [-64, 64]
INT16_MAX = np.iinfo(np.int16).max
INT16_MIN = np.iinfo(np.int16).min
EXACT_SESSION_CONFIG = {"session.x64quantprecision": "1"}


def saturating_weights(model: onnx.ModelProto) -> tuple[str, ...]:
    """Int8 weight initializers (2-D or more: QDQ's DequantizeLinear inputs, or QLinearConv/MatMulInteger weights
    of the QOperator format) whose magnitudes can overflow an int16 pair sum."""
    risky = []
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.INT8 or len(init.dims) < 2:
            continue
        if np.abs(numpy_helper.to_array(init).astype(np.int16)).max() > REDUCED_WEIGHT_LIMIT:
            risky.append(init.name)
    return tuple(risky)


@dataclass(frozen=True)
class PairSums:
    """The int16-pair-sum result next to the exact int32 one, for one u8 × s8 matrix product."""

    emulated: np.ndarray  # int32 (P, O): int16-pair-sum arithmetic of AVX2/AVX-512 (no VNNI) U8S8 kernels
    exact: np.ndarray  # int32 (P, O): what VNNI/AMX return
    saturated_pairs: int  # pair sums that left the int16 range

    @property
    def identical(self) -> bool:
        return self.saturated_pairs == 0 and np.array_equal(self.emulated, self.exact)


def pair_sums(activations: np.ndarray, weights: np.ndarray, *, chunk: int = 1 << 24) -> PairSums:
    """Emulate VPMADDUBSW + VPMADDWD: u8 (P, K) · s8 (K, O), adjacent K pairs summed in saturating int16.

    Pairs are adjacent in the K order the caller lays out; ONNX Runtime's channels-last convolution pairs adjacent
    input channels, so for C > 1 the saturated values can differ from a real kernel's, while the [-64, 64] bound
    holds for any pairing. `chunk` bounds the int32 scratch (elements) so large layers fit in memory.
    """
    if activations.dtype != np.uint8 or weights.dtype != np.int8:
        raise TypeError(f"need uint8 activations and int8 weights, got {activations.dtype} and {weights.dtype}")
    a = activations.astype(np.int32)
    w = weights.astype(np.int32)
    if a.shape[1] % 2:  # the kernel pads K with a zero to a whole pair
        a = np.pad(a, ((0, 0), (0, 1)))
        w = np.pad(w, ((0, 1), (0, 0)))
    rows, depth = a.shape
    outputs = w.shape[1]
    emulated = np.zeros((rows, outputs), dtype=np.int32)
    saturated = 0
    step = max(1, chunk // max(1, depth * outputs // 2))
    for start in range(0, rows, step):
        block = a[start : start + step]
        pairs = block[:, 0::2, None] * w[None, 0::2, :] + block[:, 1::2, None] * w[None, 1::2, :]
        saturated += int(np.count_nonzero((pairs > INT16_MAX) | (pairs < INT16_MIN)))
        emulated[start : start + step] = np.clip(pairs, INT16_MIN, INT16_MAX).sum(axis=1, dtype=np.int32)
    return PairSums(emulated, a @ w, saturated)


def widen_int8_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with every int8 weight re-scaled to [-127, 127] per output channel: the same function, full 8-bit
    weights, i.e. what quantizing without reduce_range ships. For tests and benchmarks of the kernels; the values
    are requantized from the 7-bit ones, so use it to study the kernels, not 8-bit accuracy.

    The int32 bias is re-scaled with its weight: ONNX Runtime's fused integer kernels read it in units of
    input scale × weight scale, whatever scale its own DequantizeLinear names.
    """
    widened = onnx.ModelProto()
    widened.CopyFrom(model)
    initializers = {init.name: init for init in widened.graph.initializer}
    dequantizers = {node.output[0]: node for node in widened.graph.node if node.op_type == "DequantizeLinear"}
    for node in widened.graph.node:
        weight_dq = dequantizers.get(node.input[1]) if node.op_type in ("Conv", "Gemm", "MatMul") else None
        weight = initializers.get(weight_dq.input[0]) if weight_dq is not None else None
        if weight_dq is None or weight is None or weight.data_type != onnx.TensorProto.INT8 or len(weight.dims) < 2:
            continue
        values = numpy_helper.to_array(weight).astype(np.float64)
        peak = np.maximum(np.abs(values).reshape(values.shape[0], -1).max(axis=1), 1.0)
        factor = 127.0 / peak
        wide = np.clip(np.round(values * factor.reshape(-1, *[1] * (values.ndim - 1))), -127, 127).astype(np.int8)
        _replace(initializers, weight.name, wide)
        _replace(initializers, weight_dq.input[1], numpy_helper.to_array(initializers[weight_dq.input[1]]) / factor)
        bias_dq = dequantizers.get(node.input[2]) if len(node.input) > 2 else None
        if bias_dq is not None and bias_dq.input[0] in initializers:
            bias = numpy_helper.to_array(initializers[bias_dq.input[0]]).astype(np.float64)
            _replace(initializers, bias_dq.input[0], np.round(bias * factor).astype(np.int32))
            _replace(initializers, bias_dq.input[1], numpy_helper.to_array(initializers[bias_dq.input[1]]) / factor)
    return widened


def _replace(initializers: dict[str, onnx.TensorProto], name: str, value: np.ndarray) -> None:
    dtype = numpy_helper.to_array(initializers[name]).dtype
    initializers[name].CopyFrom(numpy_helper.from_array(value.astype(dtype), name))
