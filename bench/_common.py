"""Shared by the benchmark scripts: the run header (date, machine, commit, load), memory readings, the
machine's float32 matrix-multiply peak, and the update of one section of ``bench/results.md``.

``results.md`` holds one section per benchmark with its latest run; a run replaces its own section
(between ``<!-- bench:KEY -->`` markers) and appends the section it replaces to ``history.md``, so
nothing measured is lost and the results file stays readable.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results.md"
HISTORY = BENCH / "history.md"
TITLE = "# Benchmark results\n\nLatest run of each benchmark (`bench/README.md` says how to run them); earlier runs are in `history.md`.\n"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    try:
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        mem_gb = f", {int(mem.split()[1]) / 1024**2:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        mem_gb = ""
    return f"{os.cpu_count()} CPUs ({cpu_model()}){mem_gb}, {platform.system()} {platform.machine()}"


def git_commit() -> str:
    """Short HEAD, plus a mark when the package's or the benchmarks' sources differ from it."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        if out.returncode != 0 or not out.stdout.strip():
            return "unknown"
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "cpvae_assets", "bench/*.py"], cwd=ROOT,
                               capture_output=True, timeout=10, check=False)
        return out.stdout.strip() + (" (working tree differs from it)" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


@dataclass
class Run:
    """The header of one benchmark run; ``finish`` adds the load at the end and the wall time."""

    command: str
    started: float = field(default_factory=time.perf_counter)
    when: str = field(default_factory=lambda: dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    load_start: str = field(default_factory=load)
    commit: str = field(default_factory=git_commit)
    extra: list[str] = field(default_factory=list)

    def header(self, finished: bool = True) -> str:
        lines = [f"date: {self.when}", f"machine: {machine()}", f"commit: {self.commit}",
                 f"python {platform.python_version()}", f"command: {self.command}",
                 f"load average (1, 5, 15 min) at start: {self.load_start}"]
        if finished:
            lines += [f"load average at end: {load()}", f"run time: {(time.perf_counter() - self.started) / 60:.1f} min"]
        return "\n".join(f"- {line}" for line in lines + self.extra)


def command_line(script: str) -> str:
    return " ".join([f"bench/{script}", *sys.argv[1:]])


# ---------------------------------------------------------------- memory


def proc_status_mb(name: str, pid: int | str = "self") -> float | None:
    """A memory field of /proc/<pid>/status (VmHWM: peak resident, VmRSS: resident now), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def proc_pss_mb(pid: int | str = "self") -> float | None:
    """Proportional set size of a process in MB (shared pages split among the processes that map them,
    so a tree's sum does not count TensorFlow's libraries once per process)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")) / 1024


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (their pids, from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def reset_peak_rss() -> bool:
    """Reset this process' VmHWM to its current RSS (``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Stage:
    """``with Stage(name, timings):`` records wall seconds, the peak RSS during the block (VmHWM after
    a reset; the whole process, so it includes what was resident before) and the RSS before it."""

    def __init__(self, name: str, sink: list[dict]):
        self.name, self.sink = name, sink

    def __enter__(self) -> Stage:
        self.rss_before = proc_status_mb("VmRSS")
        self.reset = reset_peak_rss()
        self.started = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        seconds = time.perf_counter() - self.started
        peak = proc_status_mb("VmHWM") if self.reset else maxrss_mb()
        self.sink.append({"stage": self.name, "seconds": round(seconds, 2),
                          "CPU cores used": round((time.process_time() - self.cpu) / max(seconds, 1e-9), 2),
                          "RSS before MB": round(self.rss_before or 0), "peak RSS MB": round(peak or 0)})


# ---------------------------------------------------------------- matmul peak


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-multiply rate: the best of ``repeats`` numpy (BLAS) n x n x n
    products, in GFLOP/s (2 n^3 flops each). A reference point, not a hard bound: it is what the
    installed BLAS reaches on all cores right now, under whatever else runs."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


# ---------------------------------------------------------------- results.md


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_section(key: str, title: str, body: str, path: Path = RESULTS) -> None:
    """Replace the section ``key`` of ``path`` (or add it at the end); the old one goes to history.md."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    section = f"{start}\n## {title}\n\n{body.strip()}\n{end}\n"
    text = path.read_text() if path.exists() else TITLE
    if start in text and end in text:
        before, rest = text.split(start, 1)
        old, after = rest.split(end, 1)
        history = path.with_name(HISTORY.name)
        with history.open("a") as out:
            if history.stat().st_size == 0:
                out.write("# Benchmark history\n\nEarlier runs, moved here from `results.md` when a newer run replaced them.\n")
            out.write("\n" + old.strip() + "\n")
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    print(f"\nsection '{key}' of {path} updated")


def publish(key: str, title: str, body: str, args) -> None:
    """Print a benchmark's result and, unless ``--no-append``, replace its section of the results file."""
    print("\n" + body)
    if not args.no_append:
        write_section(key, title + (" (quick)" if args.quick else ""), body, args.results)
