"""The one JSON codec: dataclasses (with the derived values they name), paths, tuples and numpy scalars to JSON.

Every JSON deploy writes — sidecars, reports, `--json` output — goes through `dumps`. A dataclass lists derived
properties worth recording in `json_derived` (a report's throughput); a type whose JSON layout differs from its
fields defines `json_data()` (the sidecar's flat weights block, as schema /1 wrote it).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np


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
    if isinstance(value, np.generic):
        return value.item()
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(to_data(value), indent=indent)
