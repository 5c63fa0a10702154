"""make bench's CPU table (scripts/cpu_bench.py), a slice: the host and the AVX2 class it emulates, the seed loop,
exact and fast, at model size 320, each in its own process on the real IS-Net."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from rmbg_filter import cpu_features

ROOT = Path(__file__).resolve().parents[1]


def test_the_table_names_the_cpu_and_dispatches_each_class(tmp_path: Path, isnet_medium: Path) -> None:
    out = tmp_path / "cpu.md"
    done = subprocess.run([sys.executable, "scripts/cpu_bench.py", "--classes", "native,avx2", "--modes", "fast",
                           "--model-size", "320", "--rounds", "1", "--no-knobs", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = out.read_text()
    host = cpu_features.detect()
    assert table.startswith(f"CPU: {host.describe()}\n")
    assert re.search(r"torch \S+, onnxruntime \S+, openvino \S+", table.splitlines()[1])
    rows = re.findall(r"^\| (native|avx2) \| (\w+)[^|]* \| ([^|]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+)x \|", table,
                      re.M)
    emulates_avx2 = host.flags != cpu_features.features_of(host.model, host.detected,
                                                           {"ONEDNN_MAX_CPU_ISA": "AVX2"}).flags
    classes = ["native", "avx2"] if emulates_avx2 else ["native"]
    assert [(row[0], row[1]) for row in rows] == [(name, mode) for name in classes
                                                  for mode in ("seed", "exact", "fast")]
    for name, mode, runs_as, seconds, _, _ in rows:
        assert float(seconds) > 0
        if name == "avx2" and mode == "fast":  # dispatched as on an AVX2-only CPU: never bfloat16
            assert runs_as.startswith("cpu, float32, onnxruntime (host ISA: not capped)"), runs_as
        if name == "avx2" and mode == "seed":
            assert runs_as == "seed loop (emulated)"
    if emulates_avx2:
        assert "- class avx2: ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ->" in table
    # errors against float32, and the budget, on the modes that have them
    errors = re.findall(r"^\| native \| fast [^\n]*\| ([\d.]+) \| (\d+) \| (\d+) \| (yes|no) \|$", table, re.M)
    assert len(errors) == 1
