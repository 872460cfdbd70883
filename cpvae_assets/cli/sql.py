"""``cpvae sql``: a query's result as a plain text table, with no pandas on the way (start-up time is
most of a small query's wall time)."""

from __future__ import annotations

import decimal
from pathlib import Path


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_table(columns: list[str], rows: list[tuple], max_rows: int = 200) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    shown = rows[:max_rows]
    cells = [[_cell(v) for v in row] for row in shown]
    numeric = [all(isinstance(row[i], (int, float, decimal.Decimal)) or row[i] is None for row in shown) and bool(shown)
               for i in range(len(columns))]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(list(columns))] + [line(row) for row in cells]
    if len(rows) > len(shown):
        out.append(f"... {len(rows):,} rows, the first {len(shown):,} shown (--max-rows)")
    return "\n".join(out)


def print_query(lake: Path, sql: str, max_rows: int = 200) -> None:
    from cpvae_assets.storage.sql import rows

    columns, values = rows(lake, sql)
    print(format_table(columns, values, max_rows))
