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
