"""What precision each compute node of a typed ONNX runs in, read from the graph after shape inference."""

from __future__ import annotations

from collections import Counter

import onnx

COMPUTE_OPS = frozenset(
    {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "LRN", "AveragePool", "MaxPool",
     "GlobalAveragePool", "Add", "Mul", "Relu", "Tanh", "Softmax", "Concat", "ReduceMean"}
)  # fmt: skip


def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        types[value.name] = value.type.tensor_type.elem_type
    for init in inferred.graph.initializer:
        types[init.name] = init.data_type
    return types


def high_precision_compute_nodes(model: onnx.ModelProto) -> tuple[str, ...]:
    """Compute nodes whose output is still FP32 in an FP16 graph (kept there by AutoCast, or never cast)."""
    types = _value_types(model)
    return tuple(
        node.name
        for node in model.graph.node
        if node.op_type in COMPUTE_OPS and node.output and types.get(node.output[0]) == onnx.TensorProto.FLOAT
    )


def initializer_types(model: onnx.ModelProto) -> Counter[str]:
    return Counter(onnx.TensorProto.DataType.Name(init.data_type) for init in model.graph.initializer)


# The layers whose INT8 kernels carry the speed-up; Q/DQ on anything else is plumbing.
MATMUL_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


def quantized_nodes(model: onnx.ModelProto) -> tuple[str, ...]:
    """Conv/Gemm/MatMul nodes whose activation input comes from a DequantizeLinear: INT8 in TensorRT."""
    dq_outputs = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    return tuple(node.name for node in model.graph.node if node.op_type in MATMUL_OPS and node.input[0] in dq_outputs)


def unquantized_compute_nodes(model: onnx.ModelProto) -> tuple[str, ...]:
    quantized = set(quantized_nodes(model))
    return tuple(node.name for node in model.graph.node if node.op_type in MATMUL_OPS and node.name not in quantized)
