"""The one way to reach the lake: ``Lake(root).table(asset, dataset, model_type)`` and friends.

A partition of an asset lives in ``<root>/<asset>/dataset=<d>[/model_type=<m>]/`` as one Parquet file
per table (``data`` plus side tables such as ``scaler``); every name is validated before it becomes a
path. Importing this module is cheap: pandas and pyarrow are imported by the methods that read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cpvae_assets.storage.paths import (
    DATA_TABLE,
    TABLE_SUFFIX,
    catalog_path,
    check_name,
    inside,
    is_remote,
    lake_root,
    landing_dir,
    partition_dir,
    table_file,
)

if TYPE_CHECKING:
    import pandas as pd


class MissingTable(FileNotFoundError):
    """A table that has not been materialised (yet); the message says which and how to get it."""


@dataclass(frozen=True)
class Lake:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Lake:
        """The lake at ``root``, else ``$CPVAE_LAKE``, else ``<repo>/data_lake``."""
        return cls(lake_root(root))

    # ------------------------------------------------------------------ where
    def folder(self, asset: str, dataset: str | None = None, model_type: str | None = None) -> Path:
        """The folder of one partition (of the asset itself when it is not partitioned)."""
        if dataset is None:
            return self.root / check_name(asset, "asset name")
        return partition_dir(self.root, asset, dataset, model_type)

    def path(self, asset: str, dataset: str | None = None, model_type: str | None = None,
             table: str = DATA_TABLE) -> Path:
        return table_file(self.folder(asset, dataset, model_type), table)

    def landing(self, dataset: str) -> Path:
        """``<root>/landing/<dataset>``; a symlinked dataset folder must not lead out of landing."""
        folder = landing_dir(self.root, dataset)
        if not is_remote(self.root):
            inside(self.root / "landing", folder)
        return folder

    @property
    def catalog(self) -> Path:
        return catalog_path(self.root)

    # ------------------------------------------------------------------ what is there
    def has(self, asset: str, dataset: str | None = None, model_type: str | None = None,
            table: str = DATA_TABLE) -> bool:
        return self.path(asset, dataset, model_type, table).is_file()

    def require(self, asset: str, dataset: str | None = None, model_type: str | None = None,
                table: str = DATA_TABLE) -> Path:
        path = self.path(asset, dataset, model_type, table)
        if not path.is_file():
            where = "/".join(p for p in (dataset, model_type) if p) or "the lake"
            name = asset if table == DATA_TABLE else f"{asset} ({table})"
            raise MissingTable(f"{path}: {name} is not materialised for {where} yet "
                               "(make demo, or materialise it in the Dagster UI)")
        return path

    def partitions(self, asset: str) -> list[dict[str, str]]:
        """The ``{"dataset": ..., "model_type": ...}`` of every stored partition of ``asset``."""
        base = self.root / check_name(asset, "asset name")
        found = []
        for file in sorted(base.rglob(f"{DATA_TABLE}{TABLE_SUFFIX}")) if base.is_dir() else []:
            parts = file.relative_to(base).parts[:-1]
            if parts and all("=" in p and not p.startswith(".") for p in parts):
                found.append(dict(p.split("=", 1) for p in parts))
        return found

    # ------------------------------------------------------------------ reading
    def table(self, asset: str, dataset: str | None = None, model_type: str | None = None,
              table: str = DATA_TABLE, columns: list[str] | None = None) -> pd.DataFrame:
        from cpvae_assets.storage.tables import read_table

        return read_table(self.require(asset, dataset, model_type, table), columns)

    def columns(self, asset: str, dataset: str | None = None, model_type: str | None = None,
                table: str = DATA_TABLE) -> list[str]:
        from cpvae_assets.storage.tables import column_names

        return column_names(self.require(asset, dataset, model_type, table))

    def metadata(self, asset: str, dataset: str | None = None, model_type: str | None = None,
                 table: str = DATA_TABLE) -> dict[str, object]:
        """The provenance stored in the file (code version, input sha256s, op config)."""
        from cpvae_assets.storage.tables import read_metadata

        return read_metadata(self.require(asset, dataset, model_type, table))

    def stacked(self, asset: str, table: str = DATA_TABLE) -> pd.DataFrame:
        """Every stored partition of one table, with its partition keys as leading columns."""
        import pandas as pd

        frames = []
        for keys in self.partitions(asset):
            if self.has(asset, keys["dataset"], keys.get("model_type"), table):
                frame = self.table(asset, keys["dataset"], keys.get("model_type"), table)
                frames.append(frame.assign(**keys)[[*keys, *frame.columns]])
        if not frames:
            return pd.DataFrame()
        columns = list(dict.fromkeys(c for f in frames for c in f.columns))
        # all-NA columns are left out of the concat (pandas deprecates typing by them) and restored after
        kept = [f.dropna(axis=1, how="all") for f in frames if len(f)] or frames[:1]
        return pd.concat(kept, ignore_index=True).reindex(columns=columns)
