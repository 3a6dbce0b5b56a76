"""ONNX graph simplification (onnxsim by default, onnxslim as the alternative), as a pure proto → proto step."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

import onnx

from deploy.errors import ExportFailed, first_line

log = logging.getLogger(__name__)

Simplifier = Literal["onnxsim", "onnxslim", "none"]
# The exporter's record of the PyTorch module each node came from, which both simplifiers drop; `deploy diagnose`
# names layers by it. (Its stack traces and FX node text are left behind: kilobytes per node.)
KEPT_NODE_METADATA = ("pkg.torch.onnx.name_scopes",)
SIMPLIFIERS: tuple[Simplifier, ...] = ("onnxsim", "onnxslim", "none")


@dataclass(frozen=True)
class SimplifyResult:
    tool: Simplifier
    version: str | None
    nodes_before: int
    nodes_after: int


def simplify(model: onnx.ModelProto, tool: Simplifier) -> tuple[onnx.ModelProto, SimplifyResult]:
    before = len(model.graph.node)
    if tool == "none":
        return model, SimplifyResult("none", None, before, before)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            simplified = _run(model, tool)
    except ExportFailed:
        raise
    except Exception as exc:  # both simplifiers raise bare RuntimeErrors from native code
        raise ExportFailed(
            f"{tool} failed to simplify the graph: {first_line(exc)}",
            hint="retry with --simplifier onnxslim or --simplifier none",
        ) from exc
    log.debug("%s output:\n%s", tool, captured.getvalue())
    _carry_node_metadata(model, simplified)
    version = metadata.version(tool)
    return simplified, SimplifyResult(tool, version, before, len(simplified.graph.node))


def _run(model: onnx.ModelProto, tool: Simplifier) -> onnx.ModelProto:
    if tool == "onnxsim":
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise ExportFailed(
                "onnxsim's own check of the simplified graph failed",
                hint="retry with --simplifier onnxslim or --simplifier none",
            )
        return simplified
    import onnxslim

    return onnxslim.slim(model)


def _carry_node_metadata(source: onnx.ModelProto, simplified: onnx.ModelProto) -> None:
    """Copy KEPT_NODE_METADATA onto the simplified graph's nodes, matched by node name (both tools keep names)."""
    kept = {
        node.name: [(p.key, p.value) for p in node.metadata_props if p.key in KEPT_NODE_METADATA]
        for node in source.graph.node
        if node.name
    }
    for node in simplified.graph.node:
        present = {p.key for p in node.metadata_props}
        for key, value in kept.get(node.name, ()):
            if key not in present:
                node.metadata_props.add(key=key, value=value)
