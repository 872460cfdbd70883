"""The one place the platform's definitions are assembled (``dg`` and ``workspace.yaml`` load it)."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
