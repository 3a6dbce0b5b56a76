"""Option values several commands parse the same way."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from deploy.errors import BadInput

if TYPE_CHECKING:
    from deploy.customization import Customization

# Tolerance overrides shared by verify, build and pipeline (the same judge, the same spelling).
ATOL = typer.Option(None, "--atol", help="Override the elementwise absolute tolerance (>= 0).")
RTOL = typer.Option(None, "--rtol", help="Override the elementwise relative tolerance (>= 0).")
MIN_COSINE = typer.Option(None, "--min-cosine", help="Override the minimum cosine similarity (0-1).")
MIN_TOP1 = typer.Option(None, "--min-top1", help="Override the minimum top-1 agreement, a fraction (0-1).")


def parse_batches(text: str, *, option: str = "--batch") -> tuple[int, ...]:
    """ "1,8,32" → (1, 8, 32); anything else is one clear error naming the option."""
    try:
        batches = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        batches = ()
    if not batches or any(b < 1 for b in batches):
        raise BadInput(f"{option} {text!r} is not a list of positive integers", hint=f"write e.g. {option} 1,8,32")
    return tuple(dict.fromkeys(batches))


def check_tolerances(**overrides: float | None) -> dict[str, float | None]:
    """--atol/--rtol/--min-cosine/--min-top1 as given, refused as bad options (exit 2) rather than failing parity."""
    from deploy.harness.compare import check_tolerances as check

    check(overrides)
    return dict(overrides)


def refuse_unused(reason: str, alternative: str, **given: object) -> None:
    """Options that would be silently ignored (`reason` says when they apply) are refused, naming each one given."""
    named = ", ".join(f"--{name.replace('_', '-')}" for name, value in given.items() if value not in (None, False))
    if named:
        verb = "applies" if "," not in named else "apply"
        raise BadInput(f"{named} {verb} only {reason}", hint=f"drop {named}, or {alternative}")


# A fine-tune's head and preprocessing, for every command that exports (export, build on demand, pipeline).
NUM_CLASSES = typer.Option(
    None,
    "--num-classes",
    help="Classes of your fine-tune: replaces the classifier head (read from a checkpoint's head when omitted).",
)
LABELS = typer.Option(None, "--labels", help="Class names: a text file with one per line, or a JSON list.")
INPUT_SIZE = typer.Option(
    None, "--input-size", help="Side of the centre crop the network sees (the resize keeps the weights' ratio)."
)
RESIZE_SIZE = typer.Option(None, "--resize-size", help="Short side the image is resized to before the crop.")
MEAN = typer.Option(None, "--mean", help="Per-channel normalisation mean, comma-separated (0.485,0.456,0.406).")
STD = typer.Option(None, "--std", help="Per-channel normalisation std, comma-separated (0.229,0.224,0.225).")
INTERPOLATION = typer.Option(None, "--interpolation", help="Resize filter: nearest, bilinear or bicubic.")


def customization(
    *,
    num_classes: int | None,
    labels: Path | None,
    input_size: int | None,
    resize_size: int | None,
    mean: str | None,
    std: str | None,
    interpolation: str | None,
) -> Customization:
    """The fine-tune options of one command as a Customization (each refused with its own name when malformed)."""
    from deploy.customization import Customization, read_labels

    return Customization(
        num_classes=num_classes,
        labels=None if labels is None else read_labels(labels),
        labels_source=None if labels is None else str(labels.resolve()),  # a re-export hint works from anywhere
        input_size=input_size,
        resize_size=resize_size,
        mean=None if mean is None else parse_floats(mean, option="--mean"),
        std=None if std is None else parse_floats(std, option="--std"),
        interpolation=interpolation,  # type: ignore[arg-type]  # Customization checks it against the filters
    )


def parse_floats(text: str, *, option: str) -> tuple[float, ...]:
    """ "0.485,0.456,0.406" → (0.485, 0.456, 0.406); anything else is one error naming the option."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) for v in values):
        raise BadInput(f"{option} {text!r} is not a comma-separated list of numbers", hint=f"write e.g. {option} 0.5")
    return values
