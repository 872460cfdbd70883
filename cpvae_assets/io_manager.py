"""The IO manager: each asset partition is Parquet under ``<lake>/<asset>/dataset=<d>[/model_type=<m>]/``.

An asset may return one DataFrame (stored as ``data.parquet``) or a ``LakeTables`` mapping of table
name to DataFrame (``data`` plus side tables such as the fitted scaler). Side tables are written
first and ``data`` last, each atomically; the SQL catalog is rebuilt after every write.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from cpvae_assets.lake import DATA_TABLE, read_table, rebuild_catalog, write_table
from cpvae_assets.partitions import partition_dimensions
from cpvae_assets.paths import check_name, lake_root, partition_dir


def preview(frame: pd.DataFrame, rows: int = 5, columns: int = 12) -> str:
    """The first rows and columns as a Markdown table: what the UI shows beside the plot."""
    shown = frame.iloc[:rows, :columns]
    more = f"\n\n{len(frame):,} rows x {frame.shape[1]:,} columns" + (" (first columns shown)" if frame.shape[1] > columns else "")
    return shown.to_markdown(index=False, floatfmt=".4g") + more


class LakeTables(dict[str, pd.DataFrame]):
    """Several tables of one asset partition; ``data`` is the one downstream assets load."""


def asset_partition_dir(lake: Path, asset: str, dims: dict[str, str]) -> Path:
    if not dims:
        return lake / check_name(asset, "asset name")
    return partition_dir(lake, asset, dims["dataset"], dims.get("model_type"))


class LakeIOManager(dg.ConfigurableIOManager):
    root: str = ""

    @property
    def lake(self) -> Path:
        return lake_root(self.root or None)

    def _dir(self, context: dg.InputContext | dg.OutputContext) -> Path:
        key = context.asset_partition_key if context.has_asset_partitions else None
        return asset_partition_dir(self.lake, context.asset_key.path[-1], partition_dimensions(key))

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | LakeTables | None) -> None:
        if obj is None:
            return
        tables = obj if isinstance(obj, LakeTables) else LakeTables({DATA_TABLE: obj})
        if DATA_TABLE not in tables:
            raise ValueError(f"{context.asset_key.to_user_string()}: output has no {DATA_TABLE!r} table")
        folder = self._dir(context)
        run_meta = {"run_id": context.run_id, "asset": context.asset_key.to_user_string()}
        for name in sorted(tables, key=lambda n: n == DATA_TABLE):
            write_table(tables[name], folder / f"{check_name(name, 'table name')}.parquet", run_meta)
        rebuild_catalog(self.lake)
        data = tables[DATA_TABLE]
        context.add_output_metadata({"path": dg.MetadataValue.path(str(folder)),
                                     "tables": ", ".join(sorted(tables)),
                                     "dagster/row_count": len(data),
                                     "preview": dg.MetadataValue.md(preview(data))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._dir(context) / f"{DATA_TABLE}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: upstream partition has not been materialised")
        return read_table(path)
