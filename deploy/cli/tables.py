"""Tables on stdout that never cut what identifies a row: rich on a terminal, plain aligned text otherwise.

Piped or in CI, rich lays a table out at 80 columns and cuts cells (`engines/resnet18.i…` for both int8 and
int8-cpu), so off a terminal every cell is written whole, columns aligned, markup stripped. On a terminal the key
columns (model, artifact, file) keep their full width and never wrap; the other columns wrap to make room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    header: str
    key: bool = False  # identifies the row (a name, a file): written whole, never wrapped or cut
    justify: Literal["left", "right"] = "left"


def print_table(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """`rows` are cells in rich markup, one per column."""
    if console.is_terminal:
        console.print(_rich_table(title, columns, rows))
    else:
        console.print(plain_table(title, columns, rows), highlight=False, markup=False, soft_wrap=True)


def plain_table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> str:
    """Aligned text, two spaces between columns, every cell whole: what `| tee` and CI logs show."""
    cells = [[column.header for column in columns], *([Text.from_markup(cell).plain for cell in row] for row in rows)]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    lines = [title] if title else []
    for number, line in enumerate(cells):
        parts = [
            cell.rjust(width) if column.justify == "right" else cell.ljust(width)
            for cell, width, column in zip(line, widths, columns, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _rich_table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title or None)
    for index, column in enumerate(columns):
        if column.key:
            width = max([len(column.header), *(Text.from_markup(row[index]).cell_len for row in rows)])
            table.add_column(column.header, justify=column.justify, no_wrap=True, min_width=width)
        else:
            table.add_column(column.header, justify=column.justify, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table
