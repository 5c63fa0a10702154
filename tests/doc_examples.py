"""The README's and the docs' examples as tests, collected by Sybil (conftest.py at the repository's root).

What runs, per fenced block of README.md and docs/**/*.md:

- ```` ```sh ````: one example; bash runs the page's ```` ```sh title="setup ..." ```` blocks from the repository
  root (as a user does after ``make setup``), then the block with ``set -e -o pipefail``, in a fresh folder (the
  ``doc_folder`` fixture: ``input.mp4`` of one frame with audio, ``photo.jpg``, ``beach.jpg``, an empty
  ``frames/``, the page's named files, RMBG-1.4 at ``~/models/RMBG-1.4`` and IS-Net at
  ``~/models/isnet-medium.onnx``). It must end with status 0 and leave at least one new file there. A README
  block that a docs page runs (its lines in one of the page's blocks, the named files it names in the page, all
  word for word) runs there, once.
- ```` ```python ````: one example, run by this Python in such a folder, status 0.
- ```` ```LANG title="NAME.EXT" ```` (e.g. ```` ```python title="cutout.vpy" ````, which MkDocs Material shows under
  its file name): a named file, written into every example's folder of that page; ```` ```text ```` and other
  blocks are not run.
- ``<!-- skip: next "why" -->`` before a block (Sybil's skip directive) leaves it out, e.g. ``make test`` itself;
  ``<!-- skip: next if(not cuda, reason="needs a CUDA GPU") -->`` runs it where a CUDA GPU is (``cuda`` is in
  every page's namespace).

A page's examples run in order in one pytest-xdist worker (its own group, as Sybil evaluates a page in order: a
skip directive and the example it skips must meet); a page with an example that starts a Ray cluster joins the
``ray`` group instead (two clusters at once would share ``~/.ray``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sybil import Document, Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

ROOT = Path(__file__).resolve().parents[1]
#: the pages, relative to the root (Path.match: a pattern matches from the right, hence the exclusion of the
#: READMEs of tests/fixtures and rmbg_filter/calibration, which are not documentation)
DOC_PATTERNS = ("README.md", "docs/*.md", "docs/*/*.md")
NOT_DOCS = ("*/README.md",)
#: a named file's fence: a language, then the file's name
NAMED = FencedCodeBlockLexer(language=r'\w+ title="[\w.-]+\.\w+"')
SETUP = FencedCodeBlockLexer(language=r'sh title="setup[^"]*"')
#: what an example's folder holds before it runs
INPUTS = ("input.mp4", "photo.jpg", "beach.jpg", "frames", "home")


@dataclass
class DocFolder:
    """Where one example runs (``path``), and its environment."""

    path: Path
    env: dict[str, str]


def make_folder(path: Path, checkpoints: dict[str, Path], isnet_medium: Path) -> DocFolder:
    """``path`` filled with the examples' inputs; the environment is an activated venv's (VIRTUAL_ENV, its bin
    folder on PATH, VapourSynth's too) with RMBG_MODEL (the deterministic weights) and HOME in ``path`` (so
    ``~/models`` is there)."""
    ffmpeg = "ffmpeg -v error -f lavfi"
    # one frame (each costs the network a 1024x1024 run here) and its 40 ms of audio
    subprocess.run(f"{ffmpeg} -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440 -t 0.04 "
                   "-c:v libx264 -pix_fmt yuv420p -c:a aac input.mp4", shell=True, cwd=path, check=True)
    for picture in ("photo.jpg", "beach.jpg"):
        subprocess.run(f"{ffmpeg} -i testsrc2=size=320x240 -frames:v 1 {picture}", shell=True, cwd=path, check=True)
    (path / "frames").mkdir()
    models = path / "home" / "models"
    (models / "RMBG-1.4").mkdir(parents=True)  # links, not copies: 170 MB a file
    for name in ("config.json", "model.safetensors"):
        (models / "RMBG-1.4" / name).symlink_to(checkpoints["published"] / name)
    (models / "RMBG-1.4" / "model.pth").symlink_to(checkpoints["pth"])
    (models / "isnet-medium.onnx").symlink_to(isnet_medium)
    vs_bin = Path(os.environ.get("RMBG_VS_PYTHON", ROOT / ".venv-vs" / "bin" / "python")).parent
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}:{vs_bin}",
           "VIRTUAL_ENV": sys.prefix, "RMBG_MODEL": str(checkpoints["pth"]), "HF_HUB_OFFLINE": "1",
           "HOME": str(path / "home")}
    return DocFolder(path, env)


def _page_blocks(document: Document, lexer: FencedCodeBlockLexer) -> list[tuple[str, str]]:
    """(info string, source) of every block ``lexer`` finds in ``document``."""
    return [(region.lexemes["language"], str(region.lexemes["source"])) for region in lexer(document)]


def _new_files(folder: DocFolder) -> set[str]:
    return ({p.name for p in folder.path.iterdir()} | {p.name for p in (folder.path / "frames").iterdir()}) - {
        *INPUTS}


def _written(example: Example, folder: DocFolder) -> set[str]:
    """Write the page's named files into ``folder``; their names."""
    names = set()
    for info, source in _page_blocks(example.document, NAMED):
        name = info.split('"')[1]
        (folder.path / name).write_text(source)
        names.add(name)
    return names


def _run_by_a_page(example: Example) -> bool:
    """Whether ``example`` is a README block that a docs page runs: a block of the page holds its lines word for
    word (whole lines, in order), and the page holds the named files the block names word for word too."""
    if Path(example.document.path).name != "README.md":
        return False
    source = str(example.parsed)
    named = {(info, body) for info, body in _page_blocks(example.document, NAMED) if info.split('"')[1] in source}
    for page in sorted((ROOT / "docs").rglob("*.md")):
        document = Document(page.read_text(), str(page))
        if named <= set(_page_blocks(document, NAMED)) and any(
                f"\n{source}" in f"\n{body}" for _, body in _page_blocks(document, FencedCodeBlockLexer("sh"))):
            return True
    return False


def run_shell(example: Example) -> str | None:
    """Sybil's evaluator of a ```sh block: None when it passed, else what went wrong."""
    if _run_by_a_page(example):
        return None
    folder: DocFolder = example.namespace["doc_folder"]
    named = _written(example, folder)
    setup = "\n".join(source for _, source in _page_blocks(example.document, SETUP))
    script = f"set -e -o pipefail\ncd {ROOT}\n{setup}\ncd {folder.path}\n{example.parsed}"
    done = subprocess.run(["bash", "-c", script], env=folder.env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return f"the block ended with status {done.returncode}:\n{done.stderr[-3000:]}"
    if not _new_files(folder) - named:
        return "the block ran but wrote no file"
    return None


def run_python(example: Example) -> str | None:
    """Sybil's evaluator of a ```python block: run by this Python in the example's folder."""
    folder: DocFolder = example.namespace["doc_folder"]
    _written(example, folder)
    done = subprocess.run([sys.executable, "-c", example.parsed], cwd=folder.path, env=folder.env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return f"the example ended with status {done.returncode}:\n{done.stderr[-3000:]}"
    return None


def _namespace(namespace: dict) -> None:
    """What a page's skip conditions may name: ``cuda``, whether a CUDA GPU is here."""
    import torch

    namespace["cuda"] = torch.cuda.is_available()


def doc_examples() -> Sybil:
    """The Sybil that collects README.md's and docs/'s examples."""
    return Sybil(parsers=[CodeBlockParser("sh", run_shell), CodeBlockParser("python", run_python), SkipParser()],
                 setup=_namespace, path=str(ROOT), patterns=list(DOC_PATTERNS), excludes=list(NOT_DOCS),
                 fixtures=["doc_folder"])


def group_examples(items: list[pytest.Item]) -> None:
    """Give each page's examples one pytest-xdist group: the page's path, or ``ray`` for a page with an example
    that runs ``--ray`` (a page that only mentions it keeps its own group)."""
    for item in items:
        example = getattr(item, "example", None)
        if example is not None:
            ray = any("--ray" in str(other.parsed) for other in example.document.examples())
            item.add_marker(pytest.mark.xdist_group("ray" if ray else example.document.path))
