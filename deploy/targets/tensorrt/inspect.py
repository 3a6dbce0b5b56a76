"""Precision truth from the built engine: which layers TensorRT actually runs in INT8, FP16 or FP32.

The engine inspector's DETAILED JSON lists every layer with the formats of its inputs and outputs. A layer counts as
INT8 when it reads an Int8 tensor, FP16 when it reads Half/BF16/FP8 (and no Int8), FP32 otherwise; layers with no
tensor inputs of their own (constants), formats reported as N/A, and data-movement layers (Reformat, standalone
Quantize/Dequantize: they convert between precisions and compute nothing) are not counted.

TensorRT 10 writes one "Format/Datatype" string per tensor. NVIDIA documents one change to this JSON for 11.x (the
top-level "Bindings" list became "I/O Tensors"), so the tensor's fields are not assumed: every string field of an
input tensor but its name is read, which keeps the count right whatever a later version calls them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

# An INT8/FP16 build where more than this share of counted layers run in FP32 is called out loudly.
MOSTLY_FP32 = 0.5


@dataclass(frozen=True)
class LayerPrecision:
    int8: int
    fp16: int
    fp32: int
    other: int

    @property
    def counted(self) -> int:
        return self.int8 + self.fp16 + self.fp32

    def mostly_fp32(self) -> bool:
        return self.counted > 0 and self.fp32 / self.counted > MOSTLY_FP32


def layer_precision(engine_information: str) -> LayerPrecision:
    """Count layers by precision from `IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`."""
    data = json.loads(engine_information)
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    counts: Counter[str] = Counter()
    for layer in layers:
        counts[_classify(layer)] += 1
    return LayerPrecision(counts["int8"], counts["fp16"], counts["fp32"], counts["other"])


# LayerType values of layers that only move or convert data. Counting them made small INT8 models (a few convs
# between FP32 reformats at the network's edges) look "mostly FP32".
DATA_MOVEMENT = frozenset({"Reformat", "Quantize", "Dequantize", "NoOp"})
_NOT_FORMATS = frozenset({"Name", "Location", "Dimensions"})


def _classify(layer: Any) -> str:
    if not isinstance(layer, dict):  # LAYER_NAMES_ONLY verbosity gives bare names: nothing to classify
        return "other"
    kind = str(layer.get("LayerType", ""))
    if kind in DATA_MOVEMENT or str(layer.get("Name", "")).startswith("Reformatting CopyNode"):
        return "other"
    formats = " ".join(
        str(value)
        for tensor in layer.get("Inputs", [])
        if isinstance(tensor, dict)
        for key, value in tensor.items()
        if key not in _NOT_FORMATS and isinstance(value, str)
    )
    lowered = formats.lower()
    if not lowered.strip() or "n/a" in lowered:
        return "other"
    if "int8" in lowered:
        return "int8"
    if "half" in lowered or "fp16" in lowered or "bf16" in lowered or "fp8" in lowered:
        return "fp16"
    if "float" in lowered or "fp32" in lowered:
        return "fp32"
    return "other"
