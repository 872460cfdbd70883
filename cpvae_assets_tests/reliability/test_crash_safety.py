"""Crash safety: writers SIGKILLed in the middle of a write (paused deterministically by the
test's own rename hook in the child it starts, or by a stalling server) leave the
previous version whole, nothing half-written visible, and a re-run succeeds."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
import zipfile
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from cpvae_assets.cli import main
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.storage.catalog import discover_tables
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.paths import landing_dir
from cpvae_assets.storage.sql import query
from cpvae_assets_tests.support.helpers import failure_text
from cpvae_assets_tests.support.reliability_support import (
    LEFTOVER,
    MATERIALISE,
    PLATE,
    Script,
    hidden_leftovers,
    kill_when_paused,
    land_plate,
    pause_env,
    run_child,
    serve,
    start_child,
    tree,
)


def visible_parquet_files(lake: Path) -> list[Path]:
    return [p for p in lake.rglob("*.parquet")
            if "dagster_home" not in p.parts and not any(part.startswith(".") for part in p.relative_to(lake).parts)]


def assert_every_visible_file_whole(lake: Path) -> None:
    files = visible_parquet_files(lake)
    assert files
    for path in files:
        assert path.stat().st_size > 0, path
        pq.read_table(path)  # a torn file raises


def assert_leftovers_never_read(lake: Path) -> None:
    """Hidden leftovers of a killed writer match no view's glob, in DuckDB's own glob()."""
    for view, pattern in discover_tables(lake).items():
        matched = query(lake, f"SELECT file FROM glob('{pattern}')")["file"].tolist()
        assert matched and not [f for f in matched if "/." in f], (view, matched)


# --------------------------------------------------------------------------- Parquet partitions


def materialise_here(selection: list[str]) -> dg.ExecuteInProcessResult:
    """In this process, on the same instance ($DAGSTER_HOME) and lake ($CPVAE_LAKE) as the children."""
    from cpvae_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    if PLATE not in instance.get_dynamic_partitions("dataset"):
        instance.add_dynamic_partitions("dataset", [PLATE])
    return dg.materialize(list(defs.assets), selection=selection, partition_key=PLATE, instance=instance,
                          resources=defs.resources, raise_on_error=False)


def test_kill_while_writing_a_partition_keeps_the_previous_version(lake: Path, tmp_path: Path) -> None:
    land_plate(lake)
    first = materialise_here(["raw_profiles", "normalised_splits"])
    assert first.success, failure_text(first)
    before = tree(lake, skip=("dagster_home", "landing"))
    splits = {k: v for k, v in before.items() if k.startswith("normalised_splits/")}
    assert set(splits) == {f"normalised_splits/dataset={PLATE}/data.parquet",
                           f"normalised_splits/dataset={PLATE}/scaler.parquet"}

    # new landing content; the run stores raw_profiles, then is killed while writing normalised_splits:
    # its scaler is staged (hidden), its data is written but not yet renamed into place
    land_plate(lake, rows=300)
    marker = tmp_path / "paused"
    child = start_child(MATERIALISE, PLATE, "raw_profiles,normalised_splits",
                        **pause_env(f"normalised_splits/dataset={PLATE}/.data.parquet.staged-", marker))
    tmp = kill_when_paused(child, marker)
    assert tmp.exists() and tmp.stat().st_size > 0  # the new data was fully written, never renamed

    after = tree(lake, skip=("dagster_home", "landing"))
    assert {k: after[k] for k in splits} == splits  # the previous data AND its scaler, byte-identical
    assert after[f"raw_profiles/dataset={PLATE}/data.parquet"] != before[f"raw_profiles/dataset={PLATE}/data.parquet"]
    assert_every_visible_file_whole(lake)
    leftovers = hidden_leftovers(lake)
    assert any("scaler.parquet.staged-" in f for f in leftovers)  # staged, never renamed
    assert all(LEFTOVER.search(f) for f in leftovers), leftovers
    assert_leftovers_never_read(lake)
    counts = query(lake, "SELECT (SELECT count(*) FROM raw_profiles) AS raw, (SELECT count(*) FROM normalised_splits) AS s,"
                         " (SELECT count(*) FROM normalised_splits_scaler) AS f")
    assert counts.values.tolist() == [[300, 384, counts["f"].item()]]

    # the same materialisation again, on the same instance: succeeds
    rerun = materialise_here(["raw_profiles", "normalised_splits"])
    assert rerun.success, failure_text(rerun)
    assert query(lake, "SELECT count(*) AS n FROM normalised_splits")["n"].item() == 300
    assert_every_visible_file_whole(lake)


# --------------------------------------------------------------------------- Keras model files


KERAS_CHILD = """
import os, sys
from pathlib import Path
import numpy as np
import keras
from cpvae_assets.models.latent import KerasModel

folder, action = Path(sys.argv[1]), sys.argv[2]

def tiny(seed):
    keras.utils.set_random_seed(seed)
    x = keras.Input((4,))
    h = keras.layers.Dense(2)(x)
    z = keras.Input((2,))
    return KerasModel(keras.Model(x, [h, h]), keras.Model(z, keras.layers.Dense(4)(z)))

def same(a, b):
    return all(np.array_equal(u, v) for m, n in ((a.encoder, b.encoder), (a.decoder, b.decoder))
               for u, v in zip(m.get_weights(), n.get_weights()))

if action == "save-then-pause":
    tiny(1).save(folder)
    print("saved v1", flush=True)
    os.environ["CPVAE_TEST_PAUSE_BEFORE_RENAME"] = "encoder.keras"
    tiny(2).save(folder)
else:
    assert same(KerasModel.load(folder), tiny(1)), "the stored model is not version 1"
    tiny(2).save(folder)
    assert same(KerasModel.load(folder), tiny(2)), "the re-saved model is not version 2"
    print("ok", flush=True)
    # the check is done: skip TensorFlow's interpreter teardown, which has hung past the timeout on a
    # loaded 2-core machine after printing "ok"
    os._exit(0)
"""


def test_kill_while_saving_a_keras_model_keeps_the_previous_model(tmp_path: Path) -> None:
    folder = tmp_path / "lake" / "trained_models" / "dataset=d" / "model_type=vanilla"
    marker = tmp_path / "paused"
    child = start_child(KERAS_CHILD, str(folder), "save-then-pause", CPVAE_TEST_PAUSE_MARKER=str(marker))
    tmp = kill_when_paused(child, marker)
    assert tmp.name.startswith(".encoder.keras.tmp-") and tmp.stat().st_size > 0
    # the new decoder was written too, and neither renamed: the pair is replaced together or not at all
    (decoder,) = [p for p in folder.iterdir() if p.name.startswith(".decoder.keras.tmp-")]
    assert decoder.stat().st_size > 0

    visible = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert visible == ["decoder.keras", "encoder.keras", "pair.json"]
    for name in visible[:2]:
        assert zipfile.is_zipfile(folder / name) and (folder / name).stat().st_size > 0
    assert all(LEFTOVER.search(f"{p.name}") for p in folder.iterdir() if p.name.startswith("."))

    done = run_child(KERAS_CHILD, str(folder), "check-and-resave")
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


# --------------------------------------------------------------------------- cpvae fetch


FETCH_CHILD = "import sys\nfrom cpvae_assets.cli import main\nsys.exit(main(sys.argv[1:]))"
MB = 1 << 20


@pytest.fixture
def remote(tmp_path: Path, tls_context):
    """A 3 MB file served for the registered dataset ``lincs_cp_level5``, and its manifest."""
    data = random.Random(7).randbytes(3 * MB + 4321)
    script = Script(data)
    httpd, url = serve(script, tls_context)
    (path,) = dataset_spec("lincs_cp_level5").remote_files
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(f"path\tsha256\tsize_bytes\turl\n{path}\t{hashlib.sha256(data).hexdigest()}\t{len(data)}\t{url}\n")
    try:
        yield script, manifest, Path(path).name
    finally:
        script.release.set()
        httpd.shutdown()
        httpd.server_close()


def test_killed_fetch_never_lands_and_resumes(lake: Path, remote) -> None:
    script, manifest, name = remote
    script.stall_after = MB + MB // 2  # the client stores one 1 MB block, then waits for the rest
    landing = landing_dir(lake, "lincs_cp_level5")
    args = ["--lake", str(lake), "fetch", "lincs_cp_level5", "--manifest", str(manifest), "--quiet"]
    child = start_child(FETCH_CHILD, *args)
    part = landing / f"{name}.part"
    deadline = time.monotonic() + 120
    while not (part.exists() and part.stat().st_size >= MB):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)
    script.release.set()

    assert not (landing / name).exists()  # nothing unverified landed
    kept = part.stat().st_size
    assert part.read_bytes() == script.data[:kept]

    script.stall_after = None
    assert main(args) == 0
    assert (landing / name).read_bytes() == script.data
    assert sorted(p.name for p in landing.iterdir()) == [name]
    assert script.requests[-1] == (f"bytes={kept}-", 206)  # resumed, not restarted


def test_fetch_with_a_corrupt_partial_file_restarts_and_never_lands_it(lake: Path, remote) -> None:
    script, manifest, name = remote
    landing = landing_dir(lake, "lincs_cp_level5")
    landing.mkdir(parents=True)
    (landing / f"{name}.part").write_bytes(b"\x00" * MB)  # e.g. a disk error in an earlier attempt
    args = ["--lake", str(lake), "fetch", "lincs_cp_level5", "--manifest", str(manifest), "--quiet"]

    assert main(args) == 2  # resumed onto bad bytes: the sha256 check refuses and removes it
    assert sorted(p.name for p in landing.iterdir()) == []
    assert main(args) == 0  # the next run starts from scratch
    assert sha256_of(landing / name) == hashlib.sha256(script.data).hexdigest()
    assert script.requests[-1] == (None, 200)
