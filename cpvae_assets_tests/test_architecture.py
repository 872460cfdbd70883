"""The layout's rules, checked on the source: the science does not import Dagster, the import graph
has no cycles, modules stay small, and the lake's file name is written in one place."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from cpvae_assets.storage.paths import DATA_FILE, project_root

PACKAGE = project_root() / "cpvae_assets"
DAGSTER_LAYERS = ("defs", "orchestration", "cli")


def _imports() -> dict[str, set[str]]:
    """Every import of every module of the package (at the top or inside functions)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(project_root()).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = found
    return graph


def test_only_the_dagster_layers_import_dagster() -> None:
    offenders = sorted(module for module, imports in _imports().items()
                       if any(i == "dagster" or i.startswith("dagster.") or i.startswith("dagster_") for i in imports)
                       and module.split(".")[1] not in DAGSTER_LAYERS and module != "cpvae_assets.definitions")
    assert offenders == []


def test_the_import_graph_has_no_cycles() -> None:
    graph = _imports()
    edges = {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                cycle.extend(trail[trail.index(nxt):] + [node, nxt] if nxt in trail else [node, nxt])
                return True
            if nxt not in state and visit(nxt, trail + [node]):
                return True
        state[node] = 2
        return False

    assert not any(visit(m, []) for m in sorted(edges) if m not in state), cycle


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 300} == {}


def test_the_data_file_name_is_written_once() -> None:
    literal = '"' + DATA_FILE + '"'  # built here, so this file does not hold the literal itself
    found = subprocess.run(["git", "grep", "-n", "-F", literal, "--", "cpvae_assets", "cpvae_assets_tests", "bench"],
                           cwd=project_root(), capture_output=True, text=True, check=False).stdout.splitlines()
    assert [line.split(":")[0] for line in found] == ["cpvae_assets/storage/paths.py"]


def test_collecting_the_tests_does_not_import_tensorflow() -> None:
    """TensorFlow imported at collection binds its logging to the first test's capture stream; a later
    Dagster run that logs to it then crashes the whole session ("lost sys.stderr")."""
    import sys

    probe = ("import sys, pytest; pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', 'cpvae_assets_tests']); "
             "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout[-2000:]
