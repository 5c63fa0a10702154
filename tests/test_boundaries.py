"""The package's boundaries: the core below the command line and the plugins, and what each import costs.

The import rule is ruff's banned-api (TID251), set in ``rmbg_filter/ruff.toml`` and
``plugins/ruff.toml``; ``make test`` runs ruff on the tree. Here the rule is shown to
catch what it forbids, the project's modules are shown to import one another without a
circle (imports inside functions included), and the light entry points are shown to load no torch.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import CLI

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


def lint(path: str, source: str) -> str:
    """ruff's findings for ``source`` as if it were the file ``path`` of this repository."""
    done = subprocess.run([str(RUFF), "check", "--no-cache", "--stdin-filename", path, "-"], input=source,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    return done.stdout


@pytest.mark.parametrize(("path", "source", "banned"), [
    ("rmbg_filter/probe.py", "from .cli.video import VideoJob\n", "rmbg_filter.cli"),
    ("rmbg_filter/probe.py", "from rmbg_filter.cli import main\n", "rmbg_filter.cli"),
    ("rmbg_filter/probe.py", "import av\n", "av"),
    ("rmbg_filter/probe.py", "from gi.repository import Gst\n", "gi"),
    ("rmbg_filter/probe.py", "import vapoursynth\n", "vapoursynth"),
    ("plugins/gstreamer/python/probe.py", "from rmbg_filter.cli.image import remove_background_from_image\n",
     "rmbg_filter.cli"),
    ("plugins/vapoursynth/vsrmbg/probe.py", "import rmbg_filter.cli.main\n", "rmbg_filter.cli"),
])
def test_the_import_rule_catches_what_it_forbids(path: str, source: str, banned: str) -> None:
    assert f"TID251 `{banned}` is banned" in lint(path, source)


@pytest.mark.parametrize("path", ["rmbg_filter/cli/probe.py", "tests/probe.py"])
def test_the_command_line_and_tests_may_import_the_command_line_and_pyav(path: str) -> None:
    assert "TID251" not in lint(path, "import av\n\nfrom rmbg_filter.cli.main import main\n\nprint(av, main)\n")


#: the folders whose modules make up the project's own import graph
SOURCES = (ROOT / "rmbg_filter", ROOT / "plugins")


def module_files(folders: tuple[Path, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``folders``; a module's name starts at the highest
    folder above it that holds an ``__init__.py`` (``plugins/vapoursynth/vsrmbg/x.py`` is ``vsrmbg.x``), and
    a file outside any package is a top-level module (the GStreamer plugin file ``rmbg``)."""
    modules = {}
    for folder in folders:
        for path in folder.rglob("*.py"):
            parts = [path.stem] if path.stem != "__init__" else []
            parent = path.parent
            while (parent / "__init__.py").is_file():
                parts.insert(0, parent.name)
                parent = parent.parent
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project's modules it imports anywhere in its text (top level, inside functions, under
    TYPE_CHECKING). ``from package import name`` counts as importing ``package.name`` when that is a module.
    A package's ``__init__``, which Python runs before any of its modules, is an edge only when named."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (each holds at least one circle), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_circle_check_finds_a_circle_through_a_lazy_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (package / "d.py").write_text("from . import a\n")
    graph = import_graph(module_files((package,)))
    assert graph["pkg.d"] == {"pkg.a"}
    assert circles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_the_project_imports_without_a_circle() -> None:
    graph = import_graph(module_files(SOURCES))
    assert {"rmbg_filter.engine", "rmbg_filter.cli.batch", "vsrmbg"} <= set(graph)  # the tree is read right
    assert "rmbg_filter.cli.batch_jobs" in graph["rmbg_filter.cli.batch_ray"]
    assert circles(graph) == []


def imported_modules(command: list[str]) -> set[str]:
    """The top-level modules a command imports, from Python's own ``-X importtime`` report."""
    done = subprocess.run(command, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("command", [
    [str(CLI), "--help"],
    [str(CLI), "video", "--help"],
    [sys.executable, "-c", "import rmbg_filter; from rmbg_filter import ModelOptions, OptionError"],
])
def test_light_entry_points_load_no_torch(command: list[str]) -> None:
    modules = imported_modules(command)
    assert "rmbg_filter" in modules  # the report is read right
    assert not modules & {"torch", "transformers"}


def test_the_engine_loads_torch_when_asked_for_and_never_transformers(checkpoints: dict[str, Path]) -> None:
    """transformers costs about 2.5 s of every start: only ``rmbg_filter.BriaRMBG``, the Hub class's drop-in,
    imports it; loading a Hub-layout directory does not."""
    modules = imported_modules([sys.executable, "-c", "import sys; from rmbg_filter import load; "
                                "load(sys.argv[1], model_size=64, runtime='torch')", str(checkpoints["published"])])
    assert "torch" in modules
    assert "transformers" not in modules
