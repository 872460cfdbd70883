"""Read-only SQL over the lake: the catalog opened read-only, locked to the lake, SELECTs only."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cpvae_assets.lake import rebuild_catalog
from cpvae_assets.paths import catalog_path

ALLOWED = {"SELECT", "EXPLAIN"}
# EXPLAIN ANALYZE executes the explained statement (e.g. a COPY ... TO into the lake)
_ANALYZE = re.compile(r"\banaly[sz]e\b", re.IGNORECASE)


class QueryRefused(ValueError):
    """A statement that is not a read (COPY, ATTACH, DROP, SET, ...)."""


def connect(lake: Path):
    """A read-only connection that can read the lake's files and nothing else."""
    import duckdb

    catalog = catalog_path(lake)
    if not catalog.exists():
        rebuild_catalog(lake)
    # A private in-memory instance that attaches the catalog read-only: duckdb.connect(catalog) would
    # reuse this process's cached instance of the file (stale after a rebuild, already locked by an
    # earlier connect, and shared with - and reconfigured for - any connection the user holds).
    con = duckdb.connect(":memory:")
    escaped_catalog = str(catalog).replace("'", "''")
    con.execute(f"ATTACH '{escaped_catalog}' AS cpvae (READ_ONLY)")
    con.execute("USE cpvae")
    escaped = str(lake).replace("'", "''")
    con.execute(f"SET allowed_directories = ['{escaped}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def query(lake: Path, sql: str) -> pd.DataFrame:
    """Run one read-only statement (or several, all reads) and return the last result."""
    con = connect(lake)
    try:
        statements = con.extract_statements(sql)
        if not statements:
            raise QueryRefused("empty query")
        for statement in statements:
            kind = statement.type.name
            if kind not in ALLOWED:
                raise QueryRefused(f"only SELECT queries are allowed, got {kind}")
            if kind == "EXPLAIN" and _ANALYZE.search(statement.query):
                raise QueryRefused("EXPLAIN ANALYZE runs its statement; only plain EXPLAIN is allowed")
        result = None
        for statement in statements:
            result = con.execute(statement).df()
        return result
    finally:
        con.close()
