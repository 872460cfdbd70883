"""Shared by the reliability, bad-input and security tests: tree hashes, child processes that
materialise assets (and can be paused before a rename, then SIGKILLed), and a small HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from cpvae_assets.storage.paths import project_root
from cpvae_assets.storage.tables import atomic_path
from cpvae_assets_tests.support.real_data import REAL_CP

PLATE = "lincs_cp_plate"

# what a killed writer may leave: hidden names no view glob or loader picks up
LEFTOVER = re.compile(r"(^|/)\.[^/]+\.(tmp-[0-9a-f]{32}[^/]*|staged-[0-9a-f]{32})$")

# Every child starts with this: a rename onto a path containing $CPVAE_TEST_PAUSE_BEFORE_RENAME first
# writes the source path to $CPVAE_TEST_PAUSE_MARKER, then sleeps, so the test can SIGKILL the child
# exactly between "fully written" and "renamed into place" (the product has no hook for this).
PAUSE_ENV, PAUSE_MARKER_ENV = "CPVAE_TEST_PAUSE_BEFORE_RENAME", "CPVAE_TEST_PAUSE_MARKER"
PAUSE_PRELUDE = f"""
import os as _os, time as _time
_replace = _os.replace
def _pausing_replace(src, dst, *args, **kwargs):
    pattern = _os.environ.get("{PAUSE_ENV}")
    if pattern and pattern in str(dst):
        with open(_os.environ["{PAUSE_MARKER_ENV}"], "w") as marker:
            marker.write(str(src))
        _time.sleep(300)
    return _replace(src, dst, *args, **kwargs)
_os.replace = _pausing_replace
"""

# materialise a selection of per-dataset assets for one partition, on $DAGSTER_HOME, into $CPVAE_LAKE
MATERIALISE = """
import sys
import dagster as dg
from cpvae_assets.definitions import defs
dataset, selection = sys.argv[1], sys.argv[2].split(",")
instance = dg.DagsterInstance.get()
if dataset not in instance.get_dynamic_partitions("dataset"):
    instance.add_dynamic_partitions("dataset", [dataset])
result = dg.materialize(list(defs.assets), selection=selection, partition_key=dataset, instance=instance,
                        resources=defs.resources, raise_on_error=False)
print("success" if result.success else "failed", flush=True)
sys.exit(0 if result.success else 1)
"""


def tree(root: Path, skip: tuple[str, ...] = ("dagster_home",), hidden: bool = False) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (hidden files only if asked)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or not path.is_file():
            continue
        if not hidden and any(part.startswith(".") for part in rel.parts):
            continue
        out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """``folder`` as a tmpfs of ``size`` for the block: a disk small enough to fill. Mounting needs root
    (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs as the lake: run it as root (CI does)", pytrace=False)
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_disk(folder: Path, leave: int = 16_384) -> Path:
    """Fill the disk holding ``folder`` but for ``leave`` bytes (less than a table or model file, more than
    a failure line); returns the filler file."""
    free = os.statvfs(folder)
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(0, free.f_bavail * free.f_frsize - leave))
    return filler


def hidden_leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if "dagster_home" not in p.parts)


def land_plate(lake: Path, rows: int | None = None, dataset: str = PLATE) -> Path:
    """The real Cell Painting plate in the landing folder (replacing an earlier one); ``rows`` keeps
    only the first rows (as CSV). A dataset other than the plate's gets a ``dataset.toml`` naming it."""
    folder = lake / "landing" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    for old in (folder / REAL_CP.name, folder / "plate.csv"):
        old.unlink(missing_ok=True)
    if dataset != PLATE:
        (folder / "dataset.toml").write_text(f'extends = "{PLATE}"\n')
    if rows is None:
        target = folder / REAL_CP.name
        target.write_bytes(REAL_CP.read_bytes())
        return target
    target = folder / "plate.csv"
    with atomic_path(target) as tmp:  # a sensor or reader never sees half a file
        pd.read_csv(REAL_CP, dtype=str).head(rows).to_csv(tmp, index=False)
    return target


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_ENV, PAUSE_MARKER_ENV)}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    return env


def start_child(code: str, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PAUSE_PRELUDE + code, *args], cwd=project_root(), env=child_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run_child(code: str, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=project_root(), env=child_env(**env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def kill_when_paused(child: subprocess.Popen, marker: Path, timeout: float = 180) -> Path:
    """Wait until the child pauses before a rename (it writes the temporary path to ``marker``), then
    SIGKILL it. Returns the temporary file it was about to rename."""
    deadline = time.monotonic() + timeout
    while not (marker.exists() and marker.read_text()):
        if child.poll() is not None:
            out, err = child.communicate()
            raise AssertionError(f"child ended (rc {child.returncode}) before pausing:\n{out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("child never reached the pause point")
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return Path(marker.read_text())


def pause_env(pattern: str, marker: Path) -> dict[str, str]:
    return {PAUSE_ENV: pattern, PAUSE_MARKER_ENV: str(marker)}


# --------------------------------------------------------------------------- a scripted HTTP server


@dataclass
class Script:
    """What the server does: ``fail_first`` requests get ``fail_status``; ``stall_after`` bytes of a
    body are sent and then the handler waits (until ``release`` is set); ``extra`` bytes are appended
    beyond the real file; without ``announce_length`` no Content-Length is sent (body until close)."""

    data: bytes
    fail_first: int = 0
    fail_status: int = 503
    drop_first: int = 0  # then this many responses stop halfway and close the connection
    stall_after: int | None = None
    extra: bytes = b""
    announce_length: bool = True
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str | None, int]] = field(default_factory=list)


def serve(script: Script, tls: ssl.SSLContext) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start an https server for ``script`` on 127.0.0.1 (``tls``: the conftest's ``tls_context``);
    returns it and the file's URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            if len(script.requests) < script.fail_first:
                script.requests.append((range_header, script.fail_status))
                self.send_error(script.fail_status)
                return
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1)) if range_header else 0
            body = script.data[start:] + script.extra
            status = 206 if start else 200
            script.requests.append((range_header, status))
            self.send_response(status)
            if script.announce_length:
                self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(script.data) - 1}/{len(script.data)}")
            self.end_headers()
            if len(script.requests) <= script.fail_first + script.drop_first:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if script.stall_after is not None and not range_header:
                self.wfile.write(body[: script.stall_after])
                self.wfile.flush()
                script.release.wait(60)
                return
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return httpd, f"https://127.0.0.1:{httpd.server_address[1]}/file.csv.gz"
