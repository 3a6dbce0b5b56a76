"""`deploy verify ARTIFACT...`: accuracy parity of each artifact against its model's reference on held-out images
(eager PyTorch; an imported model's FP32 ONNX on ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from deploy.cli.options import ATOL, MIN_COSINE, MIN_TOP1, RTOL
from deploy.cli.output import print_json, stdout
from deploy.cli.progress import step_progress
from deploy.cli.tables import Column, print_table

if TYPE_CHECKING:
    from deploy.harness.verify import ArtifactVerdict


def verify(
    ctx: typer.Context,
    artifacts: list[Path] = typer.Argument(..., help="Typed ONNX files from `deploy build` (or exports)."),
    images: Path | None = typer.Option(None, "--images", help="Held-out images; class subfolders give labels."),
    count: int | None = typer.Option(None, "--count", help="Use at most N images."),
    atol: float | None = ATOL,
    rtol: float | None = RTOL,
    min_cosine: float | None = MIN_COSINE,
    min_top1: float | None = MIN_TOP1,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Compare each artifact with eager PyTorch (FP32), or an imported model's FP32 ONNX on ONNX Runtime: errors,
    cosine, top-k agreement, accuracy when labelled."""
    from deploy.cli.options import check_tolerances
    from deploy.errors import ParityError
    from deploy.harness.verify import VerifyConfig
    from deploy.harness.verify import verify as run_verify
    from deploy.imported import EAGER_REFERENCE

    overrides = check_tolerances(atol=atol, rtol=rtol, min_cosine=min_cosine, min_top1=min_top1)
    config = VerifyConfig(artifacts=tuple(artifacts), images=images, count=count, overrides=overrides)
    with step_progress(ctx) as progress:
        result = run_verify(config, progress=progress)
    if as_json:
        print_json(result, passed=result.passed)
    else:
        references = {v.reference for v in result.verdicts} - {EAGER_REFERENCE}  # zoo models: eager, as always
        against = f" — reference: {', '.join(sorted(references))}" if references else ""
        headers = ["precision", "parity", "max |Δ|", "p99 |Δ|", "cosine mean/min", "top-1", "top-5"]
        headers += [f"accuracy {'reference' if references else 'eager'} → artifact"] if result.labelled else []
        columns = [Column("artifact", key=True), *(Column(header) for header in headers)]
        rows = []
        for verdict in result.verdicts:
            out = verdict.parity.outputs[0]
            row = [
                escape(str(verdict.artifact)),
                verdict.precision,
                _parity_cell(verdict),
                f"{out.max_abs:.3g}",
                f"{out.p99_abs:.3g}",
                f"{out.cosine_mean:.5f} / {out.cosine_min:.5f}",
                "" if out.top1_agreement is None else f"{out.top1_agreement:.1%}",
                "" if out.top5_agreement is None else f"{out.top5_agreement:.1%}",
            ]
            if result.labelled:
                row.append(f"{verdict.eager_accuracy:.2%} → {verdict.artifact_accuracy:.2%}")
            rows.append(row)
        print_table(stdout, f"deploy verify — held-out images: {result.images}{against}", columns, rows)
    if not result.passed:
        failed = ", ".join(str(v.artifact) for v in result.verdicts if not v)
        where = "payload.verdicts[].failures in the JSON above" if as_json else "the parity column above"
        raise ParityError(
            f"parity failed for {failed}",
            hint=f"{where} names each failed check; if that loss is acceptable, loosen it with "
            "--min-cosine/--min-top1 (or --atol/--rtol)",
        )


def _parity_cell(verdict: ArtifactVerdict) -> str:
    text = "[green]pass[/green]" if verdict.passed else f"[red]FAIL[/red] {'; '.join(verdict.failures)}"
    if verdict.eager_fp16 is not None:
        text += f" (eager in FP16: cosine min {verdict.eager_fp16.cosine_min:.5f})"
    return text
