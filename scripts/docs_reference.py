"""MkDocs hook: the reference pages' tables and listings, generated from the code at build time.

A page asks for one with a line ``<!-- generated: NAME -->``:

- ``options``: every model and quality option (``rmbg_filter.options``, the one declaration) with its
  spelling in each adapter, default, values and help;
- ``cli-help``: ``rmbg-filter --help`` and each command's ``--help``, from the argparse definitions;
- ``vsrmbg``: vsrmbg's signatures and docstrings, read in the VapourSynth venv (``$RMBG_VS_PYTHON``, else
  ``.venv-vs/bin/python``, else this Python);
- ``gst-inspect``: ``gst-inspect-1.0 rmbg`` with the element on ``GST_PLUGIN_PATH``: properties, pads, caps.

A listing that cannot be made fails the build with one line saying what is missing (``mkdocs build`` raises
``PluginError``), so the published reference never silently lacks a part.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

from rmbg_filter.cli.main import FLAGS, build_parser
from rmbg_filter.errors import KEYWORDS, Mention
from rmbg_filter.options import ModelOptions, OptionSpec, all_specs, specs

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.M)
#: what vsrmbg's reference shows, printed by the VapourSynth venv's Python
VS_LISTING = """
import inspect, vsrmbg
for function in (vsrmbg.mask, vsrmbg.rmbg):
    print(f"vsrmbg.{function.__name__}{inspect.signature(function)}")
    print()
    print(inspect.getdoc(function))
    print()
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _values(spec: OptionSpec) -> str:
    if spec.choices:
        return ", ".join(f"`{choice}`" for choice in spec.choices)
    if spec.type is bool:
        return "on or off"
    if spec.minimum is not None:
        step = f", a multiple of {spec.multiple}" if spec.multiple else ""
        return f"{spec.minimum:g} to {spec.maximum:g}{step}"
    return spec.type.__name__


def options_table() -> str:
    """The one declaration as a table: option, CLI flag, vsrmbg keyword, element property, default, values, help."""
    rows = ["| option | `rmbg-filter` | `vsrmbg` / `load()` | `rmbg` element | default | values | what it does |",
            "|---|---|---|---|---|---|---|"]
    model_names = {spec.name for spec in specs(ModelOptions)}
    for spec in all_specs():
        kind = "model" if spec.name in model_names else "quality"
        mention = Mention(spec.name)
        rows.append(f"| {spec.name} ({kind}) | `{FLAGS.render(mention)}` | `{KEYWORDS.render(mention)}` | "
                    f"`{spec.name.replace('_', '-')}` | `{spec.default}` | {_values(spec)} | {_cell(spec.help)} |")
    return "\n".join(rows)


def cli_help() -> str:
    """The parser's help and each subcommand's, as text blocks under their own headings."""
    parser = build_parser()
    os.environ["COLUMNS"] = "100"
    sections = [f"### `rmbg-filter --help`\n\n```text\n{parser.format_help()}```"]
    commands = next(action for action in parser._actions if action.dest == "command")
    for name, command in commands.choices.items():
        sections.append(f"### `rmbg-filter {name} --help`\n\n```text\n{command.format_help()}```")
    return "\n\n".join(sections)


def _vs_python() -> str:
    for candidate in (os.environ.get("RMBG_VS_PYTHON"), ROOT / ".venv-vs" / "bin" / "python", sys.executable):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return sys.executable


def _run(command: list[str], env: dict[str, str], what: str, fix: str) -> str:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    except OSError as error:
        raise PluginError(f"docs: cannot make {what}: {error.strerror}: {command[0]}; {fix}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PluginError(f"docs: cannot make {what}: {last}; {fix}")
    return done.stdout


def vsrmbg_listing() -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins" / "vapoursynth")}
    text = _run([_vs_python(), "-c", VS_LISTING], env, "vsrmbg's reference",
                "run make setup (VapourSynth's venv) or set RMBG_VS_PYTHON")
    return f"```text\n{text.rstrip()}\n```"


def gst_inspect() -> str:
    with tempfile.TemporaryDirectory() as scratch:  # a registry of its own: the user's is left as it is
        env = {**os.environ, "GST_PLUGIN_PATH": str(ROOT / "plugins" / "gstreamer"), "VIRTUAL_ENV": sys.prefix,
               "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               "GST_REGISTRY": str(Path(scratch) / "registry.bin")}
        text = _run(["gst-inspect-1.0", "rmbg"], env, "the element's reference",
                    "install GStreamer's tools and Python plugin loader (make setup)")
    if "model-size" not in text:
        raise PluginError("docs: gst-inspect-1.0 lists rmbg without its model options: the element did not find "
                          "rmbg_filter; build the docs from the venv made by make setup")
    return f"```text\n{text.rstrip()}\n```"


GENERATORS = {"options": options_table, "cli-help": cli_help, "vsrmbg": vsrmbg_listing, "gst-inspect": gst_inspect}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs' hook: each ``<!-- generated: NAME -->`` line replaced by that listing."""
    def generated(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"docs: {page.file.src_path} asks for an unknown listing {name!r}; "
                              f"known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(generated, markdown)
