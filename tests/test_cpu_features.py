"""The CPU's features as torch will use them, and what the backend makes of them.

``cpu_features`` reads flags from /proc/cpuinfo texts of the hosts this project has run on (AMD
Zen 3: AVX2 only; AMD Zen 4: avx512_bf16 and avx512_vnni; Intel Xeon: AMX) and caps them by
ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY. bfloat16 asked for where it is emulated still runs,
with one warning worded for each adapter; ``-v`` shows the engine's choice on the command line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from PIL import Image

from rmbg_filter import cpu_features, onnx_runtime, openvino_runtime
from rmbg_filter.backend import Backend, fast_path
from rmbg_filter.cli.main import FLAGS, build_parser
from rmbg_filter.cpu_features import CpuFeatures, features_of, parse_cpuinfo
from rmbg_filter.errors import KEYWORDS, OptionError, Spelling

_COMMON = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht "
           "syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid tsc_known_freq pni pclmulqdq "
           "ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm "
           "fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt "
           "xsavec xgetbv1 arat umip vaes vpclmulqdq rdpid fsrm")
_AVX512 = "avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512vbmi avx512_vbmi2 gfni avx512_bitalg"


def cpuinfo(model: str, flags: str) -> str:
    """A /proc/cpuinfo text of two processors (the first one counts)."""
    one = (f"processor\t: {{n}}\nvendor_id\t: x\ncpu family\t: 25\nmodel name\t: {model}\nstepping\t: 1\n"
           f"flags\t\t: {flags}\nbugs\t\t: sysret_ss_attrs\nbogomips\t: 4899.99\n\n")
    return one.format(n=0) + one.format(n=1)


ZEN3 = cpuinfo("AMD EPYC 7B13 64-Core Processor", f"{_COMMON} cmp_legacy sse4a misalignsse clzero wbnoinvd")
ZEN4 = cpuinfo("AMD EPYC 9B14 96-Core Processor", f"{_COMMON} {_AVX512} avx512_bf16 avx512_vnni avx512_vpopcntdq")
XEON = cpuinfo("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
               f"{_COMMON} {_AVX512} avx_vnni avx512_bf16 avx512_vnni serialize amx_bf16 avx512_fp16 amx_tile amx_int8")
XEON_ALL = "avx2 avx512f avx_vnni avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16"


def features(text: str, **environ: str) -> CpuFeatures:
    return features_of(*parse_cpuinfo(text), environ)


def test_cpuinfo_gives_the_first_processors_model_and_flags() -> None:
    model, flags = parse_cpuinfo(ZEN3)
    assert model == "AMD EPYC 7B13 64-Core Processor"
    assert {"avx2", "fma", "sse4_2"} <= flags and "avx512f" not in flags
    assert parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16\nCPU part\t: 0xd4f\n") == ("unknown CPU", None)


@pytest.mark.parametrize(("text", "shown", "native_bf16", "vnni", "amx", "aten"), [
    (ZEN3, "avx2", False, False, False, "avx2"),
    (ZEN4, "avx2 avx512f avx512_vnni avx512_bf16", True, True, False, "avx512"),
    (XEON, XEON_ALL, True, True, True, "avx512"),
], ids=["zen3", "zen4", "xeon"])
def test_each_hosts_features(text: str, shown: str, native_bf16: bool, vnni: bool, amx: bool, aten: str) -> None:
    found = features(text)
    assert found.detected == found.flags == frozenset(shown.split())
    assert (found.native_bf16, found.vnni, found.amx, found.aten, found.caps) == (native_bf16, vnni, amx, aten, ())


@pytest.mark.parametrize(("environ", "left", "aten", "caps"), [
    ({"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}, "avx2", "avx2",
     ("ONEDNN_MAX_CPU_ISA=AVX2", "ATEN_CPU_CAPABILITY=avx2")),
    ({"ONEDNN_MAX_CPU_ISA": "avx2"}, "avx2", "avx512", ("ONEDNN_MAX_CPU_ISA=avx2",)),  # oneDNN: any case
    ({"ONEDNN_MAX_CPU_ISA": " Avx2_Vnni "}, "avx2 avx_vnni", "avx512", ("ONEDNN_MAX_CPU_ISA=Avx2_Vnni",)),
    ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, "", "avx512", ("ONEDNN_MAX_CPU_ISA=SSE41",)),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "avx2 avx512f", "avx512", ("ONEDNN_MAX_CPU_ISA=AVX512_CORE",)),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "avx2 avx512f avx512_vnni", "avx512",
     ("ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI",)),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "avx2 avx512f avx512_vnni avx512_bf16", "avx512",
     ("ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16",)),
    ({"ONEDNN_MAX_CPU_ISA": "AVX10_1_512"}, "avx2 avx512f avx_vnni avx512_vnni avx512_bf16", "avx512",
     ("ONEDNN_MAX_CPU_ISA=AVX10_1_512",)),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, XEON_ALL, "avx512", ()),  # the whole Xeon: nothing removed
    ({"ONEDNN_MAX_CPU_ISA": "avx10_1_512_amx_fp16"}, XEON_ALL, "avx512", ()),
    ({"ONEDNN_MAX_CPU_ISA": "DEFAULT"}, XEON_ALL, "avx512", ()),
    ({"ONEDNN_MAX_CPU_ISA": "ALL"}, XEON_ALL, "avx512", ()),
    ({"ONEDNN_MAX_CPU_ISA": "AVX3"}, XEON_ALL, "avx512", ()),  # unknown: no cap, as oneDNN ignores it
    ({"DNNL_MAX_CPU_ISA": "AVX2"}, "avx2", "avx512", ("DNNL_MAX_CPU_ISA=AVX2",)),  # oneDNN's older name
    ({"ONEDNN_MAX_CPU_ISA": "ALL", "DNNL_MAX_CPU_ISA": "AVX2"}, XEON_ALL, "avx512", ()),  # the new name first
    ({"ONEDNN_MAX_CPU_ISA": "", "DNNL_MAX_CPU_ISA": "AVX2"}, "avx2", "avx512", ("DNNL_MAX_CPU_ISA=AVX2",)),
    ({"ATEN_CPU_CAPABILITY": "avx2"}, XEON_ALL, "avx2", ("ATEN_CPU_CAPABILITY=avx2",)),  # ATen's kernels only
    ({"ATEN_CPU_CAPABILITY": "default"}, XEON_ALL, "default", ("ATEN_CPU_CAPABILITY=default",)),
    ({"ATEN_CPU_CAPABILITY": "avx512"}, XEON_ALL, "avx512", ()),
    ({"ATEN_CPU_CAPABILITY": "AVX2"}, XEON_ALL, "avx512", ()),  # torch compares case-sensitively: ignored
    ({"ATEN_CPU_CAPABILITY": "sse"}, XEON_ALL, "avx512", ()),  # unknown: ignored, as torch does
])
def test_the_environment_caps_the_xeon(environ: dict[str, str], left: str, aten: str, caps: tuple[str, ...]) -> None:
    found = features(XEON, **environ)
    assert found.detected == frozenset(XEON_ALL.split())
    assert (found.flags, found.aten, found.caps) == (frozenset(left.split()), aten, caps)
    assert found.native_bf16 == bool({"avx512_bf16", "amx_bf16"} & set(left.split()))
    assert found.amx == ("amx_tile" in left)


def test_the_issues_cap_makes_every_host_an_avx2_one() -> None:
    """ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2: no native bfloat16, no VNNI, no AMX anywhere."""
    for text in (ZEN3, ZEN4, XEON):
        found = features(text, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
        assert (found.flags, found.aten) == (frozenset({"avx2"}), "avx2")
        assert (found.native_bf16, found.vnni, found.amx) == (False, False, False)


def test_describe_is_one_short_line() -> None:
    assert features(ZEN3).describe() == "AMD EPYC 7B13 64-Core Processor (avx2)"
    assert features(ZEN4, ONEDNN_MAX_CPU_ISA="AVX2").describe() == (
        "AMD EPYC 9B14 96-Core Processor (avx2 avx512f avx512_vnni avx512_bf16; ONEDNN_MAX_CPU_ISA=AVX2 caps it to "
        "avx2)")
    assert features(XEON, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2").describe() == (
        f"Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz ({XEON_ALL}; ONEDNN_MAX_CPU_ISA=AVX2 caps it to avx2; "
        "ATEN_CPU_CAPABILITY=avx2 caps ATen's kernels to avx2)")
    assert features(cpuinfo("Old", "fpu sse sse2"), ONEDNN_MAX_CPU_ISA="SSE41").describe() == (
        "Old (none of avx2, avx512f, avx_vnni, avx512_vnni, avx512_bf16, amx_tile, amx_int8, amx_bf16)")
    unknown = features_of("arm", None, {"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert (unknown.native_bf16, unknown.vnni, unknown.amx, unknown.aten) == (None, None, None, None)
    assert unknown.describe().startswith("arm (CPU flags not known on ")


def test_this_host_as_torch_sees_it() -> None:
    """detect() on the real host agrees with its /proc/cpuinfo; under the issue's cap it has no native bfloat16,
    and torch's own oneDNN agrees (its False is the answer it gives honestly)."""
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo: the flags are not known here")
    _, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    capped = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    plain = {name: value for name, value in os.environ.items()
             if name not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
    probe = ("from rmbg_filter import cpu_features as c; f = c.detect(); "
             "print(f.native_bf16, c.torch_bf16_supported(), f.describe())")
    answers = {}
    for name, environ in (("plain", plain), ("capped", capped)):
        done = subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        answers[name] = done.stdout.split(" ", 2)
    assert answers["plain"][0] == str(bool(flags & {"avx512_bf16", "amx_bf16"}))
    if answers["plain"][0] == "True":
        assert answers["plain"][1] == "True"  # native by the flags: torch's oneDNN runs bfloat16 too
    assert answers["capped"][:2] == ["False", "False"]


def test_importing_it_loads_no_torch() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, rmbg_filter.cpu_features as c; c.detect(); "
                           "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


ZEN3_FEATURES = features(ZEN3)
ZEN4_FEATURES = features(ZEN4)
EMULATED_ON_ZEN3 = ("rmbg-filter: dtype='bfloat16' is emulated on this CPU, several times slower than float32; use "
                    "dtype='float32' (native bfloat16 needs avx512_bf16 or amx_bf16: this CPU has neither; -v names "
                    "the CPU's features)")


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Backend.choose on a faked CPU: set ``detect`` and torch's answer with ``host.setattr(cpu_features, ...)``."""
    monkeypatch.setattr(cpu_features, "torch_bf16_supported", lambda: None)
    return monkeypatch


def bf16_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "rmbg_filter.backend"]


def test_emulated_bfloat16_still_runs_with_one_warning(host: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    host.setattr(cpu_features, "detect", lambda: ZEN3_FEATURES)
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        chosen = Backend.choose(device="cpu", dtype="bfloat16")
    assert (chosen.device, chosen.dtype, chosen.runtime) == (torch.device("cpu"), torch.bfloat16, "torch")
    (record,) = bf16_warnings(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == EMULATED_ON_ZEN3  # Python's and vsrmbg's words
    worded = record.msg.worded(FLAGS)
    assert worded.startswith("rmbg-filter: --dtype bfloat16 is emulated on this CPU, several times slower than "
                             "float32; use --dtype float32 (")
    gst = Spelling(name="the {name} property", assignment="{name}={value}", separator="-")  # the element's
    assert "; use dtype=float32 (" in record.msg.worded(gst)
    assert record.msg.worded(KEYWORDS) == EMULATED_ON_ZEN3


@pytest.mark.parametrize("dtype", ["float32", "auto"])
def test_float32_on_an_avx2_cpu_says_nothing(dtype: str, host: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    host.setattr(cpu_features, "detect", lambda: ZEN3_FEATURES)
    with caplog.at_level(logging.INFO, "rmbg_filter"):
        assert Backend.choose(device="cpu", dtype=dtype).dtype == torch.float32
    assert not bf16_warnings(caplog)


def test_native_bfloat16_says_nothing(host: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    host.setattr(cpu_features, "detect", lambda: ZEN4_FEATURES)
    with caplog.at_level(logging.INFO, "rmbg_filter"):
        assert Backend.choose(device="cpu", dtype="bfloat16").dtype == torch.bfloat16
    assert not bf16_warnings(caplog)


def test_torchs_no_is_heard_over_the_flags(host: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Flags that say native, a torch whose oneDNN has no bfloat16: emulated, and the line says why."""
    host.setattr(cpu_features, "detect", lambda: ZEN4_FEATURES)
    host.setattr(cpu_features, "torch_bf16_supported", lambda: False)
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        assert Backend.choose(device="cpu", dtype="bfloat16").dtype == torch.bfloat16
    (record,) = bf16_warnings(caplog)
    assert record.getMessage().endswith("(native bfloat16 needs avx512_bf16 or amx_bf16: torch's oneDNN does not "
                                        "use them here; -v names the CPU's features)")


@pytest.mark.parametrize(("text", "why"), [
    (XEON, "ONEDNN_MAX_CPU_ISA=AVX2 hides them"),
    (cpuinfo("Intel(R) Xeon(R) Gold 6230 CPU", f"{_COMMON} {_AVX512} avx512_vnni"), "this CPU has neither"),
])
def test_a_cap_is_blamed_only_where_it_hides_bfloat16(text: str, why: str, host: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU without bf16 (Cascade Lake) removes avx512f, not bf16."""
    host.setattr(cpu_features, "detect", lambda: features(text, ONEDNN_MAX_CPU_ISA="AVX2"))
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        Backend.choose(device="cpu", dtype="bfloat16")
    (record,) = bf16_warnings(caplog)
    assert f"avx512_bf16 or amx_bf16: {why}; -v" in record.getMessage()


def test_the_choice_in_one_line(host: pytest.MonkeyPatch) -> None:
    host.setattr(cpu_features, "detect", lambda: ZEN3_FEATURES)
    assert Backend(torch.device("cpu"), torch.float32, "onnxruntime").describe() == (
        "cpu, float32, onnxruntime on AMD EPYC 7B13 64-Core Processor (avx2)")


@pytest.mark.parametrize("argv", [["image", "a.png", "b.png"], ["pipe", "--size", "2x2"], ["video", "a.mp4", "b.mov"],
                                  ["batch", "a.mp4", "--out-dir", "o"]])
def test_every_command_takes_verbose(argv: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args([*argv, "-v"]).verbose and parser.parse_args([*argv, "--verbose"]).verbose
    assert not parser.parse_args(argv).verbose


def test_the_command_line_says_bfloat16_is_emulated_and_what_it_chose(
    tmp_path: Path, checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's AVX2 host, on any host: one warning line and, with -v, the choice; exit status 0."""
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo: the flags are not known here")
    picture = tmp_path / "in.png"
    Image.new("RGB", (24, 16), (200, 40, 30)).save(picture)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    host = features_of(*parse_cpuinfo(Path("/proc/cpuinfo").read_text()), os.environ)
    cpu = host.describe()
    has_bf16 = bool(host.detected & {"avx512_bf16", "amx_bf16"})  # a Zen 3 has none for the cap to hide
    why = "ONEDNN_MAX_CPU_ISA=AVX2 hides them" if has_bf16 else "this CPU has neither"
    done = run_cli("image", picture, tmp_path / "out.png", "--device", "cpu", "--dtype", "bfloat16",
                   "--model-size", "32", "-v", model=checkpoints["safetensors"])
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "rmbg-filter: --dtype bfloat16 is emulated on this CPU, several times slower than float32; use --dtype "
        f"float32 (native bfloat16 needs avx512_bf16 or amx_bf16: {why}; -v names the CPU's features)",
        f"rmbg-filter: cpu, bfloat16, torch on {cpu}",
        f"wrote {tmp_path / 'out.png'} (24x16, rgba)",
    ]
    quiet = run_cli("image", picture, tmp_path / "quiet.png", "--device", "cpu", "--dtype", "float32",
                    "--runtime", "torch", "--model-size", "32", model=checkpoints["safetensors"])
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == [f"wrote {tmp_path / 'quiet.png'} (24x16, rgba)"]


# dtype="fast", on each CPU class: (the CPU, its environment, the runtime asked for, ONNX Runtime installed,
# OpenVINO installed) -> (dtype, runtime) chosen. bfloat16 only where it is native (in OpenVINO when it is
# installed); int8 is outside fast's budget on every class.
FAST = [
    (ZEN3, {}, "auto", True, True, ("float32", "onnxruntime")),
    (ZEN3, {}, "auto", False, False, ("float32", "torch")),
    (ZEN3, {}, "torch", True, True, ("float32", "torch")),
    (ZEN3, {}, "openvino", True, True, ("float32", "openvino")),  # never OpenVINO's bfloat16 request on it
    (ZEN4, {}, "auto", True, False, ("bfloat16", "torch")),
    (ZEN4, {}, "auto", True, True, ("bfloat16", "openvino")),
    (ZEN4, {}, "onnxruntime", True, True, ("float32", "onnxruntime")),  # ONNX Runtime has no bfloat16 path here
    (XEON, {}, "auto", True, True, ("bfloat16", "openvino")),
    (XEON, {}, "torch", False, False, ("bfloat16", "torch")),
    # the issue's switches make a Zen 4 or a Xeon dispatch as the Zen 3 does
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}, "auto", True, True,
     ("float32", "onnxruntime")),
    (XEON, {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}, "auto", True, True,
     ("float32", "onnxruntime")),
    # an AVX-512 CPU with VNNI but no bfloat16 (Cascade Lake): float32, as int8 is outside the budget
    (cpuinfo("Intel(R) Xeon(R) Gold 6230 CPU", f"{_COMMON} {_AVX512} avx512_vnni"), {}, "auto", True, True,
     ("float32", "onnxruntime")),
]


@pytest.mark.parametrize(("text", "environ", "runtime", "onnx", "openvino", "chosen"), FAST)
def test_fast_dispatches_by_what_the_cpu_computes(text: str, environ: dict[str, str], runtime: str, onnx: bool,
                                                  openvino: bool, chosen: tuple[str, str],
                                                  host: pytest.MonkeyPatch) -> None:
    assert fast_path("cpu", features(text, **environ), runtime, onnx, openvino) == chosen


def test_fast_trusts_torchs_no_and_unknown_flags(host: pytest.MonkeyPatch) -> None:
    assert fast_path("cpu", None) == ("float32", "onnxruntime")  # flags not known (not Linux): the exact path
    host.setattr(cpu_features, "torch_bf16_supported", lambda: False)
    assert fast_path("cpu", ZEN4_FEATURES, "torch") == ("float32", "torch")
    assert fast_path("cpu", ZEN4_FEATURES, "auto", True, False) == ("float32", "onnxruntime")  # auto is torch here
    assert fast_path("cpu", ZEN4_FEATURES, "auto", True, True) == ("bfloat16", "openvino")  # not torch's oneDNN


def test_fast_on_a_gpu_is_float16() -> None:
    assert fast_path("cuda", None) == ("float16", "torch")
    assert fast_path("mps", None, "auto", False) == ("float16", "torch")


@pytest.mark.parametrize(("text", "dtype", "runtime"), [(ZEN3, torch.float32, "onnxruntime"),
                                                        (ZEN4, torch.bfloat16, "torch")])
def test_choose_resolves_fast_without_a_warning(text: str, dtype: torch.dtype, runtime: str, host: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    host.setattr(cpu_features, "detect", lambda: features(text))
    host.setattr(onnx_runtime, "available", lambda: True)
    host.setattr(openvino_runtime, "available", lambda: False)
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        chosen = Backend.choose(device="cpu", dtype="fast")
    assert (chosen.dtype, chosen.runtime, chosen.int8) == (dtype, runtime, False)
    assert not bf16_warnings(caplog)


@pytest.mark.parametrize(("openvino", "runtime", "chosen"), [(True, "auto", "openvino"), (False, "auto", "onnxruntime"),
                                                            (True, "onnxruntime", "onnxruntime")])
def test_int8_runs_in_openvino_where_installed(openvino: bool, runtime: str, chosen: str,
                                               host: pytest.MonkeyPatch) -> None:
    host.setattr(cpu_features, "detect", lambda: ZEN3_FEATURES)
    host.setattr(onnx_runtime, "available", lambda: True)
    host.setattr(openvino_runtime, "available", lambda: openvino)
    backend = Backend.choose(device="cpu", dtype="int8", runtime=runtime)
    assert (backend.torch_dtype, backend.runtime, backend.int8, backend.precision) == (torch.float32, chosen, True,
                                                                                       "int8")
    assert backend.describe() == f"cpu, int8, {chosen} on AMD EPYC 7B13 64-Core Processor (avx2)"


def test_int8_without_onnx_runtime_names_the_extra(host: pytest.MonkeyPatch) -> None:
    host.setattr(onnx_runtime, "available", lambda: False)
    with pytest.raises(OptionError) as raised:
        Backend.choose(device="cpu", dtype="int8")
    assert raised.value.option == "dtype"
    assert str(raised.value) == "dtype='int8' needs ONNX Runtime's quantizer: pip install 'rmbg-filter[onnx]'"


def test_openvino_missing_names_the_extra(host: pytest.MonkeyPatch) -> None:
    host.setattr(openvino_runtime, "available", lambda: False)
    with pytest.raises(OptionError) as raised:
        Backend.choose(device="cpu", dtype="bfloat16", runtime="openvino")
    assert str(raised.value) == ("runtime='openvino' needs OpenVINO: pip install 'rmbg-filter[openvino]'; or use "
                                 "runtime='torch'")


def test_openvino_bfloat16_is_never_emulated(host: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without native bfloat16 OpenVINO runs the request in float32: no warning, unlike torch."""
    host.setattr(cpu_features, "detect", lambda: ZEN3_FEATURES)
    host.setattr(openvino_runtime, "available", lambda: True)
    with caplog.at_level(logging.WARNING, "rmbg_filter"):
        assert Backend.choose(device="cpu", dtype="bfloat16", runtime="openvino").torch_dtype == torch.float32
    assert not bf16_warnings(caplog)
