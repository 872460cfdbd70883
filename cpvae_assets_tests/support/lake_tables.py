"""Small helpers of the storage tests: profile frames, the hidden files of a folder, a catalog's views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def profiles(n: int, features: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"compound": [f"cpd{i % 3}" for i in range(n)], "moa": ["x"] * n})
    for f in features:
        frame[f] = rng.normal(size=n)
    return frame


def hidden_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def views(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
