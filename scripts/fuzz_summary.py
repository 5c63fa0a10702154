"""Add up the fuzz cases of a ``make fuzz`` log: hypothesis's statistics, and the counts of fuzz loops run in
another Python (VapourSynth's), which print ``fuzz cases: N``.

    python scripts/fuzz_summary.py fuzz.log

Prints one row per test and the total; exit status 1 when the log shows a failed test or no cases.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_TEST = re.compile(r"^(tests/\S+::\S+):$")
_GENERATED = re.compile(r"during generate phase .*?(\d+) passing", re.S)
_ELSEWHERE = re.compile(r"^(tests/\S+::\S+).*?fuzz cases: (\d+)", re.M)


def counts(log: str) -> dict[str, int]:
    """Test id -> cases run (passing examples of the generate phase, or the count a subprocess printed)."""
    found: dict[str, int] = {}
    blocks = re.split(r"(?m)^(?=tests/\S+::\S+:$)", log)
    for block in blocks:
        name = _TEST.match(block.splitlines()[0]) if block.strip() else None
        generated = _GENERATED.search(block)
        if name and generated:
            found[name.group(1)] = int(generated.group(1))
    for match in _ELSEWHERE.finditer(log):
        found.setdefault(match.group(1), int(match.group(2)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    log = parser.parse_args().log.read_text(errors="replace")
    found = counts(log)
    width = max((len(name) for name in found), default=10)
    for name, count in sorted(found.items()):
        print(f"{name:<{width}}  {count:>6}")
    total = sum(found.values())
    print(f"{'total':<{width}}  {total:>6}")
    failed = re.search(r"\b\d+ (failed|errors?)\b", log) is not None
    return 1 if failed or not total else 0


if __name__ == "__main__":
    sys.exit(main())
