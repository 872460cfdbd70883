"""The IO manager: each asset partition is Parquet under ``<lake>/<asset>/dataset=<d>[/model_type=<m>]/``.

An asset may return one DataFrame (stored as ``data.parquet``) or a ``LakeTables`` mapping of table
name to DataFrame (``data`` plus side tables such as the fitted scaler). Side tables are written
first and ``data`` last; all are written to hidden files before any is renamed into place, so a
crash leaves the previous version of the partition whole. The SQL catalog is rebuilt after every write.

Every file carries its provenance (code version, the sha256 of each input it was computed from, the
op's config with its seeds) and nothing run-specific, so the same inputs give byte-identical files;
the run id and the files' own sha256 are in the Dagster materialisation metadata.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from cpvae_assets.lake import (
    DATA_TABLE,
    read_table,
    rebuild_catalog,
    replace,
    write_table,
)
from cpvae_assets.partitions import partition_dimensions
from cpvae_assets.paths import check_name, lake_root, partition_dir
from cpvae_assets.provenance import code_version

# sha256 of every input a step loaded, by (run id, step key): handle_output of the same step records them
_LOADED: dict[tuple[str, str], dict[str, str]] = {}


def preview(frame: pd.DataFrame, rows: int = 5, columns: int = 12) -> str:
    """The first rows and columns as a Markdown table: what the UI shows beside the plot."""
    shown = frame.iloc[:rows, :columns]
    more = f"\n\n{len(frame):,} rows x {frame.shape[1]:,} columns" + (" (first columns shown)" if frame.shape[1] > columns else "")
    return shown.to_markdown(index=False, floatfmt=".4g") + more


class LakeTables(dict[str, pd.DataFrame]):
    """Several tables of one asset partition; ``data`` is the one downstream assets load.

    An ``inputs`` attribute (name -> sha256) names inputs the IO manager does not load (landing files)."""


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
        # not getattr on a DataFrame: that would return a column named "inputs"
        meta = provenance(context, getattr(obj, "inputs", {}) if isinstance(obj, LakeTables) else {})
        stored = commit_tables(folder, tables, meta)
        rebuild_catalog(self.lake)
        data = tables[DATA_TABLE]
        context.add_output_metadata({"path": dg.MetadataValue.path(str(folder)),
                                     "tables": ", ".join(sorted(tables)),
                                     "code_version": meta["code_version"],
                                     "inputs_sha256": dg.MetadataValue.json(meta["inputs"]),
                                     "config": dg.MetadataValue.json(meta["config"]),
                                     "files_sha256": dg.MetadataValue.json({p.name: sha256(p) for p in stored}),
                                     "dagster/row_count": len(data),
                                     "preview": dg.MetadataValue.md(preview(data))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._dir(context) / f"{DATA_TABLE}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: upstream partition has not been materialised")
        step = context.step_context
        _LOADED.setdefault((step.run_id, step.step.key), {})[str(path.parent.relative_to(self.lake))] = sha256(path)
        return read_table(path)


def sha256(path: Path) -> str:
    """Of a local file or one on an fsspec filesystem (``UPath.open``)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def commit_tables(folder: Path, tables: dict[str, pd.DataFrame], meta: dict[str, object]) -> list[Path]:
    """Write every table to a hidden file, then rename them into place (side tables first, ``data``
    last): a crash while writing leaves the previous version of every table in place."""
    token = uuid.uuid4().hex
    staged: list[tuple[Path, Path]] = []
    try:
        for name in sorted(tables, key=lambda n: n == DATA_TABLE):
            target = folder / f"{check_name(name, 'table name')}.parquet"
            staged.append((write_table(tables[name], folder / f".{target.name}.staged-{token}", meta), target))
        for tmp, target in staged:
            replace(tmp, target)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [target for _, target in staged]
