"""Rows of results as a Markdown table: the one renderer behind every printed table and `results.md`.

Callers format their own cells (units, digits, labels); this module only lays them out:

    markdown_table(["model", "PSNR"], [["flow", "22.1"]], align="lr", intro="Horizon 1, 20 episodes.")
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

SEPARATORS = {"l": "---", "r": "---:"}  # Markdown column alignment: left (the default) or right (numbers)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "",
                   intro: str | None = None) -> str:
    """A header row, the alignment row and one line per row, optionally below an `intro` paragraph.

    `align` has one letter per column, "l" or "r" (empty: all left); cells are written with `str`.
    """
    align = align or "l" * len(columns)
    if len(align) != len(columns) or set(align) - set(SEPARATORS):
        raise ValueError(f"align must be one 'l' or 'r' per column ({len(columns)}), got '{align}'")
    lines = [] if intro is None else [intro, ""]
    lines.append(_line(columns))
    lines.append("|" + "|".join(SEPARATORS[letter] for letter in align) + "|")
    for row in rows:
        row = list(row)
        if len(row) != len(columns):
            raise ValueError(f"a table row has {len(row)} cells, the header {len(columns)}: {row}")
        lines.append(_line(row))
    return "\n".join(lines)


def _line(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
