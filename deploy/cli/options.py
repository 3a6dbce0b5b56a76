"""Option values several commands parse the same way."""

from __future__ import annotations

import typer

from deploy.errors import BadInput

# Tolerance overrides shared by verify, build and pipeline (the same judge, the same spelling).
ATOL = typer.Option(None, "--atol", help="Override the elementwise absolute tolerance.")
RTOL = typer.Option(None, "--rtol", help="Override the elementwise relative tolerance.")
MIN_COSINE = typer.Option(None, "--min-cosine", help="Override the minimum cosine similarity (0-1).")
MIN_TOP1 = typer.Option(None, "--min-top1", help="Override the minimum top-1 agreement (0-1).")


def parse_batches(text: str, *, option: str = "--batch") -> tuple[int, ...]:
    """ "1,8,32" → (1, 8, 32); anything else is one clear error naming the option."""
    try:
        batches = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        batches = ()
    if not batches or any(b < 1 for b in batches):
        raise BadInput(f"{option} {text!r} is not a list of positive integers", hint=f"write e.g. {option} 1,8,32")
    return tuple(dict.fromkeys(batches))


def check_tolerances(**bounds: float | None) -> dict[str, float | None]:
    """--min-cosine/--min-top1 style bounds (0-1), refused as bad options (exit 2) rather than failing parity."""
    for name, value in bounds.items():
        if value is not None and not 0.0 <= value <= 1.0:
            option = "--" + name.replace("_", "-")
            raise BadInput(f"{option} {value} is outside 0-1", hint=f"pass {option} 0.99, for example")
    return dict(bounds)
