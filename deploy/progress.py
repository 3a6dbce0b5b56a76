"""Progress messages the library gives its optional `progress` callback: plain strings, each one a step begun.

A `Step` is a string that also says which step of how many it is and which file it writes, for a front end that
shows a counter or the file's size once the step is done; a callback that takes `str` needs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Self

Progress = Callable[[str], None]


class Step(str):
    """A progress message with its place in a known sequence (`number` of `total`, from 1) and the file it writes."""

    number: int | None
    total: int | None
    path: Path | None

    def __new__(
        cls, message: str, *, number: int | None = None, total: int | None = None, path: Path | None = None
    ) -> Self:
        step = super().__new__(cls, message)
        step.number, step.total, step.path = number, total, path
        return step


def silent(_message: str) -> None:
    """The callback used when none is given."""
