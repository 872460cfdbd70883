"""Readers during writes: two processes rewrite two partitions at the same time while four processes
query the catalog in a loop. Every read succeeds and sees, per partition, a whole stored version."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg

from cpvae_assets.storage.sql import query
from cpvae_assets_tests.support.helpers import failure_text
from cpvae_assets_tests.support.reliability_support import PLATE, land_plate, start_child

OTHER = "plate_copy"
# per partition: profiles, and a digest of which profile is in which split (a mix of versions changes it)
STATE_SQL = """
SELECT dataset, count(*) AS n, md5(string_agg(profile_id || ':' || split, ',' ORDER BY profile_id)) AS digest
FROM normalised_splits GROUP BY ALL ORDER BY ALL
"""

READER = """
import json, sys, time
from pathlib import Path
from cpvae_assets.storage.sql import query
lake, out, stop, sql = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
with open(out, "w") as handle:
    while not stop.exists():
        try:
            rows = query(lake, sql).values.tolist()
            handle.write(json.dumps({"rows": rows}) + "\\n")
        except Exception as exc:
            handle.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\\n")
        handle.flush()
        time.sleep(0.05)  # leave the two cores some room for the writers
"""

# alternately lands 300 and 384 wells and materialises; prints each stored state as JSON
WRITER = """
import json, os, sys
from pathlib import Path
import dagster as dg
from cpvae_assets.definitions import defs
from cpvae_assets.storage.sql import query
from cpvae_assets_tests.support.reliability_support import land_plate
dataset, rounds, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lake = Path(os.environ["CPVAE_LAKE"])
instance = dg.DagsterInstance.get()
for i in range(rounds):
    land_plate(lake, rows=300 if i % 2 == 0 else 384, dataset=dataset)
    result = dg.materialize(list(defs.assets), selection=["raw_profiles", "normalised_splits"], partition_key=dataset,
                            instance=instance, resources=defs.resources, raise_on_error=False)
    if not result.success:
        sys.exit(f"run {i} failed")
    rows = [r for r in query(lake, sql).values.tolist() if r[0] == dataset]
    print(json.dumps(rows), flush=True)
"""


def test_readers_during_concurrent_writes_see_whole_versions(lake: Path, tmp_path: Path) -> None:
    from cpvae_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("dataset", [PLATE, OTHER])
    for dataset in (PLATE, OTHER):
        land_plate(lake, dataset=dataset)
        result = dg.materialize(list(defs.assets), selection=["raw_profiles", "normalised_splits"],
                                partition_key=dataset, instance=instance, resources=defs.resources,
                                raise_on_error=False)
        assert result.success, failure_text(result)
    valid = {tuple(row) for row in query(lake, STATE_SQL).values.tolist()}
    assert {r[0] for r in valid} == {PLATE, OTHER}

    stop = tmp_path / "stop"
    logs = [tmp_path / f"reader{i}.jsonl" for i in range(4)]
    readers = [start_child(READER, str(lake), str(log), str(stop), STATE_SQL) for log in logs]
    started = time.monotonic()
    try:
        while not all(log.exists() and log.stat().st_size for log in logs):  # every reader is reading
            assert time.monotonic() - started < 60 and all(r.poll() is None for r in readers)
            time.sleep(0.05)
        writers = [start_child(WRITER, dataset, "2", STATE_SQL) for dataset in (PLATE, OTHER)]
        outputs = [w.communicate(timeout=240) for w in writers]
    finally:
        stop.touch()
        for reader in readers:
            reader.communicate(timeout=60)
    for writer, (out, err) in zip(writers, outputs):
        assert writer.returncode == 0, err[-3000:]
        assert "locked" not in err.lower()
        for line in out.splitlines():
            valid |= {tuple(row) for row in json.loads(line)}

    reads = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    errors = [r["error"] for r in reads if "error" in r]
    assert errors == [], errors[:5]
    seen = set()
    for read in reads:
        rows = {tuple(row) for row in read["rows"]}
        assert {r[0] for r in rows} == {PLATE, OTHER}  # no partition ever disappears
        assert rows <= valid, rows - valid  # each partition is a version some writer stored, never a mix
        seen |= rows
    assert {n for _, n, _ in seen} == {300, 384}  # the readers saw both versions come and go
    print(f"{len(reads)} SQL reads by 4 processes during 2 concurrent writers, {len(errors)} errors")
