"""Every option error, as the user of each adapter sees it, names the option in that adapter's spelling.

The same bad settings go to the command line (``--batch-size``), the VapourSynth
functions (``batch_size=``) and the GStreamer element (``the batch-size property``);
each message is compared whole. VapourSynth and GStreamer run in one subprocess each.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from hosts import gst_environment, vs_python
from PIL import Image

from rmbg_filter.cli.main import main
from rmbg_filter.options import all_specs

MISSING = "/nonexistent/m.safetensors"
ORT = "runs float32 or int8 on the CPU, not bfloat16 on cpu; use"
NOT_FOUND = f"model not found: {MISSING} is neither a file, a directory nor a Hub repo id; pass a local directory " \
            "or weights file with"
DEVICES = "must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"
OUTPUTS = "must be rgba, alpha, green, color:#RRGGBB, blur or image:PATH, got 'purple'"

#: (settings as keywords, the CLI's words, then the message each adapter gives; None: not an option there, or
#: for GStreamer a word its GEnum property refuses before the element sees it)
CASES = [
    ({"batch_size": 0}, ["--batch-size", "0"],
     "--batch-size must be from 1 to 256, got 0",
     "batch_size= must be from 1 to 256, got 0",
     None),  # GObject itself keeps an integer property in its range
    ({"device": "tpu"}, ["--device", "tpu"],
     f"--device {DEVICES}", f"device= {DEVICES}", f"the device property {DEVICES}"),
    ({"device": "cuda"}, ["--device", "cuda"],
     "--device is 'cuda', but torch sees no CUDA GPU; use --device cpu",
     "device= is 'cuda', but torch sees no CUDA GPU; use device='cpu'",
     "the device property is 'cuda', but torch sees no CUDA GPU; use device=cpu"),
    ({"dtype": "int4"}, ["--dtype", "int4"],
     "--dtype must be one of auto, fast, float32, float16, bfloat16, int8, got 'int4'",
     "dtype= must be one of auto, fast, float32, float16, bfloat16, int8, got 'int4'",
     None),  # a GEnum: gst-launch refuses the word while parsing (test_gstreamer.py's GEnum test)
    ({"dtype": "int8", "runtime": "torch"}, ["--dtype", "int8", "--runtime", "torch"],
     "--dtype int8 runs in ONNX Runtime or OpenVINO, not torch; use --runtime onnxruntime or leave --runtime at auto",
     "dtype='int8' runs in ONNX Runtime or OpenVINO, not torch; use runtime='onnxruntime' or leave runtime= at auto",
     "dtype=int8 runs in ONNX Runtime or OpenVINO, not torch; use runtime=onnxruntime or leave the runtime property "
     "at auto"),
    ({"compile": True, "dtype": "int8"}, ["--compile", "--dtype", "int8"],
     "--compile does not apply to --dtype int8 (ONNX Runtime or OpenVINO plans its own graph)",
     "compile= does not apply to dtype='int8' (ONNX Runtime or OpenVINO plans its own graph)",
     "the compile property does not apply to dtype=int8 (ONNX Runtime or OpenVINO plans its own graph)"),
    ({"runtime": "onnxruntime", "dtype": "bfloat16"}, ["--runtime", "onnxruntime", "--dtype", "bfloat16"],
     f"--runtime onnxruntime {ORT} --runtime torch",
     f"runtime='onnxruntime' {ORT} runtime='torch'",
     f"runtime=onnxruntime {ORT} runtime=torch"),
    ({"compile": True, "runtime": "onnxruntime"}, ["--compile", "--runtime", "onnxruntime"],
     "--compile needs --runtime torch (ONNX Runtime plans its own graph)",
     "compile= needs runtime='torch' (ONNX Runtime plans its own graph)",
     "the compile property needs runtime=torch (ONNX Runtime plans its own graph)"),
    ({"model": MISSING}, ["--model", MISSING],
     f"{NOT_FOUND} --model PATH or RMBG_MODEL=PATH",
     f"{NOT_FOUND} model=PATH or RMBG_MODEL=PATH",
     f"{NOT_FOUND} model=PATH or RMBG_MODEL=PATH"),
    ({"normalize": "max"}, ["--normalize", "max"],
     "--normalize must be one of minmax, none, got 'max'",
     "normalize= must be one of minmax, none, got 'max'",
     None),  # a GEnum (see dtype's case)
    ({"refine": "sharp"}, ["--refine", "sharp"],
     "--refine must be one of none, guided, got 'sharp'",
     "refine= must be one of none, guided, got 'sharp'",
     None),  # a GEnum (see dtype's case)
    ({"output": "purple"}, ["--output", "purple"],
     f"argument --output: {OUTPUTS}", None, f"the output property {OUTPUTS}"),
    ({"batchsize": 2}, None, None,
     "unknown option 'batchsize'; the options are batch_size, compile, decontaminate, device, dtype, model, "
     "model_size, normalize, refine, refine_eps, refine_radius, reuse_threshold, runtime, temporal_radius",
     None),
]
if torch.cuda.is_available():  # the cuda case needs a machine without one
    CASES = [case for case in CASES if case[0] != {"device": "cuda"}]


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("picture") / "in.png"
    Image.new("RGB", (8, 6)).save(path)
    return path


def exit_status(args: list[str]) -> int | str | None:
    """``main``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(args)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize("case", [case for case in CASES if case[1] is not None], ids=lambda case: str(case[0]))
def test_the_command_line_says_flags(case, picture: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, words, expected, *_ = case
    assert exit_status(["image", str(picture), str(tmp_path / "out.png"), *words]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].removesuffix(" (see rmbg-filter image --help)") == f"rmbg-filter image: error: {expected}"
    assert not (tmp_path / "out.png").exists()


VS_SCRIPT = """
import json, sys
import vapoursynth as vs
import vsrmbg
clip = vs.core.std.BlankClip(format=vs.YUV420P10, width=64, height=48, length=1)
said = []
for keywords in json.loads(sys.argv[1]):
    try:
        vsrmbg.mask(clip, **keywords)
        said.append(None)
    except vs.Error as error:
        said.append(str(error))
print(json.dumps(said))
"""


def test_vapoursynth_says_keywords() -> None:
    cases = [case for case in CASES if case[3] is not None]
    done = subprocess.run([str(vs_python()), "-c", VS_SCRIPT, json.dumps([case[0] for case in cases])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for case, said in zip(cases, json.loads(done.stdout), strict=True):
        assert said == f"vsrmbg.mask: {case[3]}", case[0]


GST_SCRIPT = """
import json, sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
said = []
for settings in json.loads(sys.argv[1]):
    words = " ".join(f"{name.replace('_', '-')}={str(value).lower()}" for name, value in settings.items())
    pipeline = Gst.parse_launch(f"videotestsrc num-buffers=1 ! videoconvert ! rmbg {words} ! fakesink")
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.ERROR | Gst.MessageType.EOS)
    said.append(message.parse_error()[0].message if message.type == Gst.MessageType.ERROR else None)
    pipeline.set_state(Gst.State.NULL)
print(json.dumps(said))
"""


def test_gstreamer_says_properties(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    cases = [case for case in CASES if case[4] is not None]
    done = subprocess.run(["/usr/bin/python3", "-c", GST_SCRIPT, json.dumps([case[0] for case in cases])],
                          env=gst_environment(tmp_path, checkpoints["safetensors"]), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for case, said in zip(cases, json.loads(done.stdout), strict=True):
        assert said == f"rmbg: {case[4]}", case[0]


def test_every_case_is_checked_in_every_adapter_that_takes_it() -> None:
    """The table leaves an adapter out only where the setting is not one of its options."""
    for settings, words, cli, vs, gst in CASES:
        assert (words is None) == (cli is None), settings
        assert vs is not None or "output" in settings, settings
        assert gst is not None or settings.keys() & {"batch_size", "batchsize"} or refused_by_genum(settings), settings


def refused_by_genum(settings: dict) -> bool:
    """Whether GStreamer refuses ``settings`` while parsing: a word choice (a GEnum property) given another word."""
    choices = {spec.name: spec.choices for spec in all_specs() if spec.choices}
    return any(name in choices and value not in choices[name] for name, value in settings.items())
