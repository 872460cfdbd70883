"""The code version stored with every result: package version and git commit, so a number in the
lake can be traced to the code that produced it."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata

from cpvae_assets.storage.paths import project_root

PACKAGE = "cpvae-assets"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(project_root()), *args], capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


@cache
def code_version() -> str:
    """``<package version>+g<commit>`` (``.dirty`` when the package's files differ from the commit),
    or the package version alone outside a git checkout. Computed once per process."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = _git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return version
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "cpvae_assets")
    return f"{version}+g{commit}{'.dirty' if dirty else ''}"
