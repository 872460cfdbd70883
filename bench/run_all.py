#!/usr/bin/env python
"""Run every benchmark in turn (``make bench``), each at full size unless ``--quick``; each updates its
own section of ``bench/results.md`` (the section it replaces goes to ``bench/history.md``).

    .venv/bin/python bench/run_all.py [--quick] [--only null,sql] [--skip-demo]

Full size takes about 30-40 minutes on a quiet 2-core machine, most of it the training throughput
(about 10 min), the demo memory measurement (``cpvae demo``, about 7 min) and the pipeline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# in this order: the cheap ones first, so a broken environment shows early
SCRIPTS = {
    "sql": ["sql_benchmark.py"],
    "null": ["null_benchmark.py"],
    "memory": ["memory.py", "--demo"],
    "growth": ["growth.py"],
    "pipeline": ["pipeline.py"],
    "throughput": ["train_throughput.py"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke sizes (each script's --quick)")
    parser.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated subset of: " + ",".join(SCRIPTS))
    parser.add_argument("--skip-demo", action="store_true", help="memory: do not run `cpvae demo`")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args(argv)
    failed = []
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        script, *extra = SCRIPTS[name]
        if args.skip_demo or args.quick:
            extra = [e for e in extra if e != "--demo"]
        command = [sys.executable, str(BENCH / script), *extra, *(["--quick"] if args.quick else []),
                   *(["--no-append"] if args.no_append else [])]
        print(f"\n==== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(command, cwd=BENCH.parent)
        print(f"==== {name}: exit {code} after {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("\nall benchmarks ran; results in bench/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
