"""Option values several commands parse the same way."""

from __future__ import annotations

import typer

from deploy.errors import BadInput

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
