"""Aligned text tables for the command line."""

from __future__ import annotations

__all__ = ["print_table"]


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Print ``rows`` under ``header`` in left-aligned columns."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
