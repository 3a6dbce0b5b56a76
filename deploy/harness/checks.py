"""Range checks for numeric options, shared by the configs that take them (export, verify, bench, pipeline), so
the Python API refuses what the CLI refuses: one BadInput (exit 2) naming the option, the value and a fix."""

from __future__ import annotations

import math
from pathlib import Path

from deploy.errors import BadInput

# The largest batch deploy exports or times: 4096 ImageNet images are 2.5 GB of float32 input per batch, and the
# timing pool holds eight such batches; a larger value is a typo, not a deployment these CNNs are served at.
MAX_BATCH = 4096


def check_int(option: str, value: int, *, low: int, high: int | None = None, example: int | str) -> None:
    """`low <= value <= high` (no upper bound when `high` is None)."""
    if value < low or (high is not None and value > high):
        raise BadInput(f"{option} {value} {_wanted(low, high, open_low=False)}", hint=f"pass e.g. {option} {example}")


def check_float(
    option: str,
    value: float,
    *,
    low: float,
    high: float | None = None,
    open_low: bool = False,
    example: float | str,
) -> None:
    """A finite `value` above `low` (`open_low`) or at least `low`, and at most `high`: nan and inf never pass."""
    wanted = _wanted(low, high, open_low=open_low)
    if not math.isfinite(value):
        wanted = f"is not a finite number ({wanted.replace('is outside', 'it must be within')})"
    elif (value > low if open_low else value >= low) and (high is None or value <= high):
        return
    raise BadInput(f"{option} {value} {wanted}", hint=f"pass e.g. {option} {example}")


def _wanted(low: float, high: float | None, *, open_low: bool) -> str:
    if high is not None and not open_low:
        return f"is outside {low:g}-{high:g}"
    text = f"must be above {low:g}" if open_low else f"must be at least {low:g}"
    return text if high is None else f"{text} and at most {high:g}"


def missing_artifact_hint(artifact: Path) -> str:
    """The command that makes an artifact named like `artifact`: an export (MODEL.onnx) or a build for the target
    its suffix names (a .plan: TensorRT, which needs an NVIDIA GPU)."""
    model = artifact.name.split(".")[0] or "MODEL"
    if artifact.suffix == ".onnx" and artifact.name.count(".") == 1:
        return f"export it with `deploy export {model}`, or check the path"
    from deploy.targets import target_for

    try:
        target = target_for(artifact)
    except BadInput:
        return f"pass an artifact from `deploy export {model}` or `deploy build {model}`"
    where = " on a machine with an NVIDIA GPU" if target.device == "cuda" else ""
    return f"build it with `deploy build {model} --target {target.name}`{where}, or check the path"
