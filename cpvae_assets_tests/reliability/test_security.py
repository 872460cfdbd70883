"""Security: SQL that writes or reads outside the lake is refused, nothing is unpickled, models load
in Keras' safe mode, names are checked before they become paths, downloads are https-only, capped
at the declared size and verified, and the UI binds to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.fetch import FetchError, ManifestEntry, check_url, fetch_file
from cpvae_assets.models.latent import ModelFileError, PcaModel
from cpvae_assets.storage.catalog import rebuild_catalog
from cpvae_assets.storage.paths import (
    UnsafePathError,
    check_name,
    landing_dir,
    partition_dir,
    project_root,
    table_file,
)
from cpvae_assets.storage.sql import QueryRefused, query
from cpvae_assets.storage.tables import write_table
from cpvae_assets_tests.support.reliability_support import Script, serve

PACKAGE = project_root() / "cpvae_assets"


@pytest.fixture
def stored(lake: Path, tmp_path: Path) -> Path:
    write_table(pd.DataFrame({"v": [1, 2, 3]}), table_file(partition_dir(lake, "things", "a")))
    rebuild_catalog(lake)
    return lake


def cli_sql(lake: Path, sql: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cpvae sql`` as a user runs it (``make sql`` runs exactly this)."""
    return subprocess.run([sys.executable, "-m", "cpvae_assets.cli", "--lake", str(lake), "sql", sql],
                          capture_output=True, text=True, timeout=120, cwd=cwd or project_root(), check=False)


# --------------------------------------------------------------------------- SQL


WRITES = {
    "insert": "INSERT INTO things VALUES (4)",
    "create": "CREATE TABLE copy AS SELECT * FROM things",
    "copy_to": "COPY (SELECT * FROM things) TO '{lake}/things/out.csv'",
    "attach": "ATTACH '{lake}/other.duckdb' AS other",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET enable_external_access = true",
    "create_secret": "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
    "hidden_in_second_statement": "SELECT 1; COPY (SELECT 1) TO '{lake}/x.csv'",
    "query_function": "SELECT * FROM query('CREATE TABLE t AS SELECT 1')",
}


@pytest.mark.parametrize("sql", WRITES.values(), ids=WRITES.keys())
def test_statements_that_write_are_refused(stored: Path, sql: str) -> None:
    before = sorted(stored.rglob("*"))
    with pytest.raises((QueryRefused, duckdb.ParserException)) as info:
        query(stored, sql.format(lake=stored))
    assert re.search(r"only SELECT|single SELECT", str(info.value))
    assert sorted(stored.rglob("*")) == before


@pytest.fixture
def escapes(stored: Path, tmp_path: Path) -> dict[str, str]:
    """Ways to name a file outside the lake: absolute, relative, '..', a symlink inside the lake."""
    secret = tmp_path / "secret.csv"
    secret.write_text("secret\n42\n")
    (stored / "things" / "link.csv").symlink_to(secret)
    (stored / "things" / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    return {
        "etc_passwd": "SELECT * FROM read_csv('/etc/passwd')",
        "relative": f"SELECT * FROM read_csv('{os.path.relpath(secret, project_root())}')",
        "dotdot": f"SELECT * FROM read_csv('{stored}/../secret.csv')",
        "symlink_file": f"SELECT * FROM read_csv('{stored}/things/link.csv')",
        "symlink_dir": f"SELECT * FROM read_csv('{stored}/things/dirlink/secret.csv')",
        "glob": f"SELECT * FROM glob('{tmp_path}/*')",
        "read_blob": "SELECT * FROM read_blob('/proc/self/environ')",
        "duckdb_tmp_dir": "SELECT * FROM read_csv('.tmp/anything.csv')",
    }


@pytest.mark.parametrize("case", ["etc_passwd", "relative", "dotdot", "symlink_file", "symlink_dir", "glob",
                                  "read_blob", "duckdb_tmp_dir"])
def test_reads_outside_the_lake_are_refused(stored: Path, escapes: dict[str, str], case: str) -> None:
    with pytest.raises(duckdb.PermissionException, match="reads only files inside the lake"):
        query(stored, escapes[case])


def test_reads_inside_the_lake_still_work(stored: Path) -> None:
    assert query(stored, "SELECT sum(v) AS s FROM things")["s"].item() == 6
    assert query(stored, f"SELECT count(*) AS n FROM read_parquet('{stored}/things/*/data.parquet')")["n"].item() == 3


def test_cli_refuses_with_a_clear_message(stored: Path, escapes: dict[str, str]) -> None:
    copy = cli_sql(stored, f"COPY (SELECT * FROM things) TO '{stored}/out.csv'")
    assert copy.returncode == 2 and "cpvae sql: only SELECT queries are allowed, got COPY" in copy.stderr
    passwd = cli_sql(stored, escapes["etc_passwd"], cwd=stored)
    assert passwd.returncode == 2
    assert "/etc/passwd" in passwd.stderr and f"reads only files inside the lake {stored}" in passwd.stderr
    assert "root:" not in passwd.stdout
    assert not (stored / "out.csv").exists()


# --------------------------------------------------------------------------- safe loading


def test_nothing_is_unpickled() -> None:
    """No pickle-based loader anywhere in the package (the lake holds Parquet, .keras, .npz, .h5ad)."""
    pattern = re.compile(r"\bpickle\b|allow_pickle\s*=\s*True|read_pickle|joblib\.load|torch\.load|safe_mode\s*=\s*False")
    offenders = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_pickled_npz_is_refused(tmp_path: Path) -> None:
    """np.load keeps allow_pickle=False: an object array (a pickle) in pca.npz fails, naming the file."""
    folder = tmp_path / "model"
    folder.mkdir()
    with open(folder / "pca.npz", "wb") as handle:
        np.savez(handle, components=np.array([{"evil": True}], dtype=object), mean=np.zeros(3),
                 explained_variance=np.ones(1), explained_variance_ratio=np.ones(1))
    with pytest.raises(ModelFileError, match=r"pca\.npz.*re-materialise"):
        PcaModel.load(folder)


def test_keras_model_with_code_is_refused_in_safe_mode(tmp_path: Path) -> None:
    """A .keras file with a Lambda layer (arbitrary Python) does not load."""
    import keras

    from cpvae_assets.models.latent import KerasModel

    x = keras.Input((4,))
    h = keras.layers.Lambda(lambda t: t * 2.0)(x)
    z = keras.Input((4,))
    for name, model in (("encoder.keras", keras.Model(x, [h, h])), ("decoder.keras", keras.Model(z, z))):
        model.save(tmp_path / name)
    with pytest.raises(ModelFileError, match=r"encoder\.keras.*(safe_mode|Lambda|lambda)"):
        KerasModel.load(tmp_path)


def test_an_encoder_and_decoder_of_different_saves_are_refused(tmp_path: Path) -> None:
    """A crash between the two renames leaves a mixed pair: ``pair.json`` makes loading refuse it."""
    import keras

    from cpvae_assets.models.latent import KerasModel

    def tiny(seed: int) -> KerasModel:
        keras.utils.set_random_seed(seed)
        x, z = keras.Input((4,)), keras.Input((2,))
        h = keras.layers.Dense(2)(x)
        return KerasModel(keras.Model(x, [h, h]), keras.Model(z, keras.layers.Dense(4)(z)))

    old, new = tmp_path / "old", tmp_path / "new"
    tiny(1).save(old)
    tiny(2).save(new)
    assert KerasModel.load(old).latent_dim == 2
    (new / "decoder.keras").replace(old / "decoder.keras")
    with pytest.raises(ModelFileError, match=r"not the pair pair\.json names"):
        KerasModel.load(old)


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 129, "naïve", "plate\n", ".hidden", "a b", "..", "/abs",
                                  "a\\b", "ＡＢＣ", "data\x00set"])
def test_unsafe_names_are_refused_before_they_become_paths(lake: Path, name: str) -> None:
    with pytest.raises(UnsafePathError, match="invalid dataset name"):
        check_name(name)
    with pytest.raises(UnsafePathError):
        landing_dir(lake, name)
    with pytest.raises(UnsafePathError):
        partition_dir(lake, "raw_profiles", "ok", name)


@pytest.mark.parametrize("name", ["a", "lincs_cp_plate", "L1000.v2-b", "x" * 128])
def test_plain_names_pass(name: str) -> None:
    assert check_name(name) == name


# --------------------------------------------------------------------------- downloads


@pytest.mark.parametrize("url", ["http://example.org/f.csv.gz", "ftp://example.org/f", "file:///etc/passwd",
                                 "gopher://x/", "http://127.0.0.1.evil.example/f", "//example.org/f",
                                 "http://127.0.0.1:8000/f", "http://localhost/f"])
def test_only_https_downloads(url: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="must use https"):
        fetch_file(ManifestEntry("a/f.csv.gz", "0" * 64, 10, url), tmp_path / "dest", progress=False)
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("url", ["https://media.githubusercontent.com/x", "https://127.0.0.1:8000/f"])
def test_https_is_allowed(url: str) -> None:
    assert check_url(url) == url


DATA = os.urandom(200_000)


def served_entry(script: Script, tls) -> tuple[ManifestEntry, object]:
    httpd, url = serve(script, tls)
    return ManifestEntry("a/file.csv.gz", hashlib.sha256(script.data).hexdigest(), len(script.data), url), httpd


@pytest.mark.parametrize("announce", [True, False], ids=["announced", "unannounced"])
def test_download_stops_at_the_declared_size(tmp_path: Path, announce: bool, tls_context) -> None:
    """A server that sends more than the manifest says is refused; the extra bytes are never stored."""
    script = Script(DATA, extra=b"X" * 5_000_000, announce_length=announce)
    entry, httpd = served_entry(script, tls_context)
    try:
        with pytest.raises(FetchError, match=r"more than the manifest's|announces"):
            fetch_file(entry, tmp_path / "dest", progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == []


def test_redirect_to_plain_http_is_refused(tmp_path: Path, tls_context) -> None:
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://example.org/file.csv.gz")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    httpd.socket = tls_context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        entry = ManifestEntry("a/f.csv.gz", "0" * 64, 10, f"https://127.0.0.1:{httpd.server_address[1]}/f")
        with pytest.raises(FetchError, match="example.org.*must use https"):
            fetch_file(entry, tmp_path / "dest", progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sha256_is_verified_before_the_file_is_moved_into_place(tmp_path: Path, tls_context) -> None:
    script = Script(DATA)
    entry, httpd = served_entry(script, tls_context)
    wrong = ManifestEntry(entry.path, hashlib.sha256(b"other").hexdigest(), entry.size_bytes, entry.url)
    try:
        with pytest.raises(FetchError, match="sha256"):
            fetch_file(wrong, tmp_path / "dest", progress=False)
        assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == []
        assert fetch_file(entry, tmp_path / "dest", progress=False).read_bytes() == DATA
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------- network exposure


def make_ui(*overrides: str) -> str:
    """The commands ``make ui`` would run (dry run: nothing starts)."""
    done = subprocess.run(["make", "-n", "ui", *overrides], cwd=project_root(), capture_output=True, text=True,
                          timeout=60, check=True)
    (line,) = [line for line in done.stdout.splitlines() if " dev " in line and "dg" in line]
    return line


def test_ui_binds_to_localhost_by_default() -> None:
    assert re.search(r"--host 127\.0\.0\.1(\s|$)", make_ui())


def test_ui_binds_elsewhere_only_when_asked() -> None:
    assert re.search(r"--host 0\.0\.0\.0(\s|$)", make_ui("HOST=0.0.0.0"))


def test_no_listener_in_the_package_binds_all_interfaces() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if re.search(r"0\.0\.0\.0|host\s*=\s*['\"]['\"]|INADDR_ANY", p.read_text())]
    assert offenders == []
