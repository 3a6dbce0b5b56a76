"""INT8 under an accuracy budget: keep the most sensitive layers out of INT8, one at a time, until the drop holds.

Sensitivity is measured by *leaving one layer out* of a fully quantized graph (its Q/DQ removed, so it computes in
high precision) and seeing how much closer the logits come to FP32. Leaving out rather than quantizing alone,
because the question answered is "which exclusion buys the most back", and because errors compound: a layer
quantized alone next to FP32 neighbours hides the interactions the deployed graph has. The logits' relative error
(not top-1) ranks them: on a few hundred images top-1 ties for most layers.

Excluding layers is a graph edit on the calibrated Q/DQ ONNX (no recalibration): the excluded node's inputs are
rewired from each DequantizeLinear to the float tensor its QuantizeLinear read, and pairs nothing reads any more are
dropped. The result is an ordinary typed ONNX, which TensorRT builds strongly typed and ONNX Runtime runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx

from deploy.environment import usable_cores
from deploy.errors import ParityError
from deploy.precision.exposed import batches, plain_session
from deploy.precision.typing_info import quantized_nodes
from deploy.targets.onnxruntime.runner import OrtRunner

Metric = Literal["accuracy", "agreement"]
# Images the leave-one-out pass runs per layer (the greedy steps judge on every held-out image).
SENSITIVITY_IMAGES = 64
EVAL_BATCH = 16
LATENCY_RUNS = 20


@dataclass(frozen=True)
class Sensitivity:
    node: str
    output_error: float  # logits' relative error to FP32 with only this layer left out of INT8
    gain: float  # how much of the full INT8 graph's error that removes


@dataclass(frozen=True)
class BudgetStep:
    step: int
    method: str
    excluded: tuple[str, ...]
    score: float  # accuracy on labelled images, else top-1 agreement with the FP32 ONNX
    drop: float  # points below FP32's score
    latency_ms: float  # median, batch 1, ONNX Runtime on this CPU


@dataclass(frozen=True)
class BudgetResult:
    model: onnx.ModelProto
    metric: Metric
    max_drop: float  # points
    fp32_score: float
    fp32_latency_ms: float
    method: str  # the calibration method of the chosen model
    steps: tuple[BudgetStep, ...]
    sensitivities: Mapping[str, tuple[Sensitivity, ...]]  # per calibration method, most sensitive first
    chosen: BudgetStep
    quantized_layers: int
    seconds: float

    @property
    def within_budget(self) -> bool:
        return self.chosen.drop <= self.max_drop + 1e-9


# Ops without weights that carry a tensor to the next layer: excluding a layer also takes the rounding off its input
# path through them. ONNX Runtime's QDQ quantizes a Conv's output before its Relu and again after, so an outlier
# channel is crushed upstream of the Relu that feeds the sensitive layer, not only at its own input.
PASS_THROUGH = frozenset(
    {"Relu", "Clip", "MaxPool", "AveragePool", "Reshape", "Flatten", "Transpose", "Identity", "Squeeze", "Unsqueeze"}
)


def exclude_from_int8(model: onnx.ModelProto, nodes: set[str], fp32: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """A copy of `model` whose `nodes` read float tensors instead of Q/DQ-rounded ones, back along their input path
    through PASS_THROUGH ops to the layer that produced it. Weights stored as int8 (ONNX Runtime's QDQ keeps no float
    copy) are taken from `fp32`, the source graph, by node name and input position."""
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    graph = edited.graph
    producers = {out: node for node in graph.node for out in node.output}
    float_inputs = {node.name: list(node.input) for node in fp32.graph.node} if fp32 is not None else {}
    float_weights = {init.name: init for init in fp32.graph.initializer} if fp32 is not None else {}
    present = {init.name for init in graph.initializer}
    pending = [node for node in graph.node if node.name in nodes]
    seen: set[str] = set()
    while pending:
        node = pending.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        for index, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is not None and dq.op_type == "DequantizeLinear":
                q = producers.get(dq.input[0])
                if q is None or q.op_type != "QuantizeLinear":  # a stored int8 weight: its float original
                    original = float_inputs.get(node.name, [])
                    weight = original[index] if index < len(original) else None
                    if weight in float_weights and weight != name:  # an int32 bias keeps its name: exact enough
                        if weight not in present:
                            graph.initializer.append(float_weights[weight])
                            present.add(weight)
                        node.input[index] = weight
                    continue
                node.input[index] = q.input[0]
                name = q.input[0]
            upstream = producers.get(name)
            if upstream is not None and upstream.op_type in PASS_THROUGH:
                pending.append(upstream)
    _drop_unread(graph)
    return edited


def _drop_unread(graph: onnx.GraphProto) -> None:
    outputs = {o.name for o in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | outputs
        dead = [
            n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.output[0] not in read
        ]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)


class _Evaluator:
    def __init__(self, images: np.ndarray, labels: np.ndarray | None, input_name: str, fp32: onnx.ModelProto) -> None:
        self.images = images
        self.input_name = input_name
        self.fp32_logits = self.logits(fp32, images)
        self.metric: Metric = "accuracy" if labels is not None else "agreement"
        self.truth = labels if labels is not None else self.fp32_logits.argmax(axis=1)

    def logits(self, model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
        """Scored on a plain session (deploy.precision.exposed): the same numbers on every CPU."""
        session = plain_session(model, failure="ONNX Runtime cannot run an INT8 candidate", threads=usable_cores())
        name = session.get_outputs()[0].name
        chunks = [
            session.run([name], {self.input_name: chunk})[0][:real]
            for chunk, real in batches(session, images, batch=EVAL_BATCH)
        ]
        return np.concatenate(chunks).astype(np.float64)

    def score(self, model: onnx.ModelProto) -> float:
        return float(np.mean(self.logits(model, self.images).argmax(axis=1) == self.truth))

    def output_error(self, model: onnx.ModelProto, count: int) -> float:
        got = self.logits(model, self.images[:count])
        want = self.fp32_logits[:count]
        return float(np.linalg.norm(got - want)) / max(float(np.linalg.norm(want)), 1e-12)

    def latency_ms(self, model: onnx.ModelProto) -> float:
        with OrtRunner(model.SerializeToString(), intra_op_threads=usable_cores()) as runner:
            static = runner.inputs[0].shape[0]
            batch = static if isinstance(static, int) and static > 0 else 1
            feed = {self.input_name: np.repeat(self.images[:1], batch, axis=0)}
            runner.infer(feed)  # warm-up
            times = []
            for _ in range(LATENCY_RUNS):
                start = time.perf_counter()
                runner.infer(feed)
                times.append(time.perf_counter() - start)
        return float(np.median(times) * 1000.0)


def search_budget(
    candidates: Mapping[str, onnx.ModelProto],
    fp32: onnx.ModelProto,
    *,
    images: np.ndarray,
    labels: np.ndarray | None,
    input_name: str,
    max_drop: float,
    max_excluded: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BudgetResult:
    """The fewest exclusions, over the calibration methods in `candidates` (method -> its full INT8 graph), that
    keep the score within `max_drop` points of FP32; else the best found within `max_excluded` exclusions."""
    started = time.perf_counter()
    evaluator = _Evaluator(images, labels, input_name, fp32)
    fp32_score = evaluator.score(fp32)
    fp32_latency = evaluator.latency_ms(fp32)
    steps: list[BudgetStep] = []
    sensitivities: dict[str, tuple[Sensitivity, ...]] = {}
    best: tuple[BudgetStep, onnx.ModelProto] | None = None
    layers = 0
    for method, full in candidates.items():
        quantized = quantized_nodes(full)
        layers = max(layers, len(quantized))
        limit = len(quantized) // 2 if max_excluded is None else min(max_excluded, len(quantized))
        count = min(SENSITIVITY_IMAGES, len(images))
        full_error = evaluator.output_error(full, count)
        ranked = []
        for index, node in enumerate(quantized):
            if progress is not None:
                progress(f"{method}: sensitivity of layer {index + 1}/{len(quantized)}")
            error = evaluator.output_error(exclude_from_int8(full, {node}, fp32), count)
            ranked.append(Sensitivity(node, error, full_error - error))
        ranked.sort(key=lambda s: (-s.gain, s.node))
        sensitivities[method] = tuple(ranked)
        excluded: list[str] = []
        for depth in range(limit + 1):
            if depth:
                excluded.append(ranked[depth - 1].node)
            model = exclude_from_int8(full, set(excluded), fp32) if excluded else full
            score = evaluator.score(model)
            step = BudgetStep(
                step=len(steps),
                method=method,
                excluded=tuple(excluded),
                score=score,
                drop=round(100.0 * (fp32_score - score), 6),
                latency_ms=evaluator.latency_ms(model),
            )
            steps.append(step)
            if progress is not None:
                progress(f"{method}: {len(excluded)} excluded, drop {step.drop:.2f} points")
            if best is None or _better(step, best[0], max_drop):
                best = (step, model)
            if step.drop <= max_drop:
                break
    assert best is not None, "at least one calibration method is searched"
    return BudgetResult(
        model=best[1],
        metric=evaluator.metric,
        max_drop=max_drop,
        fp32_score=fp32_score,
        fp32_latency_ms=fp32_latency,
        method=best[0].method,
        steps=tuple(steps),
        sensitivities=sensitivities,
        chosen=best[0],
        quantized_layers=layers,
        seconds=round(time.perf_counter() - started, 3),
    )


def _better(step: BudgetStep, than: BudgetStep, max_drop: float) -> bool:
    """Within budget beats over it; then fewer exclusions (more INT8), then the smaller drop."""
    inside, other_inside = step.drop <= max_drop, than.drop <= max_drop
    if inside != other_inside:
        return inside
    if inside:
        return (len(step.excluded), step.drop) < (len(than.excluded), than.drop)
    return step.drop < than.drop or (math.isclose(step.drop, than.drop) and len(step.excluded) < len(than.excluded))


class BudgetNotMet(ParityError):
    """No INT8 graph within the exclusion limit kept the score within --max-drop (exit 3, nothing written)."""

    def __init__(self, model: str, result: BudgetResult) -> None:
        best = result.chosen
        unit = "accuracy" if result.metric == "accuracy" else "top-1 agreement with FP32"
        super().__init__(
            f"{model}: INT8 within --max-drop {result.max_drop:g} points of {unit} was not reached; the best found "
            f"({best.method} calibration, {len(best.excluded)} of {result.quantized_layers} layers kept out of INT8) "
            f"loses {best.drop:.2f} points ({100 * result.fp32_score:.2f}% -> {100 * best.score:.2f}%) after "
            f"{len(result.steps)} trials in {result.seconds:.0f} s",
            hint="raise --max-drop, calibrate on images like your data with --calib-dir DIR, or build --fp16",
        )
        self.result = result
