"""`deploy diagnose ARTIFACT`: where an FP16 or INT8 artifact departs from its FP32 source, node by node."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from deploy.cli.output import print_json, stdout
from deploy.cli.tables import Column, print_table

if TYPE_CHECKING:
    from deploy.diagnose import Diagnosis, NodeError


def diagnose(
    artifact: Path = typer.Argument(
        ..., help="An FP16 or INT8 artifact (typed ONNX; a plan or IR: the ONNX it came from)."
    ),
    reference: Path | None = typer.Option(
        None, "--reference", help="The FP32 ONNX (default: the one its sidecar names)."
    ),
    images: Path | None = typer.Option(None, "--images", help="Held-out images (default: the model's demo set)."),
    count: int = typer.Option(64, "--count", help="Use at most N images."),
    top: int = typer.Option(10, "--top", help="Rows in the ranked table."),
    show_all: bool = typer.Option(False, "--all", help="Every compared node in graph order, not only the top ones."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Run the FP32 source and the typed artifact with every intermediate tensor exposed on held-out images; rank
    nodes by the error each adds itself (cosine and relative error against FP32, the PyTorch module it came from),
    name the node where the error first jumps, and for FP16 scan activations against the FP16 limit."""
    from deploy.diagnose import DiagnoseConfig
    from deploy.diagnose import diagnose as run_diagnose
    from deploy.errors import BadInput

    if count < 1 or top < 1:
        raise BadInput(f"--count {count} and --top {top} must be at least 1", hint="omit them for the defaults")
    found = run_diagnose(DiagnoseConfig(artifact, reference=reference, images=images, count=count))
    if as_json:
        print_json(found)
        return
    rows = found.nodes if show_all else found.ranked(top)
    title = (
        f"deploy diagnose {Path(found.artifact).name} ({found.precision}) against {Path(found.reference).name} — "
        f"{found.images} images: {found.image_source}; "
        + ("graph order" if show_all else f"the {len(rows)} nodes that add the most error")
    )
    columns = [
        Column("#", justify="right"),
        Column("node", key=True),
        Column("op"),
        Column("module", key=True),
        Column("reduced"),
        Column("cosine mean/min", justify="right"),
        Column("rel. error", justify="right"),
        Column("added", justify="right"),
    ]
    print_table(stdout, title, columns, [_row(node) for node in rows])
    stdout.print(_summary(found), highlight=False)


def _row(node: NodeError) -> list[str]:
    return [
        str(node.position),
        escape(node.node),
        escape(node.op),
        escape(node.module or ""),
        "yes" if node.reduced else "",
        f"{node.cosine:.5f} / {node.min_cosine:.5f}",
        f"{node.relative_error:.4f}",
        f"{node.added_error:.4f}",
    ]


def _summary(found: Diagnosis) -> str:
    from deploy.diagnose import JUMP_FLOOR

    lines = []
    jump = found.first_jump
    if jump is None:
        lines.append(f"first jump: none — no node adds {JUMP_FLOOR:.0%} relative error or more")
    else:
        lines.append(
            f"first jump: {jump.node} ({jump.op}, module {jump.module or '?'}) adds {jump.added_error:.4f} "
            f"relative error (cosine {jump.cosine:.5f})"
        )
    if found.output is not None:
        lines.append(f"output {found.output.tensor}: cosine {found.output.cosine:.5f}, "
                     f"relative error {found.output.relative_error:.4f}")  # fmt: skip
    scan = found.fp16_scan
    if scan is not None:
        over = ", ".join(f"{p.node} ({p.max_abs:.3g})" for p in scan.overflow) or "none"
        lines.append(f"FP16 overflow scan over {scan.images} images, {scan.fp16_tensors} FP16 tensors: beyond 65504: "
                     f"{over}; near the limit: {len(scan.near_limit)}")  # fmt: skip
    if jump is not None and jump.reduced:
        lines.append(
            f"to keep the most sensitive layers out of INT8 within an accuracy budget: "
            f"deploy build {found.model} --int8 --max-drop 0.5"
        )
    return "\n".join(lines)
