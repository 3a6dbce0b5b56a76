"""The one JSON codec: dataclasses (with the derived values they name), paths, tuples and numpy scalars to JSON.

Every JSON deploy writes — sidecars, reports, `--json` output — goes through `dumps`. A dataclass lists derived
properties worth recording in `json_derived` (a report's throughput); a type whose JSON layout differs from its
fields defines `json_data()` (the sidecar's flat weights block, as schema /1 wrote it). Every `--json` answer of
the command line is one `envelope`: the same top-level keys whatever the command, its result under `payload`.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

ENVELOPE_SCHEMA = "deploy.output/1"
# Distributions whose versions every envelope states (None where one is not installed): what a number or a
# verdict in the payload depends on. One onnxruntime distribution is installed, named either way.
VERSIONED = ("deploy", "torch", "torchvision", "onnx", "onnxruntime", "tensorrt", "openvino", "nvidia-modelopt")
_DISTRIBUTIONS = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings"),
}


def to_data(value: Any) -> Any:
    """`value` as JSON-ready data (dicts, lists, strings, numbers, None)."""
    if hasattr(value, "json_data") and not isinstance(value, type):
        return to_data(value.json_data())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {field.name: to_data(getattr(value, field.name)) for field in dataclasses.fields(value)}
        data |= {name: to_data(getattr(value, name)) for name in getattr(value, "json_derived", ())}
        return data
    if isinstance(value, dict):
        return {str(key): to_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:  # a numpy scalar (numpy not imported)
        return value.item()
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(to_data(value), indent=indent)


def versions() -> dict[str, str | None]:
    """Python's and every VERSIONED distribution's version (read from package metadata: nothing is imported)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        found[name] = None
        for distribution in _DISTRIBUTIONS.get(name, (name,)):
            try:
                found[name] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def envelope(command: str, payload: Any, *, passed: bool | None = None) -> dict[str, Any]:
    """The one layout of every `--json` answer: schema, command, verdict (None where the command judges nothing),
    versions, then the command's own result."""
    return {
        "schema": ENVELOPE_SCHEMA,
        "command": command,
        "passed": passed,
        "versions": versions(),
        "payload": to_data(payload),
    }
