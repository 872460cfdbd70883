"""Read-only SQL over the lake: the catalog opened read-only, locked to the lake, SELECTs only.

DuckDB enforces the confinement: ``enable_external_access = false`` with ``allowed_directories`` set
to the lake (symlinks are resolved, so a link leading out of the lake is refused too), and
``lock_configuration`` so no statement can undo it. DuckDB also allows its temp directory, which
defaults to ``./.tmp`` under the current directory: it is pointed at a private empty folder instead.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cpvae_assets.storage.catalog import rebuild_catalog
from cpvae_assets.storage.paths import NOT_ASSETS, catalog_path

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
ALLOWED = {"SELECT", "EXPLAIN"}
READ_RETRIES = 5
# EXPLAIN ANALYZE executes the explained statement (e.g. a COPY ... TO into the lake)
_ANALYZE = re.compile(r"\banaly[sz]e\b", re.IGNORECASE)
_UNKNOWN_TABLE = re.compile(r"Table with name \S+ does not exist")


class QueryRefused(ValueError):
    """A statement that is not a read (COPY, ATTACH, DROP, SET, ...)."""


@cache
def engine():
    """DuckDB's C++ extension module, which the ``duckdb`` package re-exports: importing it alone takes
    a tenth of the time of the package's Python layer (relational API, expressions), which a read-only
    query never uses, so ``cpvae sql`` answers in a fraction of a second. The package is the fallback
    should the extension ever move."""
    try:
        import _duckdb as module
    except ImportError:  # pragma: no cover - a DuckDB build without the top-level extension module
        import duckdb as module
    return module


@cache
def _spill_directory() -> str:
    """A private, initially empty folder for DuckDB's spill files, removed when the process ends."""
    folder = tempfile.mkdtemp(prefix="cpvae-sql-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def connect(lake: Path):
    """A read-only connection that can read the lake's files and nothing else."""
    duckdb = engine()
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
    spill = _spill_directory().replace("'", "''")
    con.execute(f"SET temp_directory = '{spill}'")
    escaped = str(lake).replace("'", "''")
    con.execute(f"SET allowed_directories = ['{escaped}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def query(lake: Path, sql: str) -> pd.DataFrame:
    """Run one read-only statement (or several, all reads) and return the last result."""
    return run(lake, sql, lambda cursor: cursor.df())


def rows(lake: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """The same as ``query`` as column names and rows, without pandas (``cpvae sql`` answers in a
    fraction of a second: importing pandas alone costs about two)."""
    return run(lake, sql, lambda cursor: ([d[0] for d in cursor.description], cursor.fetchall()))


def run(lake: Path, sql: str, consume: Callable[[object], T]) -> T:
    """Check that every statement is a read, run them, and return ``consume`` of the last cursor. A table
    the catalog does not know is looked for once in the lake: one written where no new catalog fitted (a
    full disk) gets its view at its first query. Any other error, or a lake that cannot give it a view
    now, is the query's own error, as it was."""
    before = _catalog_file(lake)
    try:
        return _run(lake, sql, consume)
    except engine().CatalogException as error:
        if not _UNKNOWN_TABLE.search(str(error)):
            raise
        try:
            rebuild_catalog(lake)
        except (OSError, engine().Error):
            raise error from None
        if _catalog_file(lake) == before:  # the catalog already had every table: a misspelt name
            raise
    return _run(lake, sql, consume)


def _catalog_file(lake: Path) -> tuple[int, int] | None:
    try:
        st = catalog_path(lake).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _run(lake: Path, sql: str, consume: Callable[[object], T]) -> T:
    duckdb = engine()

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
            try:
                result = _execute(con, statement, lake, consume)
            except duckdb.PermissionException as exc:
                first = str(exc).splitlines()[0]
                raise duckdb.PermissionException(f"{first} (cpvae sql reads only files inside the lake {lake})") from None
        return result
    finally:
        con.close()


def _execute(con, statement, lake: Path, consume: Callable[[object], T]) -> T:
    """Run a read, again if it failed while a writer renamed a file of the lake into place.

    DuckDB opens a Parquet file more than once per query (schema at bind time, data later); a file
    replaced in between fails the read ("TProtocolException: Invalid data"). Every stored file is
    whole, so reading again gives the new version; a failure with no file renamed meanwhile is the
    query's own and is raised at once."""
    duckdb = engine()

    for attempt in range(READ_RETRIES + 1):
        started = time.time_ns()
        try:
            return consume(con.execute(statement))
        except (duckdb.PermissionException, duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException):
            raise
        except duckdb.Error:
            if attempt == READ_RETRIES or not _renamed_since(lake, started - 2_000_000_000):
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _renamed_since(lake: Path, since_ns: int) -> bool:
    """Whether a table file of the lake was created or renamed (its ctime) after ``since_ns``."""
    for folder, dirs, files in os.walk(lake):
        if Path(folder) == lake:
            dirs[:] = [d for d in dirs if d not in NOT_ASSETS]
        for name in files:
            try:
                if os.stat(os.path.join(folder, name)).st_ctime_ns >= since_ns:
                    return True
            except FileNotFoundError:  # a temporary file renamed away meanwhile
                return True
    return False
