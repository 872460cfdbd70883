"""``cpvae sql``: a query's result as a text table."""

from __future__ import annotations

from pathlib import Path


def print_query(lake: Path, sql: str, max_rows: int = 200) -> None:
    import pandas as pd

    from cpvae_assets.storage.sql import query

    frame = query(lake, sql)
    with pd.option_context("display.max_rows", max_rows, "display.max_columns", 30, "display.width", 200):
        print(frame.to_string(index=False, max_rows=max_rows))
