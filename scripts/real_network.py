"""A trained network of RMBG-1.4's architecture, and real photos to run it on.

RMBG-1.4's own weights cannot be fetched on this project's machines; IS-Net's can: the npm package
``@imgly/background-removal-data`` 1.4.5 ships it as ONNX files (``/models/medium``: float16 weights,
``/models/small``: dynamically quantized uint8), each stored as sha256-named chunks listed in
``dist/resources.json``. The package is fetched once with ``npm pack``, checked by sha256, and only the
reassembled model files are kept, outside the repository. Licences: the package's third-party notice
declares the model as ISNet (xuebinqin/DIS), MIT; the package itself is AGPL-3.0, so it is never committed.

Photos: scikit-image's bundled data (BSD).

Usage: python scripts/real_network.py [medium|small]   (prints the path of the cached ONNX file)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from rmbg_filter.digests import sha256_of

PACKAGE = "@imgly/background-removal-data@1.4.5"
PACKAGE_SHA256 = "ca7789abb39370727c9a098310b53bce41518d200000423c7107f8c01bbce946"
#: model name -> (resource in resources.json, size in bytes, sha256 of the reassembled file)
MODELS = {
    "medium": ("/models/medium", 88_188_479, "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"),
    "small": ("/models/small", 44_342_436, "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"),
}
#: real photos with a subject (scikit-image's data); astronaut and horse stay out: outside checks use them
PHOTOS = ("chelsea", "coffee", "rocket", "motorcycle_left", "camera", "coins")
TEXTURES = ("brick", "grass", "gravel")


class FetchError(Exception):
    """The network could not be fetched or checked; the message is one line that says what to do."""


def cache_folder() -> Path:
    """``$RMBG_ISNET_CACHE``, else ``~/.cache/rmbg-filter/imgly-background-removal-data-1.4.5``."""
    if os.environ.get("RMBG_ISNET_CACHE"):
        return Path(os.environ["RMBG_ISNET_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rmbg-filter" / "imgly-background-removal-data-1.4.5"


def isnet_onnx(name: str = "medium") -> Path:
    """The checked ONNX file of IS-Net ``name`` (medium or small), fetched into the cache on first use."""
    _, size, sha256 = MODELS[name]
    path = cache_folder() / f"isnet-{name}.onnx"
    if path.is_file() and path.stat().st_size == size and sha256_of(path) == sha256:
        return path
    _fetch_all()
    return path


def _fetch_all() -> None:
    """``npm pack`` the package, check it, and write every model of MODELS into the cache."""
    if shutil.which("npm") is None:
        raise FetchError("npm is not installed; install Debian's npm (apt-get install npm) to fetch the IS-Net weights")
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=folder) as name:
        scratch = Path(name)
        done = subprocess.run(["npm", "pack", "--silent", PACKAGE, "--pack-destination", str(scratch)],
                              capture_output=True, text=True, cwd=scratch)
        tarballs = list(scratch.glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            reason = (done.stderr.strip().splitlines() or ["no tarball written"])[-1]
            raise FetchError(f"npm pack {PACKAGE} failed ({reason}); check that the npm registry can be reached")
        if sha256_of(tarballs[0]) != PACKAGE_SHA256:
            raise FetchError(f"{PACKAGE} from npm does not have the expected sha256 {PACKAGE_SHA256}; not used")
        with tarfile.open(tarballs[0]) as archive:
            resources = json.load(archive.extractfile("package/dist/resources.json"))
            for model, (resource, size, sha256) in MODELS.items():
                partial = scratch / f"isnet-{model}.onnx"
                digest = hashlib.sha256()
                with partial.open("wb") as out:
                    for chunk in resources[resource]["chunks"]:
                        data = archive.extractfile(f"package/dist/{chunk['hash']}").read()
                        if hashlib.sha256(data).hexdigest() != chunk["hash"]:
                            raise FetchError(f"chunk {chunk['hash']} of {resource} does not match its name")
                        digest.update(data)
                        out.write(data)
                if partial.stat().st_size != size or digest.hexdigest() != sha256:
                    raise FetchError(f"{resource} reassembled is not the expected file (sha256 {sha256})")
                os.replace(partial, folder / partial.name)


def photo(name: str) -> np.ndarray:
    """A scikit-image photo or texture as (H,W,3) uint8 RGB (gray ones replicated)."""
    from skimage import data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = data.stereo_motorcycle()
        picture = left if name == "motorcycle_left" else right
    else:
        picture = getattr(data, name)()
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    return np.ascontiguousarray(picture[..., :3])


if __name__ == "__main__":
    try:
        print(isnet_onnx(sys.argv[1] if len(sys.argv) > 1 else "medium"))
    except FetchError as error:
        sys.exit(f"real_network: {error}")
