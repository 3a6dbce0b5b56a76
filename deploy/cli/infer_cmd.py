"""`deploy infer ARTIFACT IMAGES...`: top-k labels for files, folders and globs, streamed in batches.

Rows are written as each batch finishes (a table, CSV or JSON lines on stdout); warnings and the throughput line
go to stderr. Named files must be images (exit 2 otherwise); in folders and globs an unreadable one is skipped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from deploy.cli.output import settings, stderr
from deploy.codec import dumps, envelope
from deploy.errors import BadInput

if TYPE_CHECKING:
    from deploy.harness.classify import Classification, InferSummary, Skipped

_MAX_IMAGE_WIDTH = 60  # wider names overflow their column rather than being cut
_MAX_LABEL_WIDTH = 30


def infer(
    ctx: typer.Context,
    artifact: Path = typer.Argument(..., help="An artifact: .onnx, .plan or .xml (its .json sidecar beside it)."),
    images: list[str] = typer.Argument(
        ..., help="Image files, folders (searched recursively) or quoted glob patterns ('photos/**/*.jpg')."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Zoo model whose preprocessing to assume when the sidecar is missing."
    ),
    top: int = typer.Option(5, "--top", "-k", help="How many labels per image."),
    batch: int | None = typer.Option(
        None, "--batch", "-b", help="Images per inference, within the artifact's batch range [default: 8]."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="JSON lines: one object per image, then the summary in the --json envelope."
    ),
    as_csv: bool = typer.Option(False, "--csv", help="CSV: a header, then one row per image."),
) -> None:
    """Classify images with an exported or built model (ONNX Runtime, TensorRT or OpenVINO)."""
    from deploy.harness.classify import infer_images

    if as_json and as_csv:
        raise BadInput("--json and --csv each choose the output format", hint="pass one of --json or --csv")
    writer: _Writer = _JsonLines() if as_json else _Csv() if as_csv else _Table()
    summary = infer_images(artifact, images, emit=writer.rows, model=model, top_k=top, batch=batch, on_skip=_warn)
    writer.finish(summary)
    if summary.preprocessing_from == "zoo":
        stderr.print(f"[yellow]no sidecar: assumed {summary.model}'s default preprocessing from the zoo[/yellow]")
    if not settings(ctx).quiet:
        stderr.print(_throughput(summary), highlight=False)


def _warn(skipped: Skipped) -> None:
    stderr.print(f"[yellow]warning:[/yellow] skipped {escape(skipped.image)}: {escape(skipped.reason)}")


def _throughput(summary: InferSummary) -> str:
    line = (
        f"{summary.images} image{'s' * (summary.images != 1)} in {summary.seconds:.2f} s "
        f"({summary.images_per_second:.1f} img/s), {escape(summary.model)} via {summary.backend}, "
        f"batch {summary.batch}"
    )
    if summary.skipped:
        line += f"; skipped {summary.skipped} unreadable"
    if summary.not_images:
        what = "files that are not images" if summary.not_images != 1 else "file that is not an image"
        line += f"; passed over {summary.not_images} {what}"
    return f"[dim]{line}[/dim]"


def _echo(text: str) -> None:
    typer.echo(text, nl=False)  # click flushes: each batch reaches a pipe as soon as it is classified


class _Writer:
    """Writes each batch's rows as they come, then whatever closes the output."""

    def rows(self, batch: list[Classification]) -> None:
        raise NotImplementedError

    def finish(self, summary: InferSummary) -> None:
        return None


class _Table(_Writer):
    """One compact table: image, top-1 label, its probability, the rest of the top-k on the same line. Column
    widths come from the first batch (the rest is not known yet); a longer value widens its own row only."""

    def __init__(self) -> None:
        self.widths: tuple[int, int] | None = None

    def rows(self, batch: list[Classification]) -> None:
        if self.widths is None:
            image = max(len("image"), *(len(c.image) for c in batch))
            label = max(len("top-1"), *(len(c.predictions[0].label) for c in batch))
            self.widths = (min(image, _MAX_IMAGE_WIDTH), min(label, _MAX_LABEL_WIDTH))
            _echo(self._line("image", "top-1", "prob", "rest of top-k"))
        _echo("".join(self._row(item) for item in batch))

    def _row(self, item: Classification) -> str:
        best, *rest = item.predictions
        others = " · ".join(f"{p.label} {p.probability:.1%}" for p in rest)
        return self._line(item.image, best.label, f"{best.probability:.2%}", others)

    def _line(self, image: str, label: str, probability: str, rest: str) -> str:
        assert self.widths is not None
        image_width, label_width = self.widths
        return f"{image:<{image_width}}  {label:<{label_width}}  {probability:>7}  {rest}".rstrip() + "\n"


class _Csv(_Writer):
    """image, then label, probability and index for each rank: top1_label, top1_probability, top1_index, ..."""

    def __init__(self) -> None:
        self.header = False

    def rows(self, batch: list[Classification]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not self.header:
            ranks = range(1, len(batch[0].predictions) + 1)
            writer.writerow(["image", *(f"top{r}_{f}" for r in ranks for f in ("label", "probability", "index"))])
            self.header = True
        for item in batch:
            writer.writerow([item.image, *(v for p in item.predictions for v in (p.label, p.probability, p.index))])
        _echo(buffer.getvalue())


class _JsonLines(_Writer):
    """One object per image ({"image", "predictions"}), then the envelope with the summary as its payload."""

    def rows(self, batch: list[Classification]) -> None:
        _echo("".join(dumps(item, indent=None) + "\n" for item in batch))

    def finish(self, summary: InferSummary) -> None:
        _echo(dumps(envelope("infer", summary), indent=None) + "\n")
