"""The production instance (deploy/dagster.yaml) against a real PostgreSQL server.

The test starts its own server: ``initdb`` into a temporary folder, listening on 127.0.0.1 on a free
port with its unix socket in that folder, run as an unprivileged user when the tests run as root
(PostgreSQL refuses root). Two processes materialise two dataset partitions at the same time through
that instance; both runs must succeed and their runs and events must be in PostgreSQL. The server is
stopped and its folder removed whatever happens. Debian's ``postgresql`` package provides the
binaries (``.ci/run`` installs it); without them the test fails and says so, it does not skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from cpvae_assets.orchestration.partitions import dataset_partitions
from cpvae_assets.storage.paths import DATA_FILE, project_root
from cpvae_assets_tests.support.real_data import REAL_CP

PROJECT = project_root()
DATASETS = ("lincs_cp_plate", "plate_replica")
ASSETS = "raw_profiles,normalised_splits"


@dataclass(frozen=True)
class Server:
    port: int
    socket_dir: Path
    user: str = "dagster"
    database: str = "dagster"

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads (``trust`` auth: the password is not checked)."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": self.database,
                "DAGSTER_PG_USER": self.user, "DAGSTER_PG_PASSWORD": "unused"}

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=self.database)
        try:
            with con.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            con.close()


def server_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(found) and Path(found[0]).resolve().parent == Path(found[1]).resolve().parent:
        return Path(found[0]).resolve().parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's `postgresql` package "
                "(`apt-get install -y postgresql`; .ci/run does this on a fresh machine)", pytrace=False)


def server_user() -> str | None:
    """Who runs the server: None (ourselves) unless we are root, then `postgres` (the Debian package
    creates it) or `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.fail("running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL", pytrace=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[Server]:
    binaries, user = server_binaries(), server_user()
    folder = Path(tempfile.mkdtemp(prefix="cpvae-pg-"))  # not under pytest's tmp: the server user must reach it
    data, log = folder / "data", folder / "server.log"
    as_user = ["runuser", "-u", user, "--"] if user else []
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], check=False, capture_output=True, text=True, timeout=120)
        if done.returncode:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{server_log}")

    started = False
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust", "--encoding=UTF8",
            "--locale=C", "--no-sync")
        port = free_port()
        # -F: no fsync (a throwaway server); listen on 127.0.0.1 only, socket in our folder
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {port} -k {folder} -F", "start")
        started = True
        server = Server(port=port, socket_dir=folder)
        server_with_default_db = Server(port=port, socket_dir=folder, database="postgres")
        _create_database(server_with_default_db, server.database)
        yield server
    finally:
        if started:
            try:
                run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
            except RuntimeError as exc:
                print(f"stopping PostgreSQL failed: {exc}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)


def _create_database(admin: Server, name: str) -> None:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", port=admin.port, user=admin.user, dbname=admin.database)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()


def land_datasets(lake: Path) -> None:
    """The real Cell Painting plate under its registered name, and a copy described by a dataset.toml."""
    for dataset in DATASETS:
        folder = lake / "landing" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL_CP, folder / REAL_CP.name)
    (lake / "landing" / DATASETS[1] / "dataset.toml").write_text('extends = "lincs_cp_plate"\n')


def test_two_partitions_at_once_on_postgres(postgres: Server, lake: Path, tmp_path: Path) -> None:
    home = tmp_path / "pg_dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT / "deploy" / "dagster.yaml", home / "dagster.yaml")  # the production file, as is
    env = {**os.environ, **postgres.env(), "DAGSTER_HOME": str(home), "CPVAE_LAKE": str(lake),
           "CPVAE_EXECUTOR": "in_process", "TF_CPP_MIN_LOG_LEVEL": "2"}
    land_datasets(lake)

    os.environ.update(postgres.env())
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert instance.get_concurrency_config().pool_config.default_pool_limit is not None
            instance.add_dynamic_partitions(dataset_partitions.name, list(DATASETS))
    finally:
        for key in postgres.env():
            os.environ.pop(key, None)

    # two separate processes, as two machines would be: they share nothing but PostgreSQL and the lake
    cli = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "cpvae_assets.definitions",
           "--select", ASSETS]
    started = time.perf_counter()
    procs = {d: subprocess.Popen([*cli, "--partition", d], env=env, cwd=PROJECT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for d in DATASETS}
    outputs = {}
    try:
        for dataset, proc in procs.items():
            outputs[dataset], _ = proc.communicate(timeout=300)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for dataset, proc in procs.items():
        assert proc.returncode == 0, f"{dataset}: dagster asset materialize failed\n{outputs[dataset][-4000:]}"
    elapsed = time.perf_counter() - started

    runs = postgres.query("SELECT run_id, status, start_time, end_time FROM runs")
    assert len(runs) == 2 and {r[1] for r in runs} == {"SUCCESS"}, runs
    tags = dict(postgres.query("SELECT run_id, value FROM run_tags WHERE key = 'dagster/partition'"))
    assert sorted(tags.values()) == sorted(DATASETS)
    materialised = postgres.query(
        "SELECT asset_key, partition, run_id FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
    expected = {(f'["{asset}"]', dataset) for asset in ASSETS.split(",") for dataset in DATASETS}
    assert {(key, partition) for key, partition, _ in materialised} == expected
    assert {tags[run_id] for _, partition, run_id in materialised if run_id in tags} == set(DATASETS)
    steps = postgres.query("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_SUCCESS'")[0][0]
    assert steps == 4
    # the dynamic partitions live in PostgreSQL too
    assert {r[0] for r in postgres.query("SELECT partition FROM dynamic_partitions")} == set(DATASETS)
    # and the runs really were at the same time
    (s1, e1), (s2, e2) = [(r[2], r[3]) for r in runs]
    overlap = min(e1, e2) - max(s1, s2)
    print(f"two runs on PostgreSQL in {elapsed:.1f} s; overlap {overlap:.1f} s")
    for dataset in DATASETS:
        assert (lake / "normalised_splits" / f"dataset={dataset}" / DATA_FILE).is_file()
