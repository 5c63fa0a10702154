"""The documentation site builds with --strict, its generated references hold what the code declares, and the
README keeps to what a newcomer reads. (Every example of the README and the docs runs as a test of its own:
tests/doc_examples.py, collected by Sybil.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rmbg_filter.options import all_specs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as make docs builds it (strict: a warning, a broken link or a missing page fails it)."""
    folder = tmp_path_factory.mktemp("site")
    done = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", str(folder)],
                          cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def page_text(site: Path, page: str) -> str:
    """The text of a built page, tags dropped."""
    return re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text())


def test_every_fence_renders_as_code(site: Path) -> None:
    """A fence whose info string MkDocs cannot read comes out as a paragraph of backticks (``sh setup`` did)."""
    broken = [str(page.relative_to(site)) for page in site.rglob("index.html") if "<p>```" in page.read_text()]
    assert broken == []


def test_the_options_reference_lists_every_option_in_every_spelling(site: Path) -> None:
    text = page_text(site, "reference/cli")
    for spec in all_specs():
        assert f"--{spec.name.replace('_', '-')}" in text and f"{spec.name}=" in text, spec.name
    for command in ("image", "pipe", "video", "batch"):
        assert f"rmbg-filter {command} --help" in text
    assert "--out-format" in text and "--preview" in text and "--ray" in text  # from the commands' own parsers


def test_the_element_and_vsrmbg_references_come_from_the_code(site: Path) -> None:
    element = page_text(site, "reference/gstreamer")
    for spec in all_specs():
        assert re.search(rf"^\s+{spec.name.replace('_', '-')}\s+:", element, flags=re.M), spec.name
    assert "SINK template" in element and "GRAY8" in element
    vs = page_text(site, "reference/vapoursynth")
    assert "vsrmbg.mask(clip:" in vs and "vsrmbg.rmbg(clip:" in vs and "reuse_threshold" in vs
    api = page_text(site, "reference/python")
    assert "rmbg_filter.load" in api and "QualityOptions" in api and "temporal_radius" in api


def test_the_readme_is_short_and_has_one_example_per_way_of_using_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for way in ("rmbg-filter pipe", "rmbg-filter video", "vspipe", "gst-launch-1.0", "rmbg_filter.load",
                "--ray"):
        assert way in readme, way
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link
