"""The real daemon path for the refresh tests: a fresh ``DAGSTER_HOME`` and lake, the webserver and the
daemon as two processes on 127.0.0.1 (so a test can kill the daemon alone), and helpers that wait on
runs and materialisations with a deadline. Everything started is stopped in ``close``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from cpvae_assets.storage.paths import PACKAGE_DATA, project_root

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 1.0):
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception as exc:  # the SQLite storage busy with the daemon's writes: ask again
            value, last = None, exc
        else:
            last = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last})" if last else ""))
        time.sleep(every)


@dataclass
class Daemon:
    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    port: int = 0

    @property
    def lake(self) -> Path:
        return Path(self.env["CPVAE_LAKE"])

    @property
    def home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @classmethod
    def create(cls, root: Path, **env: str) -> Daemon:
        home, lake = root / "dagster_home", root / "lake"
        home.mkdir(parents=True)
        lake.mkdir()
        shutil.copyfile(project_root() / "deploy" / "dagster.local.yaml", home / "dagster.yaml")
        full = {**os.environ, "DAGSTER_HOME": str(home), "CPVAE_LAKE": str(lake), "TF_CPP_MIN_LOG_LEVEL": "3", **env}
        full.pop("CPVAE_EXECUTOR", None)
        daemon = cls(root, full)
        with dg.DagsterInstance.from_config(str(home)):  # create the storage before two processes race to
            pass
        return daemon

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.root / f"{name}.log", "a")
        self.processes[name] = subprocess.Popen(command, cwd=project_root(), env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, webserver: bool = True) -> Daemon:
        workspace = str(project_root() / "workspace.yaml")
        if webserver:
            self.port = free_port()
            self._start("webserver", [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                                      "-p", str(self.port)])
        self.start_daemon()
        if webserver:
            wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info", timeout=5),
                     240, "the webserver")
        return self

    def start_daemon(self) -> None:
        self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(project_root() / "workspace.yaml")])
        with self.instance() as instance:  # its sensor loop has run once: the sensors have their cursors
            wait_for(lambda: instance.get_daemon_heartbeats().get("SENSOR"), 240, "the daemon's sensor loop")

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def close(self) -> None:
        for name in list(self.processes):
            process = self.processes.pop(name)
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text()[-4000:] if path.exists() else ""

    # ---------------------------------------------------------------- data and runs
    def drop(self, dataset: str, source: Path, rows: int | None = None, name: str | None = None) -> Path:
        """A profile file into ``landing/<dataset>/``, written beside and renamed (the sensor never sees
        half a file); ``rows`` keeps the first rows only, as CSV."""
        import pandas as pd

        folder = self.lake / "landing" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (name or (source.name if rows is None else "plate.csv"))
        tmp = folder / f".{target.name}.part"
        if rows is None:
            shutil.copyfile(source, tmp)
        else:
            pd.read_csv(source, dtype=str).head(rows).to_csv(tmp, index=False)
        os.replace(tmp, target)
        return target

    def runs(self, **filters) -> list[dg.DagsterRun]:
        with self.instance() as instance:
            return list(instance.get_runs(dg.RunsFilter(**filters)))

    def materialisations(self, asset: str, partition: str | None = None) -> list[dg.EventLogRecord]:
        with self.instance() as instance:
            return list(instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
                limit=1000).records)

    def run_worker_pid(self, run_id: str) -> int | None:
        """The pid of a run's worker process, from the engine event that announced it."""
        from cpvae_assets.defs.failures import run_worker_pid

        with self.instance() as instance:
            return run_worker_pid(instance, run_id)

    def failures(self) -> str:
        """Each run that did not succeed: its job, status and the first error of its event log."""
        lines = []
        with self.instance() as instance:
            for run in instance.get_runs():
                if run.is_success:
                    continue
                errors = [e for e in instance.all_logs(run.run_id) if e.is_dagster_event and
                          e.dagster_event.event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE)]
                detail = errors[0].dagster_event.message if errors else "no failure event"
                lines.append(f"{run.job_name} {run.tags.get('dagster/partition', '')} {run.status.value}: {detail}")
        return "\n".join(lines)

    def settled(self) -> bool:
        """No run queued, starting or in progress."""
        active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                  dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
        return not self.runs(statuses=active)


REAL_CP_PLATE = PACKAGE_DATA / "real" / "lincs_cellpainting_plate_SQ00015054.csv.gz"


# ---------------------------------------------------------------- the plan of one plate's refresh
PLAN_DATASET = "lincs_cp_plate"
WELLS = 120  # a fifth of the real plate: enough to train and split, small enough to keep the tests short
TIMEOUT = 600


def expected(model_types: list[str], dataset: str = PLAN_DATASET) -> set[tuple[str, str]]:
    """(asset, partition) of every materialisation a refresh of ``dataset`` makes."""
    from cpvae_assets.defs.jobs import DATASET_ASSETS, MODEL_ASSETS, REPORT_ASSETS

    keys = {(a, dataset) for a in (*DATASET_ASSETS, *REPORT_ASSETS)}
    return keys | {(a, f"{dataset}|{m}") for a in MODEL_ASSETS for m in model_types}


def materialised(daemon: Daemon, keys: set[tuple[str, str]]) -> Counter:
    return Counter({key: len(daemon.materialisations(*key)) for key in keys})


def refreshed(daemon: Daemon, keys: set[tuple[str, str]]) -> bool:
    return all(materialised(daemon, keys).values()) and daemon.settled()
