"""The IO manager: each asset partition is Parquet under ``<lake>/<asset>/dataset=<d>[/model_type=<m>]/``.

An asset may return one DataFrame (stored as ``data.parquet``) or a ``LakeTables`` mapping of table
name to DataFrame (``data`` plus side tables such as the fitted scaler). Side tables are written
first and ``data`` last; all are written to hidden files before any is renamed into place, so a
crash leaves the previous version of the partition whole. A write that adds a table rebuilds the SQL
catalog (views over globs see new partitions by themselves).

Every file carries its provenance (code version, the sha256 of each input it was computed from, the
op's config with its seeds) and nothing run-specific, so the same inputs give byte-identical files;
the run id and the files' own sha256 are in the Dagster materialisation metadata.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from cpvae_assets.orchestration.partitions import partition_dimensions
from cpvae_assets.storage.catalog import catalog_after_write
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.paths import DATA_TABLE
from cpvae_assets.storage.tables import commit_tables, read_table
from cpvae_assets.storage.version import code_version

# sha256 of every input a step loaded, by (run id, step key): handle_output of the same step records them
_LOADED: dict[tuple[str, str], dict[str, str]] = {}


def preview(frame: pd.DataFrame, rows: int = 5, columns: int = 12) -> str:
    """The first rows and columns as a Markdown table: what the UI shows beside the plot."""
    shown = frame.iloc[:rows, :columns]
    more = f"\n\n{len(frame):,} rows x {frame.shape[1]:,} columns" + (" (first columns shown)" if frame.shape[1] > columns else "")
    return shown.to_markdown(index=False, floatfmt=".4g") + more


class LakeTables(dict[str, pd.DataFrame]):
    """Several tables of one asset partition; ``data`` is the one downstream assets load.

    An ``inputs`` attribute (name -> sha256) names inputs the IO manager does not load (landing files).
    ``figures`` (name -> PNG) are stored beside the tables as ``<name>.png``: the figure the UI shows
    is the one the report embeds, drawn once."""

    def __init__(self, *args, figures: dict[str, bytes] | None = None, **tables: pd.DataFrame) -> None:
        super().__init__(*args, **tables)
        self.figures = dict(figures or {})


class LakeIOManager(dg.ConfigurableIOManager):
    root: str = ""

    @property
    def lake(self) -> Lake:
        return Lake.at(self.root or None)

    @staticmethod
    def _where(context: dg.InputContext | dg.OutputContext) -> tuple[str, str | None, str | None]:
        """(asset, dataset, model type) of the partition being stored or loaded."""
        dims = partition_dimensions(context.asset_partition_key if context.has_asset_partitions else None)
        return context.asset_key.path[-1], dims.get("dataset"), dims.get("model_type")

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | LakeTables | None) -> None:
        if obj is None:
            return
        tables = obj if isinstance(obj, LakeTables) else LakeTables({DATA_TABLE: obj})
        if DATA_TABLE not in tables:
            raise ValueError(f"{context.asset_key.to_user_string()}: output has no {DATA_TABLE!r} table")
        folder = self.lake.folder(*self._where(context))
        # not getattr on a DataFrame: that would return a column named "inputs"
        meta = provenance(context, getattr(obj, "inputs", {}) if isinstance(obj, LakeTables) else {})
        stored = commit_tables(folder, tables, meta, tables.figures)
        catalog_after_write(self.lake.root, stored)
        data = tables[DATA_TABLE]
        context.add_output_metadata({"path": dg.MetadataValue.path(str(folder)),
                                     "tables": ", ".join(sorted(tables)),
                                     "code_version": meta["code_version"],
                                     "inputs_sha256": dg.MetadataValue.json(meta["inputs"]),
                                     "config": dg.MetadataValue.json(meta["config"]),
                                     "files_sha256": dg.MetadataValue.json({p.name: sha256_of(p) for p in stored}),
                                     "dagster/row_count": len(data),
                                     "preview": dg.MetadataValue.md(preview(data)),
                                     **retry_metadata(context)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        lake = self.lake
        path = lake.require(*self._where(context))
        step = context.step_context
        _LOADED.setdefault((step.run_id, step.step.key), {})[str(path.parent.relative_to(lake.root))] = sha256_of(path)
        return read_table(path)


def retry_metadata(context: dg.OutputContext) -> dict[str, object]:
    """Which attempt stored this: the retry number and the run it retried (run retries of the instance)."""
    try:
        tags = context.step_context.dagster_run.tags
    except dg.DagsterInvariantViolationError:  # a context built by hand (tests) has no run
        return {}
    if "dagster/retry_number" not in tags:
        return {"attempt": 1}
    return {"attempt": int(tags["dagster/retry_number"]) + 1, "retry_of_run": tags.get("dagster/parent_run_id", "")}


def provenance(context: dg.OutputContext, extra_inputs: dict[str, str]) -> dict[str, object]:
    """What a stored table was computed from: deterministic, so equal inputs give equal files."""
    try:
        loaded = _LOADED.pop((context.run_id, context.step_key), {})
        config = context.step_context.op_config or {}
    except dg.DagsterInvariantViolationError:  # a context built by hand (tests) has no step
        loaded, config = {}, {}
    key = context.asset_partition_key if context.has_asset_partitions else None
    return {"asset": context.asset_key.to_user_string(), "partition": str(key) if key is not None else None,
            "code_version": code_version(), "inputs": dict(sorted({**loaded, **extra_inputs}.items())),
            "config": json.loads(json.dumps(config, default=str, sort_keys=True))}
